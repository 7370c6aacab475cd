"""NCSN++ and DDPM++ (Song et al. 2021), as in score_sde's `models/ncsnpp.py`.

DDPM++ is this model with embedding_type="positional", fir=False, progressive_input="none"
(see models/presets.py).
"""

from typing import List, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from msgm_jax.models import utils
from msgm_jax.models.base import ScoreUNet
from msgm_jax.models.factory import MODELS
from msgm_jax.models.layers import (AttnBlockpp, Combine, GaussianFourierProjection, conv3x3, dense,
                                    get_act, get_timestep_embedding, group_norm, skip_add)
from msgm_jax.models.layerspp import (Downsample, ResnetBlockBigGANpp, ResnetBlockDDPMpp,
                                      Upsample)

# The valid values of NCSN++'s string fields (also msgm_jax/config/validate.py's rules).
CHOICES = {"progressive": ("none", "output_skip", "residual"),
           "progressive_input": ("none", "input_skip", "residual"),
           "resblock_type": ("ddpm", "biggan"), "progressive_combine": ("sum", "cat"),
           "embedding_type": ("fourier", "positional")}


@MODELS.register("ncsnpp")
class NCSNpp(ScoreUNet):
  """NCSN++ U-Net: x [B, H, W, C], labels [B] -> [B, H, W, C] float32.

  labels: sigma (embedding_type "fourier", continuous VE) or a time label (positional: 999 t
  for VP, the SMLD ladder index for discrete VE). scale_by_sigma divides the output by sigma:
  the label itself (fourier) or the descending ladder from sigma_min/sigma_max/num_scales at
  index int(label) (positional).
  """

  fir: bool = False
  fir_kernel: Tuple[int, ...] = (1, 3, 3, 1)
  skip_rescale: bool = True
  resblock_type: str = "biggan"
  progressive: str = "none"
  progressive_input: str = "none"
  progressive_combine: str = "sum"
  embedding_type: str = "fourier"
  fourier_scale: float = 16.0
  init_scale: float = 0.0

  def _check(self):
    for name, valid in CHOICES.items():
      if getattr(self, name) not in valid:
        raise ValueError(f"{name} must be one of {valid}, got {getattr(self, name)!r}")

  def _embed(self, labels: jax.Array) -> Tuple[Optional[jax.Array], jax.Array]:
    """-> (time embedding [B, 4 nf] or None, the sigma of each example [B])."""
    if self.embedding_type == "fourier":
      used_sigmas = labels
      temb = GaussianFourierProjection(self.nf, self.fourier_scale)(jnp.log(labels))
    elif self.embedding_type == "positional":
      used_sigmas = self.ladder_sigmas(labels)
      temb = get_timestep_embedding(labels, self.nf)
    else:
      raise ValueError(f"embedding_type must be 'fourier' or 'positional', got "
                       f"{self.embedding_type!r}")
    if not self.conditional:
      return None, used_sigmas
    act = get_act(self.nonlinearity)
    temb = dense(act(dense(temb, self.nf * 4, self.dtype)), self.nf * 4, self.dtype)
    return temb, used_sigmas

  def _common(self):
    return dict(conv_impl=self.conv_impl, dtype=self.dtype)

  def _block(self, **kw) -> nn.Module:
    common = dict(dropout=self.dropout, init_scale=self.init_scale, skip_rescale=self.skip_rescale,
                  nonlinearity=self.nonlinearity, **self._common())
    if self.resblock_type == "ddpm":
      return ResnetBlockDDPMpp(**common, **kw)
    return ResnetBlockBigGANpp(fir=self.fir, fir_kernel=self.fir_kernel, **common, **kw)

  def _attn(self, h: jax.Array) -> jax.Array:
    return AttnBlockpp(self.skip_rescale, self.init_scale, dtype=self.dtype)(h)

  def _resample(self, cls, **kw) -> nn.Module:
    return cls(fir=self.fir, fir_kernel=self.fir_kernel, **self._common(), **kw)

  def _head(self, h: jax.Array, out_ch: int, init_scale: float) -> jax.Array:
    """conv3x3(act(GroupNorm(h))): the output layer and the output_skip pyramid taps."""
    h = get_act(self.nonlinearity)(group_norm(h, None, self.dtype))
    return conv3x3(h, out_ch, init_scale=init_scale, **self._common())

  def _encoder(self, x: jax.Array, temb, train: bool) -> List[jax.Array]:
    """Downsampling path; returns the skip activations (the last is the coarsest)."""
    input_pyramid = x
    hs = [conv3x3(x, self.nf, **self._common())]
    for i_level, mult in enumerate(self.ch_mult):
      for _ in range(self.num_res_blocks):
        h = self._block(out_ch=self.nf * mult)(hs[-1], temb, train)
        if h.shape[1] in self.attn_resolutions:
          h = self._attn(h)
        hs.append(h)
      if i_level == len(self.ch_mult) - 1:
        break
      if self.resblock_type == "ddpm":
        h = self._resample(Downsample, with_conv=self.resamp_with_conv)(hs[-1])
      else:
        h = self._block(down=True)(hs[-1], temb, train)
      if self.progressive_input == "input_skip":
        input_pyramid = self._resample(Downsample, with_conv=False)(input_pyramid)
        h = Combine(self.progressive_combine, **self._common())(input_pyramid, h)
      elif self.progressive_input == "residual":
        input_pyramid = self._resample(Downsample, with_conv=True,
                                       out_ch=h.shape[-1])(input_pyramid)
        h = input_pyramid = skip_add(input_pyramid, h, self.skip_rescale)
      hs.append(h)
    return hs

  def _decoder(self, h: jax.Array, hs: List[jax.Array], temb, train: bool,
               out_ch: int) -> jax.Array:
    """Upsampling path with skip concatenations; returns the output before scale_by_sigma."""
    pyramid = None
    for i_level in reversed(range(len(self.ch_mult))):
      for _ in range(self.num_res_blocks + 1):
        h = self._block(out_ch=self.nf * self.ch_mult[i_level])(
            jnp.concatenate([h, hs.pop()], axis=-1), temb, train)
      if h.shape[1] in self.attn_resolutions:
        h = self._attn(h)
      if self.progressive == "output_skip":
        if pyramid is not None:
          pyramid = self._resample(Upsample, with_conv=False)(pyramid)
        tap = self._head(h, out_ch, self.init_scale)
        pyramid = tap if pyramid is None else pyramid + tap
      elif self.progressive == "residual":
        if pyramid is None:
          pyramid = self._head(h, h.shape[-1], 1.0)
        else:
          pyramid = self._resample(Upsample, with_conv=True, out_ch=h.shape[-1])(pyramid)
          h = pyramid = skip_add(pyramid, h, self.skip_rescale)
      if i_level != 0:
        if self.resblock_type == "ddpm":
          h = self._resample(Upsample, with_conv=self.resamp_with_conv)(h)
        else:
          h = self._block(up=True)(h, temb, train)
    if self.progressive == "output_skip":
      return pyramid
    return self._head(h, out_ch, self.init_scale)

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array, train: bool = False) -> jax.Array:
    self._check()
    temb, used_sigmas = self._embed(labels)
    x = utils.scale_input(x, self.centered)
    hs = self._encoder(x, temb, train)
    h = self._block()(hs[-1], temb, train)
    h = self._attn(h)
    h = self._block()(h, temb, train)
    h = self._decoder(h, hs, temb, train, x.shape[-1]).astype(jnp.float32)
    if self.scale_by_sigma:
      h = utils.divide_by_sigma(h, used_sigmas)
    return h
