"""Parameter table of a model, computed with jax.eval_shape (no parameters are materialised)."""

from typing import Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util


def param_shapes(model: nn.Module, input_shape: Sequence[int]) -> dict:
  """{'params': ...} of ShapeDtypeStructs for inputs [1, *input_shape] and labels [1]."""
  x = jnp.zeros((1, *input_shape), jnp.float32)
  labels = jnp.ones((1,), jnp.float32)
  key = jax.random.PRNGKey(0)
  return jax.eval_shape(
      lambda: model.init({"params": key, "dropout": key}, x, labels, train=False))


def summarize(model: nn.Module, input_shape: Sequence[int]) -> Tuple[str, int]:
  """-> (table with one row per parameter: path, shape, size; total parameter count).

  input_shape excludes the batch dimension: (32, 32, 3) for CIFAR-10, (2,) for 2-D points.
  """
  flat = traverse_util.flatten_dict(param_shapes(model, input_shape)["params"], sep="/")
  rows = [(path, str(tuple(s.shape)), int(np.prod(s.shape))) for path, s in sorted(flat.items())]
  n_params = sum(r[2] for r in rows)
  width = max([len("parameter")] + [len(r[0]) for r in rows])
  swidth = max([len("shape")] + [len(r[1]) for r in rows])
  lines = [f"{'parameter':<{width}}  {'shape':<{swidth}}  {'size':>12}"]
  lines.append("-" * len(lines[0]))
  lines += [f"{p:<{width}}  {s:<{swidth}}  {n:>12,}" for p, s, n in rows]
  return "\n".join(lines), n_params


def param_count(model: nn.Module, input_shape: Sequence[int]) -> int:
  """The number of parameters (no parameters are materialised)."""
  return sum(int(np.prod(s.shape)) for s in jax.tree.leaves(param_shapes(model, input_shape)))
