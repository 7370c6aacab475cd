"""Resampling layers and residual blocks of DDPM and NCSN++ (score_sde `layerspp.py`).

x is [B, H, W, C] throughout; temb is [B, E] or None; `train` enables dropout (rng 'dropout').
"""

from typing import Any, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from msgm_jax.models import upfirdn
from msgm_jax.models.conv import conv2d, default_init
from msgm_jax.models.dropout import Dropout
from msgm_jax.models.layers import (NIN, conv1x1, conv3x3, dense, get_act, group_norm,
                                    skip_add)


class Conv2d(nn.Module):
  """StyleGAN2's convolution fused with FIR up- or down-sampling ('weight' [k, k, Cin, Cout])."""

  fmaps: int
  kernel: int = 3
  up: bool = False
  down: bool = False
  resample_kernel: Tuple[int, ...] = (1, 3, 3, 1)
  use_bias: bool = True
  conv_impl: str = "auto"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.up and self.down:
      raise ValueError("Conv2d: up and down are exclusive")
    w = self.param("weight", default_init(), (self.kernel, self.kernel, x.shape[-1], self.fmaps))
    x, w = x.astype(self.dtype), w.astype(self.dtype)
    if self.up:
      x = upfirdn.upsample_conv_2d(x, w, self.resample_kernel, impl=self.conv_impl)
    elif self.down:
      x = upfirdn.conv_downsample_2d(x, w, self.resample_kernel, impl=self.conv_impl)
    else:
      x = conv2d(x, w, padding="SAME", impl=self.conv_impl)
    if self.use_bias:
      x = x + self.param("bias", nn.initializers.zeros, (x.shape[-1],)).astype(self.dtype)
    return x


class _Resample2x(nn.Module):
  """2x resampling, nearest/mean-pool or FIR, optionally with a (fused) conv to out_ch."""

  out_ch: Optional[int] = None
  with_conv: bool = False
  fir: bool = False
  fir_kernel: Tuple[int, ...] = (1, 3, 3, 1)
  conv_impl: str = "auto"
  dtype: Any = jnp.float32

  _UP = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    out_ch = self.out_ch or x.shape[-1]
    common = dict(conv_impl=self.conv_impl, dtype=self.dtype)
    if self.fir and self.with_conv:
      return Conv2d(out_ch, 3, up=self._UP, down=not self._UP, resample_kernel=self.fir_kernel,
                    **common)(x)
    if self.fir:
      resample = upfirdn.upsample_2d if self._UP else upfirdn.downsample_2d
      return resample(x, self.fir_kernel, factor=2)
    if not self._UP:
      if self.with_conv:
        return conv3x3(x, out_ch, stride=2, **common)
      return upfirdn.naive_downsample_2d(x, 2)
    h = upfirdn.naive_upsample_2d(x, 2)
    return conv3x3(h, out_ch, **common) if self.with_conv else h


class Upsample(_Resample2x):
  """[B, H, W, C] -> [B, 2H, 2W, out_ch]: nearest (+ 3x3 conv), or FIR (+ transposed conv)."""

  _UP = True


class Downsample(_Resample2x):
  """[B, H, W, C] -> [B, H/2, W/2, out_ch]: mean pool or stride-2 conv, or FIR (+ conv)."""

  _UP = False


def _residual_branch(block: nn.Module, x: jax.Array, temb: Optional[jax.Array], out_ch: int,
                     train: bool, num_groups: Optional[int], resample=lambda h: h) -> jax.Array:
  """The residual branch of both blocks, built in `block`'s scope (score_sde's layer order):
  act(GN) -> resample -> conv3x3 -> + Dense(act(temb)) -> act(GN) -> dropout -> conv3x3."""
  act = get_act(block.nonlinearity)
  conv = dict(conv_impl=block.conv_impl, dtype=block.dtype)
  h = resample(act(group_norm(x, num_groups, block.dtype)))
  h = conv3x3(h, out_ch, **conv)
  if temb is not None:  # a per-channel bias from the time embedding
    h = h + dense(act(temb), out_ch, block.dtype)[:, None, None, :]
  h = act(group_norm(h, num_groups, block.dtype))
  h = Dropout(block.dropout)(h, deterministic=not train)
  return conv3x3(h, out_ch, init_scale=block.init_scale, **conv)


class ResnetBlockDDPMpp(nn.Module):
  """DDPM's residual block with NCSN++'s options: [B, H, W, C] -> [B, H, W, out_ch]."""

  out_ch: Optional[int] = None
  conv_shortcut: bool = False
  dropout: float = 0.1
  skip_rescale: bool = False
  init_scale: float = 0.0
  num_groups: Optional[int] = None
  nonlinearity: str = "swish"
  conv_impl: str = "auto"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, temb: Optional[jax.Array] = None,
               train: bool = True) -> jax.Array:
    c = x.shape[-1]
    out_ch = self.out_ch or c
    h = _residual_branch(self, x, temb, out_ch, train, self.num_groups)
    if c != out_ch:
      if self.conv_shortcut:
        x = conv3x3(x, out_ch, conv_impl=self.conv_impl, dtype=self.dtype)
      else:
        x = NIN(out_ch, dtype=self.dtype)(x)
    return skip_add(x.astype(self.dtype), h, self.skip_rescale)


class ResnetBlockDDPM(ResnetBlockDDPMpp):
  """DDPM's residual block (the DDPM model passes 32 groups, init_scale 0, no rescale)."""


class ResnetBlockBigGANpp(nn.Module):
  """BigGAN-style residual block, optionally up/down-sampling by 2: -> [B, H', W', out_ch]."""

  up: bool = False
  down: bool = False
  out_ch: Optional[int] = None
  dropout: float = 0.1
  fir: bool = False
  fir_kernel: Tuple[int, ...] = (1, 3, 3, 1)
  skip_rescale: bool = True
  init_scale: float = 0.0
  nonlinearity: str = "swish"
  conv_impl: str = "auto"
  dtype: Any = jnp.float32

  def _resample(self, x: jax.Array) -> jax.Array:
    if self.up:
      if self.fir:
        return upfirdn.upsample_2d(x, self.fir_kernel, factor=2)
      return upfirdn.naive_upsample_2d(x, factor=2)
    if self.down:
      if self.fir:
        return upfirdn.downsample_2d(x, self.fir_kernel, factor=2)
      return upfirdn.naive_downsample_2d(x, factor=2)
    return x

  @nn.compact
  def __call__(self, x: jax.Array, temb: Optional[jax.Array] = None,
               train: bool = True) -> jax.Array:
    c = x.shape[-1]
    out_ch = self.out_ch or c
    h = _residual_branch(self, x, temb, out_ch, train, None, resample=self._resample)
    x = self._resample(x)
    if c != out_ch or self.up or self.down:
      x = conv1x1(x, out_ch, conv_impl=self.conv_impl, dtype=self.dtype)
    return skip_add(x.astype(self.dtype), h, self.skip_rescale)
