"""Probability-flow likelihoods against the analytic log-density of a Gaussian mixture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax.diffusion import exact
from msgm_jax.diffusion import likelihood
from msgm_jax.diffusion import sde as sde_lib

MIX = exact.make_mixture([[-2.0, -2.0], [2.0, 2.0], [0.0, 0.5]], [0.3, 0.5, 0.2], [0.5, 0.3, 0.2])
X = jnp.array([[-2.0, -1.8], [1.0, 1.5], [0.1, 0.3], [3.0, 3.0]])
SDES = {"vp": sde_lib.VPSDE(), "subvp": sde_lib.subVPSDE(), "ve": sde_lib.VESDE()}


def _swap_prior(sde, logp, z):
  """The model's prior is N(0, s_T^2 I), not exactly p_T; swap in the exact log p_T(z)."""
  return logp - sde.prior_logp(z) + exact.mixture_logp(sde, MIX, z, jnp.ones(z.shape[0]))


@pytest.mark.parametrize("name", list(SDES))
def test_exact_divergence_matches_analytic_logp(name):
  sde = SDES[name]
  score_fn = exact.mixture_score_fn(sde, MIX)
  logp, z, nfe = jax.jit(lambda k, x: likelihood.log_likelihood(
      k, sde, score_fn, x, divergence="exact"))(jax.random.key(0), X)
  truth = exact.mixture_logp(sde, MIX, X, jnp.full(len(X), 1e-5))
  np.testing.assert_allclose(_swap_prior(sde, logp, z), truth, atol=2e-3)
  # Without the swap, the only error is the prior mismatch, which is small by design.
  np.testing.assert_allclose(logp, truth, atol=0.05)
  assert z.shape == X.shape and 20 < int(nfe) < 2000


@pytest.mark.parametrize("divergence", ["hutchinson_rademacher", "hutchinson_gaussian"])
def test_hutchinson_is_unbiased(divergence):
  """Many independent probes at one point: the mean matches the truth within 4 standard errors."""
  sde = SDES["ve"]
  n = 256
  x = jnp.broadcast_to(X[1], (n, 2))
  logp, z, _ = jax.jit(lambda k: likelihood.log_likelihood(
      k, sde, exact.mixture_score_fn(sde, MIX), x, divergence=divergence))(jax.random.key(1))
  corrected = _swap_prior(sde, logp, z)
  truth = float(exact.mixture_logp(sde, MIX, X[1:2], jnp.full(1, 1e-5))[0])
  se = float(np.std(corrected)) / np.sqrt(n)
  assert se > 0  # the estimator is noisy in 2-D; the check is on its mean
  assert abs(float(np.mean(corrected)) - truth) < 4 * se + 1e-3


def test_bits_per_dim_offsets():
  d = 3 * 4 * 4
  logp = jnp.array([-d * np.log(2.0) * 2.5])
  np.testing.assert_allclose(likelihood.bits_per_dim(logp, (4, 4, 3), offset=8.0), [10.5], rtol=1e-6)
  np.testing.assert_allclose(likelihood.bits_per_dim(logp, (4, 4, 3)), [9.5], rtol=1e-6)


def test_bits_per_dim_of_uniform_dequantised_data_is_eight():
  """A model that is exactly uniform on [0,1]^D gives logp = 0 and 8 bits per dimension."""
  np.testing.assert_allclose(likelihood.bits_per_dim(jnp.zeros(2), (8, 8, 1), offset=8.0), 8.0)


def test_unknown_divergence_lists_valid_names():
  with pytest.raises(ValueError, match="valid names: exact, hutchinson_gaussian, hutchinson_rademacher"):
    likelihood.log_likelihood(jax.random.key(0), SDES["ve"], lambda x, t: -x, X, divergence="hutch")


def test_unfinished_solve_gives_nan_not_a_wrong_number():
  """max_steps too small to reach T: NaN log-densities and latents (and samples), never finite
  values that look like results."""
  from msgm_jax.diffusion import sampling  # pylint: disable=import-outside-toplevel
  sde, score_fn = SDES["ve"], exact.mixture_score_fn(SDES["ve"], MIX)
  logp, z, _ = likelihood.log_likelihood(jax.random.key(0), sde, score_fn, X,
                                         divergence="exact", max_steps=2)
  assert np.all(np.isnan(logp)) and np.all(np.isnan(z))
  x, _ = sampling.ode_sample(jax.random.key(0), sde, score_fn, (4, 2), max_steps=2)
  assert np.all(np.isnan(x))
  x, _ = sampling.ode_sample(jax.random.key(0), sde, score_fn, (4, 2))
  assert np.all(np.isfinite(x))
