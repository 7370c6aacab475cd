"""GroupNorm whose statistics reduce over pixels first, with channels kept as the minor axis.

flax.linen.GroupNorm reshapes [B, H, W, C] to [B, H, W, G, C / G] and reduces over the pixels
and the last axis together. For the DDPM U-Nets' 96- and 192-channel layers (32 groups of 3 or
6 channels) that minor axis of 3 or 6 is what XLA:CPU vectorises over, so its reductions, and
the gradient's, run several times slower than a reduction over the pixels with all C channels
minor (docs/performance.md, "Profile of the train step"). This module sums over the pixels
first ([B, HW, C] -> [B, C]) and then over the channels of each group on the small [B, C]
array; the normalisation is one elementwise pass. It is the same function as flax's GroupNorm
(fast variance E[x^2] - E[x]^2 clipped at 0, statistics in float32, epsilon 1e-6 here), with the
same parameters ('scale' and 'bias', [C]) under the same module name, so checkpoints are
interchangeable. Plain jnp, so forward- and reverse-mode derivatives (the likelihood's jvp,
training's vjp) both come from JAX.
"""

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp


def group_norm_stats(x: jax.Array, groups: int):
  """Per-example, per-group mean and variance of x [B, ..., C] -> ([B, G], [B, G]), float32."""
  b, c = x.shape[0], x.shape[-1]
  xf = x.reshape(b, -1, c).astype(jnp.promote_types(x.dtype, jnp.float32))
  per_group = lambda v: v.reshape(b, groups, c // groups).sum(-1)
  count = xf.shape[1] * (c // groups)
  mean = per_group(jnp.sum(xf, axis=1)) / count
  mean_sq = per_group(jnp.sum(xf * xf, axis=1)) / count
  return mean, jnp.maximum(mean_sq - mean * mean, 0.0)


class GroupNorm(nn.Module):
  """x [B, ..., C] -> (x - mean) / sqrt(var + epsilon) * scale + bias per example and group.

  num_groups must divide C. dtype: the output dtype (None: x's); statistics and the
  normalisation run in at least float32.
  """

  num_groups: int = 32
  epsilon: float = 1e-6
  dtype: Optional[Any] = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    if c % self.num_groups:
      raise ValueError(f"GroupNorm: {c} channels do not split into {self.num_groups} groups; "
                       f"set model.num_groups to a divisor of {c}")
    scale = self.param("scale", nn.initializers.ones, (c,))
    bias = self.param("bias", nn.initializers.zeros, (c,))
    mean, var = group_norm_stats(x, self.num_groups)
    per_channel = lambda v: jnp.repeat(v, c // self.num_groups, axis=-1)  # [B, G] -> [B, C]
    mul = scale * per_channel(jax.lax.rsqrt(var + self.epsilon))  # [B, C]
    shift = bias - per_channel(mean) * mul
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (c,)
    y = x.astype(mul.dtype) * mul.reshape(shape) + shift.reshape(shape)  # one multiply-add
    return y.astype(self.dtype or x.dtype)
