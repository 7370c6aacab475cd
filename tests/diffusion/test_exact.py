"""Closed-form perturbed mixture densities against scipy and finite differences."""

import jax.numpy as jnp
import numpy as np
from scipy import stats

from msgm_jax.diffusion import exact
from msgm_jax.diffusion import sde as sde_lib

MIX = exact.make_mixture([[-2.0, -2.0], [2.0, 2.0], [0.0, 0.5]], [0.3, 0.5, 0.2], [0.5, 0.3, 0.2])


def _scipy_logp(x, m, std):
  dens = sum(
      float(w) * stats.multivariate_normal(m * np.asarray(mu), (m**2 * s**2 + std**2) * np.eye(2)).pdf(x)
      for w, mu, s in zip(MIX.weights, MIX.means, MIX.stds))
  return np.log(dens)


def test_logp_and_score_match_scipy():
  sde = sde_lib.VPSDE()
  x = np.array([[-1.9, -2.2], [0.3, 0.4], [2.5, 1.0]], np.float32)
  t = 0.3
  m = float(np.exp(-t**2 * 19.9 / 4 - t * 0.05))
  std = np.sqrt(1 - m**2)
  tv = jnp.full((3,), t)
  np.testing.assert_allclose(exact.mixture_logp(sde, MIX, jnp.asarray(x), tv), _scipy_logp(x, m, std),
                             rtol=1e-4)
  h = 1e-3
  for d in range(2):
    e = np.zeros(2)
    e[d] = h
    fd = (_scipy_logp(x + e, m, std) - _scipy_logp(x - e, m, std)) / (2 * h)
    np.testing.assert_allclose(exact.mixture_score(sde, MIX, jnp.asarray(x), tv)[:, d], fd, rtol=1e-3,
                               atol=1e-3)
