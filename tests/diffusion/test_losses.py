"""DSM losses against their closed-form expectation for Gaussian data under the true score."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from msgm_jax.diffusion import exact
from msgm_jax.diffusion import losses
from msgm_jax.diffusion import sde as sde_lib

MU, S, D, B = 0.7, 0.4, 3, 20000


def _expected_residual(m2, std2):
  """E (std s* + z)^2 per dimension at the true score for N(mu, S^2) data: m^2 S^2 / v."""
  return m2 * S**2 / (m2 * S**2 + std2)


def _data_and_score(sde):
  mix = exact.make_mixture([[MU] * D], [S])
  x = MU + S * jax.random.normal(jax.random.key(0), (B, D))
  return x, exact.mixture_score_fn(sde, mix)


def test_continuous_dsm_at_true_score_matches_quadrature():
  sde = sde_lib.VESDE()
  x, score_fn = _data_and_score(sde)
  cfg = losses.LossConfig(continuous=True, reduce_mean=True)
  keys = losses.example_keys(jax.random.key(1), jnp.arange(B))
  value = float(jnp.mean(losses.dsm_loss(keys, x, score_fn, sde, cfg)))
  sigma = lambda t: 0.01 * (50.0 / 0.01) ** t
  expect = integrate.quad(lambda t: _expected_residual(1.0, sigma(t) ** 2), 1e-5, 1)[0] / (1 - 1e-5)
  assert abs(value - expect) < 0.02 * expect
  # reduce_mean=False is 0.5 * sum over the D dimensions.
  half_sum = losses.dsm_loss(keys, x, score_fn, sde, losses.LossConfig(reduce_mean=False))
  np.testing.assert_allclose(jnp.mean(half_sum), 0.5 * D * value, rtol=1e-5)


def test_ddpm_loss_at_true_score_matches_discrete_average():
  sde = sde_lib.VPSDE()
  x, score_fn = _data_and_score(sde)
  keys = losses.example_keys(jax.random.key(2), jnp.arange(B))
  value = float(jnp.mean(losses.dsm_loss(keys, x, score_fn, sde,
                                         losses.LossConfig(continuous=False, reduce_mean=True))))
  abar = np.cumprod(1 - np.linspace(0.1 / 1000, 20 / 1000, 1000))
  expect = np.mean(_expected_residual(abar, 1 - abar))
  assert abs(value - expect) < 0.03 * expect


def test_true_score_minimises_the_loss():
  sde = sde_lib.subVPSDE()
  x, score_fn = _data_and_score(sde)
  keys = losses.example_keys(jax.random.key(3), jnp.arange(B))
  cfg = losses.LossConfig(reduce_mean=True)
  base = jnp.mean(losses.dsm_loss(keys, x, score_fn, sde, cfg))
  for scale in (0.9, 1.1):
    worse = jnp.mean(losses.dsm_loss(keys, x, lambda y, t: scale * score_fn(y, t), sde, cfg))
    assert worse > base


def test_likelihood_weighting_is_g2_over_std2():
  sde = sde_lib.VESDE()
  x, score_fn = _data_and_score(sde)
  keys = losses.example_keys(jax.random.key(4), jnp.arange(8))
  plain = losses.perturb(keys, x[:8], score_fn, sde, losses.LossConfig())
  weighted = losses.perturb(keys, x[:8], score_fn, sde,
                            losses.LossConfig(likelihood_weighting=True))
  # Same draws; weight = g^2 / std^2 = 2 ln(s1 / s0) for the VE SDE at every t.
  np.testing.assert_allclose(weighted.z, plain.z)
  np.testing.assert_allclose(weighted.weight, 2 * np.log(50 / 0.01), rtol=1e-5)
  with pytest.raises(ValueError, match="likelihood_weighting needs training.continuous=True"):
    losses.LossConfig(continuous=False, likelihood_weighting=True)


def test_per_example_noise_is_independent_of_batch_split():
  sde = sde_lib.VESDE()
  x, score_fn = _data_and_score(sde)
  ids = jnp.arange(16)
  key = jax.random.key(5)
  whole = losses.dsm_loss(losses.example_keys(key, ids), x[:16], score_fn, sde, losses.LossConfig())
  halves = [losses.dsm_loss(losses.example_keys(key, ids[i:i + 8]), x[i:i + 8], score_fn, sde,
                            losses.LossConfig()) for i in (0, 8)]
  np.testing.assert_allclose(whole, jnp.concatenate(halves), rtol=1e-6)


def test_step_time_maps_to_each_step():
  for sde in (sde_lib.VPSDE(), sde_lib.VESDE(N=10)):
    i = jnp.arange(sde.N)
    np.testing.assert_array_equal(sde.timestep(sde.step_time(i)), i)
