"""Dropout with one mask stream per example, inside one batched network pass.

The train step draws dropout masks per example (losses.example_keys: example i's key folds its
global index into the step key), so that splitting a global batch over devices changes no mask.
Running the whole network under `jax.vmap` over those keys does that for any flax model, but
XLA:CPU then lays the convolutions' weight gradients out per example and the step costs ~12%
more (docs/performance.md). The score networks here instead call this module, and
models.utils.make_score_fn hands it the [B] keys through `example_keys(...)` while the network
runs batched.

The masks are exactly those of the vmapped pass: there, example i's `Dropout` asks flax for
make_rng('dropout') with root key k_i, which folds a hash of the module's path and call count
into k_i (flax.core.scope.LazyRng); here the same fold is applied to every k_i at once.
Without `example_keys` (one key for the batch, or no per-example keys), this is
flax.linen.Dropout.
"""

import contextlib
import contextvars
from typing import Iterator, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core.scope import LazyRng
from jax import lax

_EXAMPLE_KEYS: contextvars.ContextVar = contextvars.ContextVar("msgm_example_dropout_keys",
                                                                 default=None)


@contextlib.contextmanager
def example_keys(keys: Optional[jax.Array]) -> Iterator[None]:
  """Within the block, `Dropout` layers draw example i's mask from keys[i] ([B] typed keys or
  [B, 2] raw keys, B the batch the network is then called on). Read at trace time, so it
  must surround the call that traces the network (not a separately jitted apply)."""
  token = _EXAMPLE_KEYS.set(keys)
  try:
    yield
  finally:
    _EXAMPLE_KEYS.reset(token)


class Dropout(nn.Module):
  """flax.linen.Dropout (same name, same masks) that also honours `example_keys`."""

  rate: float

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    if deterministic or self.rate == 0.0:
      return x
    if self.rate == 1.0:
      return jnp.zeros_like(x)
    keep = 1.0 - self.rate
    key = self.make_rng("dropout")  # also advances the call count, as flax's Dropout does
    keys = _EXAMPLE_KEYS.get()
    if keys is None:
      mask = jax.random.bernoulli(key, keep, x.shape)
    else:
      if keys.shape[0] != x.shape[0]:
        raise ValueError(f"example_keys gave {keys.shape[0]} keys for a batch of {x.shape[0]}")
      suffix = self.scope.path + (self.scope.rng_counters["dropout"],)
      draw = lambda k: jax.random.bernoulli(LazyRng.create(k, *suffix).as_jax_rng(), keep,
                                            x.shape[1:])
      mask = jax.vmap(draw)(keys)
    return lax.select(mask, x / keep, jnp.zeros_like(x))
