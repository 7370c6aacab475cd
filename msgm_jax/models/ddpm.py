"""The DDPM U-Net (Ho et al. 2020) as in score_sde's `models/ddpm.py`."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from msgm_jax.models import utils
from msgm_jax.models.base import ScoreUNet
from msgm_jax.models.factory import MODELS
from msgm_jax.models.layers import (AttnBlock, conv3x3, dense, get_act, get_timestep_embedding,
                                    group_norm)
from msgm_jax.models.layerspp import Downsample, ResnetBlockDDPM, Upsample


@MODELS.register("ddpm")
class DDPM(ScoreUNet):
  """DDPM U-Net: GroupNorm, swish, sinusoidal time embedding, attention at `attn_resolutions`.

  __call__(x [B, H, W, C], labels [B], train) -> [B, H, W, C] float32. `labels` are the time
  labels (999 t for continuous VP, the step index for discrete DDPM); with scale_by_sigma they
  index the descending sigma ladder (SMLD) and the output is divided by that sigma.
  """

  num_groups: int = 32  # DDPM normalises with 32 groups; tiny test models need fewer

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array, train: bool = False) -> jax.Array:
    act = get_act(self.nonlinearity)
    common = dict(conv_impl=self.conv_impl, dtype=self.dtype)
    block = lambda out_ch=None: ResnetBlockDDPM(
        out_ch=out_ch, dropout=self.dropout, init_scale=0.0, num_groups=self.num_groups,
        nonlinearity=self.nonlinearity, **common)
    attn = lambda: AttnBlock(init_scale=0.0, num_groups=self.num_groups, dtype=self.dtype)
    temb = None
    if self.conditional:
      temb = get_timestep_embedding(labels, self.nf)
      temb = dense(act(dense(temb, self.nf * 4, self.dtype)), self.nf * 4, self.dtype)
    h = utils.scale_input(x, self.centered)
    hs = [conv3x3(h, self.nf, **common)]
    for i_level, mult in enumerate(self.ch_mult):
      for _ in range(self.num_res_blocks):
        h = block(self.nf * mult)(hs[-1], temb, train)
        if h.shape[1] in self.attn_resolutions:
          h = attn()(h)
        hs.append(h)
      if i_level != len(self.ch_mult) - 1:
        hs.append(Downsample(with_conv=self.resamp_with_conv, **common)(hs[-1]))
    h = block()(hs[-1], temb, train)
    h = attn()(h)
    h = block()(h, temb, train)
    for i_level in reversed(range(len(self.ch_mult))):
      for _ in range(self.num_res_blocks + 1):
        h = block(self.nf * self.ch_mult[i_level])(jnp.concatenate([h, hs.pop()], -1), temb, train)
      if h.shape[1] in self.attn_resolutions:
        h = attn()(h)
      if i_level != 0:
        h = Upsample(with_conv=self.resamp_with_conv, **common)(h)
    h = act(group_norm(h, self.num_groups, self.dtype))
    h = conv3x3(h, x.shape[-1], init_scale=0.0, **common).astype(jnp.float32)
    if self.scale_by_sigma:
      # DDPM's NCSN-loss variant: labels index the descending SMLD sigma ladder.
      h = utils.divide_by_sigma(h, self.ladder_sigmas(labels))
    return h
