"""FIR up/down-sampling of NHWC images (StyleGAN2's upfirdn2d) in pure JAX.

The functions reproduce score_sde's `up_or_down_sampling.py` (itself ported from StyleGAN2):
upfirdn2d pads, upsamples by zero insertion, convolves with a FIR filter and keeps every
`down`-th pixel. Here the filter is applied with shifted strided slices (separably for a 1-D
kernel), so it is cheap to differentiate on every backend; the resampling convolutions go
through `conv.conv2d` and so follow the model's `conv_impl`.
"""

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from msgm_jax.models import conv as conv_lib


def setup_kernel(k: Sequence[float]) -> np.ndarray:
  """Normalises a FIR kernel to unit sum; a 1-D kernel stays 1-D (it stands for outer(k, k))."""
  k = np.asarray(k, dtype=np.float64)
  if k.ndim not in (1, 2) or (k.ndim == 2 and k.shape[0] != k.shape[1]):
    raise ValueError(f"FIR kernel must be 1-D or square 2-D, got shape {k.shape}")
  return k / np.sum(k)


def _fir_axis(x: jax.Array, taps: np.ndarray, axis: int, down: int) -> jax.Array:
  """Valid true convolution of x with 1-D taps along `axis`, keeping every `down`-th output."""
  n_out = (x.shape[axis] - len(taps)) // down + 1
  flipped = taps[::-1]
  out = None
  for t, c in enumerate(flipped):
    if c == 0:
      continue
    term = lax.slice_in_dim(x, t, t + down * (n_out - 1) + 1, stride=down, axis=axis) * float(c)
    out = term if out is None else out + term
  return out


def _fir_2d(x: jax.Array, k: np.ndarray, down: int) -> jax.Array:
  kh, kw = k.shape
  ho, wo = (x.shape[1] - kh) // down + 1, (x.shape[2] - kw) // down + 1
  flipped = k[::-1, ::-1]
  out = jnp.zeros((x.shape[0], ho, wo, x.shape[3]), x.dtype)
  for a in range(kh):
    for b in range(kw):
      window = lax.slice(x, (0, a, b, 0),
                         (x.shape[0], a + down * (ho - 1) + 1, b + down * (wo - 1) + 1, x.shape[3]),
                         (1, down, down, 1))
      out = out + window * float(flipped[a, b])
  return out


def upfirdn2d(x: jax.Array, k: np.ndarray, *, up: int = 1, down: int = 1, pad0: int = 0,
              pad1: int = 0, gain: float = 1.0) -> jax.Array:
  """Upsample (zero insertion), pad, FIR-filter, downsample a batch of images.

  x: [B, H, W, C]; k: 1-D (separable) or 2-D FIR taps, used as given times `gain`; pad0/pad1:
  pixels added before/after on both spatial axes (negative crops). Returns
  [B, (H up + pad0 + pad1 - kh) // down + 1, (same for W), C], as StyleGAN2's upfirdn_2d.
  """
  k = np.asarray(k, dtype=np.float64)
  zero = jnp.zeros((), x.dtype)
  # Zero insertion leaves up - 1 zeros after every pixel (the last included), then pad / crop.
  spatial = (pad0, pad1 + up - 1, up - 1)
  x = lax.pad(x, zero, ((0, 0, 0), spatial, spatial, (0, 0, 0)))
  if k.ndim == 2:
    return _fir_2d(x, k * gain, down)
  x = _fir_axis(x, k * gain, axis=1, down=down)
  return _fir_axis(x, k, axis=2, down=down)


def upsample_2d(x: jax.Array, k: Sequence[float] = (1, 1), factor: int = 2,
                gain: float = 1.0) -> jax.Array:
  """FIR upsampling: [B, H, W, C] -> [B, H factor, W factor, C] (StyleGAN2 upsample_2d)."""
  k = setup_kernel(k)
  p = k.shape[0] - factor
  return upfirdn2d(x, k, up=factor, pad0=(p + 1) // 2 + factor - 1, pad1=p // 2,
                   gain=gain * factor**2)


def downsample_2d(x: jax.Array, k: Sequence[float] = (1, 1), factor: int = 2,
                  gain: float = 1.0) -> jax.Array:
  """FIR downsampling: [B, H, W, C] -> [B, H / factor, W / factor, C]."""
  k = setup_kernel(k)
  p = k.shape[0] - factor
  return upfirdn2d(x, k, down=factor, pad0=(p + 1) // 2, pad1=p // 2, gain=gain)


def naive_upsample_2d(x: jax.Array, factor: int = 2) -> jax.Array:
  """Nearest-neighbour upsampling: [B, H, W, C] -> [B, H factor, W factor, C]."""
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def naive_downsample_2d(x: jax.Array, factor: int = 2) -> jax.Array:
  """Mean pooling over factor x factor blocks: [B, H, W, C] -> [B, H / factor, W / factor, C]."""
  b, h, w, c = x.shape
  return jnp.mean(x.reshape(b, h // factor, factor, w // factor, factor, c), axis=(2, 4))


def upsample_conv_2d(x: jax.Array, w: jax.Array, k: Sequence[float] = (1, 1), factor: int = 2,
                     gain: float = 1.0, impl: str = "auto") -> jax.Array:
  """Transposed (stride `factor`) convolution with w [kh, kw, Cin, Cout], then FIR filter.

  Equals score_sde's `upsample_conv_2d` (TF conv2d_transpose, VALID, followed by
  upfirdn2d): x [B, H, W, Cin] -> [B, H factor, W factor, Cout].
  """
  kw = w.shape[0]
  k = setup_kernel(k)
  p = (k.shape[0] - factor) - (kw - 1)
  # TF/JAX conv_transpose(VALID, transpose_kernel) of score_sde's flipped, in/out-swapped copy
  # of w is a correlation of the zero-dilated input with w itself, padded as lax pads it.
  pads = ((kw - 1, factor - 1 + max(kw - factor, 0)),) * 2
  x = conv_lib.conv2d(x, w, padding=pads, lhs_dilation=(factor, factor), impl=impl)
  return upfirdn2d(x, k, pad0=(p + 1) // 2 + factor - 1, pad1=p // 2 + 1, gain=gain * factor**2)


def conv_downsample_2d(x: jax.Array, w: jax.Array, k: Sequence[float] = (1, 1), factor: int = 2,
                       gain: float = 1.0, impl: str = "auto") -> jax.Array:
  """FIR filter, then a stride-`factor` VALID convolution with w [kh, kw, Cin, Cout].

  Equals score_sde's `conv_downsample_2d`: x [B, H, W, Cin] -> [B, H / factor, W / factor, Cout].
  """
  kw = w.shape[0]
  k = setup_kernel(k)
  p = (k.shape[0] - factor) + (kw - 1)
  x = upfirdn2d(x, k, pad0=(p + 1) // 2, pad1=p // 2, gain=gain)
  return conv_lib.conv2d(x, w, strides=(factor, factor), padding="VALID", impl=impl)
