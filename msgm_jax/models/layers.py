"""Layers shared by the DDPM U-Net and the NCSN++ family (score_sde `layers.py` / `layerspp.py`).

Module class names, parameter names and creation order follow score_sde's Flax code, so the
parameter trees (and, with the same PRNG key, the initial values) are the same as the reference
implementation's. Every module takes `dtype` (compute dtype; parameters stay float32) and, where
it convolves, `conv_impl` (see conv.py).
"""

import math
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from msgm_jax.models.conv import Conv, default_init
from msgm_jax.models.norm import GroupNorm

ACTIVATIONS = {
    "elu": nn.elu,
    "relu": nn.relu,
    "lrelu": lambda x: nn.leaky_relu(x, negative_slope=0.2),
    "swish": nn.swish,
}


def get_act(name: str) -> Callable[[jax.Array], jax.Array]:
  """score_sde's config.model.nonlinearity names: elu | relu | lrelu | swish."""
  try:
    return ACTIVATIONS[name.lower()]
  except KeyError:
    raise ValueError(f"unknown nonlinearity {name!r}; valid: {', '.join(ACTIVATIONS)}") from None


def get_timestep_embedding(timesteps: jax.Array, embedding_dim: int,
                           max_positions: int = 10000) -> jax.Array:
  """DDPM's sinusoidal embedding: timesteps [B] -> [B, embedding_dim] = [sin | cos]."""
  half_dim = embedding_dim // 2
  freqs = jnp.exp(jnp.arange(half_dim, dtype=jnp.float32) * -(math.log(max_positions) /
                                                               (half_dim - 1)))
  emb = timesteps.astype(jnp.float32)[:, None] * freqs[None, :]
  emb = jnp.concatenate([jnp.sin(emb), jnp.cos(emb)], axis=1)
  if embedding_dim % 2 == 1:
    emb = jnp.pad(emb, ((0, 0), (0, 1)))
  return emb


class GaussianFourierProjection(nn.Module):
  """Random Fourier features of log-noise-levels: x [B] -> [B, 2 embedding_size]; W is frozen."""

  embedding_size: int = 256
  scale: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    w = self.param("W", jax.nn.initializers.normal(stddev=self.scale), (self.embedding_size,))
    w = jax.lax.stop_gradient(w)
    x_proj = x.astype(jnp.float32)[:, None] * w[None, :] * 2 * jnp.pi
    return jnp.concatenate([jnp.sin(x_proj), jnp.cos(x_proj)], axis=-1)


class NIN(nn.Module):
  """Per-pixel dense layer ("network in network"): x [..., Cin] -> [..., num_units]."""

  num_units: int
  init_scale: float = 0.1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    w = self.param("W", default_init(self.init_scale), (x.shape[-1], self.num_units))
    b = self.param("b", nn.initializers.zeros, (self.num_units,))
    return jnp.tensordot(x.astype(self.dtype), w.astype(self.dtype), 1) + b.astype(self.dtype)


def conv3x3(x: jax.Array, out_ch: int, *, conv_impl: str, dtype: Any, stride: int = 1,
            init_scale: float = 1.0) -> jax.Array:
  """score_sde's ddpm_conv3x3 (SAME padding, bias, DDPM init), created in the calling module."""
  return Conv(out_ch, 3, stride=stride, init_scale=init_scale, conv_impl=conv_impl,
              dtype=dtype)(x)


def conv1x1(x: jax.Array, out_ch: int, *, conv_impl: str, dtype: Any,
            init_scale: float = 1.0) -> jax.Array:
  """score_sde's ddpm_conv1x1, created in the calling module."""
  return Conv(out_ch, 1, init_scale=init_scale, conv_impl=conv_impl, dtype=dtype)(x)


def group_norm(x: jax.Array, num_groups: Optional[int], dtype: Any) -> jax.Array:
  """GroupNorm (epsilon 1e-6, statistics in float32); num_groups None: min(C // 4, 32) (NCSN++).

  norm.GroupNorm: flax's GroupNorm, computed with channel-minor reductions (faster on CPU)."""
  groups = num_groups if num_groups else min(x.shape[-1] // 4, 32)
  return GroupNorm(num_groups=groups, dtype=dtype)(x)


def dense(x: jax.Array, features: int, dtype: Any) -> jax.Array:
  """nn.Dense with DDPM's default initialiser."""
  return nn.Dense(features, kernel_init=default_init(), dtype=dtype)(x)


def skip_add(x: jax.Array, h: jax.Array, skip_rescale: bool) -> jax.Array:
  """Residual sum, divided by sqrt(2) when skip_rescale (NCSN++)."""
  return (x + h) / np.sqrt(2.0) if skip_rescale else x + h


class AttnBlockpp(nn.Module):
  """Self-attention over pixels: x [B, H, W, C] -> [B, H, W, C] (NCSN++'s AttnBlockpp)."""

  skip_rescale: bool = False
  init_scale: float = 0.0
  num_groups: Optional[int] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, height, width, c = x.shape
    h = group_norm(x, self.num_groups, self.dtype)
    q = NIN(c, dtype=self.dtype)(h)
    k = NIN(c, dtype=self.dtype)(h)
    v = NIN(c, dtype=self.dtype)(h)
    logits = jnp.einsum("bhwc,bHWc->bhwHW", q, k).astype(jnp.float32) * (int(c)**(-0.5))
    w = jax.nn.softmax(logits.reshape(b, height, width, height * width), axis=-1)
    w = w.reshape(b, height, width, height, width).astype(self.dtype)
    h = jnp.einsum("bhwHW,bHWc->bhwc", w, v)
    h = NIN(c, init_scale=self.init_scale, dtype=self.dtype)(h)
    return skip_add(x.astype(self.dtype), h, self.skip_rescale)


class AttnBlock(AttnBlockpp):
  """DDPM's attention block: the same computation; DDPM uses 32 groups, no rescale, init 0."""


class Combine(nn.Module):
  """Merges a pyramid input x into features y by a 1x1 conv, then concatenation or sum."""

  method: str = "cat"
  conv_impl: str = "auto"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
    h = conv1x1(x, y.shape[-1], conv_impl=self.conv_impl, dtype=self.dtype)
    if self.method == "cat":
      return jnp.concatenate([h, y.astype(h.dtype)], axis=-1)
    if self.method == "sum":
      return h + y
    raise ValueError(f"progressive_combine must be 'cat' or 'sum', got {self.method!r}")
