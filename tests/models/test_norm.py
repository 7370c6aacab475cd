"""norm.GroupNorm is flax's GroupNorm: values, both derivatives, parameters and dtypes."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax.models.norm import GroupNorm, group_norm_stats


def _inputs(shape, seed=0):
  k = jax.random.split(jax.random.key(seed), 3)
  x = 3.0 * jax.random.normal(k[0], shape) + 1.5  # an offset mean: E[x^2] - E[x]^2 is not trivial
  c = shape[-1]
  params = {"scale": 1.0 + 0.2 * jax.random.normal(k[1], (c,)),
            "bias": 0.3 * jax.random.normal(k[2], (c,))}
  return x, params


# group sizes 1, 3 (the DDPM U-Net's 96 channels in 32 groups), 4; a non-image rank
@pytest.mark.parametrize("shape,groups", [((2, 5, 4, 8), 8), ((3, 4, 4, 96), 32),
                                          ((2, 6, 6, 16), 4), ((4, 7, 12), 3)])
def test_equals_flax_group_norm_values_and_derivatives(shape, groups):
  x, params = _inputs(shape)
  ours = lambda x, p: GroupNorm(num_groups=groups).apply({"params": p}, x)
  flax_gn = lambda x, p: nn.GroupNorm(num_groups=groups, epsilon=1e-6).apply({"params": p}, x)
  np.testing.assert_allclose(ours(x, params), flax_gn(x, params), rtol=2e-5, atol=2e-5)
  w = jax.random.normal(jax.random.key(9), shape)
  loss = lambda f: lambda x, p: jnp.sum(jax.nn.swish(f(x, p)) * w)
  g_ours = jax.grad(loss(ours), argnums=(0, 1))(x, params)
  g_flax = jax.grad(loss(flax_gn), argnums=(0, 1))(x, params)
  for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_flax)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(b))))
  v = jax.random.normal(jax.random.key(3), shape)  # forward mode: the likelihood's jvp
  _, t_ours = jax.jvp(lambda x: ours(x, params), (x,), (v,))
  _, t_flax = jax.jvp(lambda x: flax_gn(x, params), (x,), (v,))
  np.testing.assert_allclose(t_ours, t_flax, rtol=1e-4, atol=1e-4)


def test_normalises_each_example_and_group_exactly():
  """Closed form: per example and group, scale 1 / bias 0 gives mean 0 and variance
  var / (var + eps); the statistics equal numpy's over the group's pixels and channels."""
  x, _ = _inputs((2, 3, 5, 6), seed=4)
  mean, var = group_norm_stats(x, 2)
  xg = np.asarray(x, np.float64).reshape(2, 15, 2, 3).transpose(0, 2, 1, 3).reshape(2, 2, -1)
  np.testing.assert_allclose(mean, xg.mean(-1), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(var, xg.var(-1), rtol=1e-4)
  y = GroupNorm(num_groups=2).apply({"params": {"scale": jnp.ones(6), "bias": jnp.zeros(6)}}, x)
  yg = np.asarray(y, np.float64).reshape(2, 15, 2, 3).transpose(0, 2, 1, 3).reshape(2, 2, -1)
  np.testing.assert_allclose(yg.mean(-1), 0.0, atol=1e-5)
  np.testing.assert_allclose(yg.var(-1), xg.var(-1) / (xg.var(-1) + 1e-6), rtol=1e-4)


def test_same_parameters_as_flax_and_dtypes():
  x = jnp.ones((2, 4, 4, 8))
  ours = GroupNorm(num_groups=4).init(jax.random.key(0), x)
  theirs = nn.GroupNorm(num_groups=4).init(jax.random.key(0), x)
  assert jax.tree.map(jnp.shape, ours) == jax.tree.map(jnp.shape, theirs)
  y = GroupNorm(num_groups=4, dtype=jnp.bfloat16).apply(ours, x)
  assert y.dtype == jnp.bfloat16
  assert GroupNorm(num_groups=4).apply(ours, x.astype(jnp.bfloat16)).dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="num_groups to a divisor"):
    GroupNorm(num_groups=3).init(jax.random.key(0), x)
