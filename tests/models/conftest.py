"""Shared helpers for the model tests."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest


def _fill(path, shape, rng):
  name = jax.tree_util.keystr(path)
  if "scale" in name:  # GroupNorm scales around 1
    return 1.0 + 0.1 * rng.standard_normal(shape)
  if len(shape) >= 2:
    return rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))
  return 0.1 * rng.standard_normal(shape)


@pytest.fixture(scope="session")
def random_variables():
  """fn(model, x, labels, seed=0) -> variables with random values, without compiling init.

  jit(model.init) of even a tiny U-Net compiles for ~30 s on the 2-core CPU (one threefry per
  parameter); eval_shape plus NumPy fills the same tree in milliseconds.
  """

  def make(model, x, labels, seed=0):
    key = jax.random.PRNGKey(0)
    shapes = jax.eval_shape(lambda: model.init({"params": key, "dropout": key}, x, labels))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map_with_path(
        lambda p, s: jnp.asarray(_fill(p, s.shape, rng), s.dtype), shapes)

  return make


@pytest.fixture(scope="session")
def fast_jit():
  """jax.jit with XLA's backend optimisations off: tiny test models compile about 2x faster on
  CPU (e.g. 16 s -> 8 s for a tiny U-Net's gradient) and run about as fast."""
  return functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
