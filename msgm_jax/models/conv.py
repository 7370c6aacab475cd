"""A 2-D convolution with a choice of implementations and one parameter layout.

All implementations compute the same function with the same kernel [kh, kw, cin, cout], so a
checkpoint trained with one loads into the others:

  "xla"    : lax.conv_general_dilated (flax.linen.Conv semantics), forward and both gradients;
  "im2col" : pad, kh * kw strided slices concatenated on channels, one matmul (forward too);
  "hybrid" : XLA's convolution for the forward pass and the input gradient, the im2col matmul
             for the weight gradient (a custom JVP, so forward- and reverse-mode both work);
  "auto"   : "xla" on every backend (the default; why in docs/performance.md).

"hybrid" and "im2col" were written for older XLA:CPU releases, whose convolution weight gradient
ran at a few GFLOP/s; with jaxlib 0.10 XLA:CPU runs every convolution (through YNNPACK by
default) 2-5x faster than the im2col matmul, gradients included, so they remain only as options
to compare against (`python -m msgm_jax.tools.bench --conv=xla,hybrid`).
"""

import functools
from typing import Any, Sequence, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

CONV_IMPLS = ("auto", "xla", "im2col", "hybrid")

Padding = Union[str, Sequence[Tuple[int, int]]]


def default_init(scale: float = 1.0):
  """DDPM's initialiser: variance_scaling(scale, fan_avg, uniform); scale 0 means 1e-10."""
  scale = 1e-10 if scale == 0 else scale
  return jax.nn.initializers.variance_scaling(scale, "fan_avg", "uniform")


def resolve_impl(impl: str) -> str:
  """Maps "auto" to the implementation it stands for ("xla").

  Measured on the 2-core CPU machine with jaxlib 0.10.2 (docs/performance.md, "Convolution
  choice"): XLA's weight gradient beats the im2col matmul of "hybrid" on every layer of the
  MNIST and CIFAR-10 DDPM U-Nets (e.g. 64 x 28 x 28 x 32 -> 32: 20 ms vs 94 ms), and the train
  step with "xla" takes 0.79x the CPU time of the old size rule (0.65x on CIFAR-10).
  """
  if impl not in CONV_IMPLS:
    raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {impl!r}")
  return "xla" if impl == "auto" else impl


def _explicit_pads(padding: Padding, in_hw, kernel_hw, strides, lhs_dilation):
  if not isinstance(padding, str):
    return tuple(tuple(int(v) for v in p) for p in padding)
  dilated = [(n - 1) * d + 1 for n, d in zip(in_hw, lhs_dilation)]
  return tuple(lax.padtype_to_pads(dilated, kernel_hw, strides, padding))


def _dilate(x: jax.Array, lhs_dilation) -> jax.Array:
  """Inserts d - 1 zeros between pixels: [B, H, W, C] -> [B, (H-1) dh + 1, (W-1) dw + 1, C]."""
  dh, dw = lhs_dilation
  if (dh, dw) == (1, 1):
    return x
  zero = jnp.zeros((), x.dtype)
  return lax.pad(x, zero, ((0, 0, 0), (0, 0, dh - 1), (0, 0, dw - 1), (0, 0, 0)))


def _im2col(x: jax.Array, w: jax.Array, strides, pads) -> jax.Array:
  kh, kw, cin, cout = w.shape
  sh, sw = strides
  zero = jnp.zeros((), x.dtype)
  x = lax.pad(x, zero, ((0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)))
  b, h, wd, _ = x.shape
  ho, wo = (h - kh) // sh + 1, (wd - kw) // sw + 1
  if (kh, kw, sh, sw) == (1, 1, 1, 1):
    cols = x
  else:
    # Column order (i, j, c) matches w.reshape(kh * kw * cin, cout).
    cols = jnp.concatenate([
        lax.slice(x, (0, i, j, 0), (b, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, cin),
                  (1, sh, sw, 1)) for i in range(kh) for j in range(kw)
    ], axis=-1)
  y = jnp.dot(cols.reshape(-1, kh * kw * cin), w.reshape(kh * kw * cin, cout))
  return y.reshape(b, ho, wo, cout)


def _xla(x, w, strides, pads, lhs_dilation):
  return lax.conv_general_dilated(x, w, strides, pads, lhs_dilation=lhs_dilation,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4))
def _hybrid(x, w, strides, pads, lhs_dilation):
  return _xla(x, w, strides, pads, lhs_dilation)


@_hybrid.defjvp
def _hybrid_jvp(strides, pads, lhs_dilation, primals, tangents):
  # d conv(x, w) = conv(dx, w) + conv(x, dw). Transposed for reverse mode, the first term is
  # XLA's input gradient and the second, written as patches(x) @ dw, a plain matmul.
  x, w = primals
  dx, dw = tangents
  y = _xla(x, w, strides, pads, lhs_dilation)
  dy = _xla(dx, w, strides, pads, lhs_dilation)
  return y, dy + _im2col(_dilate(x, lhs_dilation), dw, strides, pads)


def conv2d(x: jax.Array, w: jax.Array, *, strides: Sequence[int] = (1, 1),
           padding: Padding = "SAME", lhs_dilation: Sequence[int] = (1, 1),
           impl: str = "auto") -> jax.Array:
  """Cross-correlation of x [B, H, W, Cin] with w [kh, kw, Cin, Cout] -> [B, H', W', Cout].

  Same arguments and result as lax.conv_general_dilated with NHWC/HWIO layouts; `padding` is
  "SAME", "VALID" or explicit ((lo, hi), (lo, hi)); `lhs_dilation` inserts zeros between input
  pixels (a transposed convolution).
  """
  strides, lhs_dilation = tuple(strides), tuple(lhs_dilation)
  pads = _explicit_pads(padding, x.shape[1:3], w.shape[:2], strides, lhs_dilation)
  impl = resolve_impl(impl)
  if impl == "xla":
    return _xla(x, w, strides, pads, lhs_dilation)
  if impl == "hybrid":
    return _hybrid(x, w, strides, pads, lhs_dilation)
  return _im2col(_dilate(x, lhs_dilation), w, strides, pads)


class Conv(nn.Module):
  """flax.linen.Conv's parameters ('kernel' [k, k, Cin, Cout], 'bias' [Cout]) with DDPM init.

  x: [B, H, W, Cin] -> [B, H', W', features] in `dtype`.
  """

  features: int
  kernel_size: int = 3
  stride: int = 1
  padding: str = "SAME"
  use_bias: bool = True
  init_scale: float = 1.0
  conv_impl: str = "auto"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param("kernel", default_init(self.init_scale),
                        (k, k, x.shape[-1], self.features))
    y = conv2d(x.astype(self.dtype), kernel.astype(self.dtype), strides=(self.stride,) * 2,
               padding=self.padding, impl=self.conv_impl)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(self.dtype)
    return y
