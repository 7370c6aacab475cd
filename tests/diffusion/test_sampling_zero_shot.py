"""Zero-shot inpainting and ODE reconstruction (msgm_jax/diffusion/sampling.py) on Gaussian data.

For data N(mu, S) every perturbed marginal is N(m mu, C_t) with C_t = m^2 S + std^2 I, so the
score is exact and linear, and the probability-flow map is affine: x_t - m_t mu =
C_t^(1/2) C_s^(-1/2) (x_s - m_s mu) (the C_t share eigenvectors). Inpainting by replacement
with the Euler-Maruyama predictor is then a linear Gaussian recursion whose output moments are
computed below in float64 numpy, independently of the sampler's code.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax.diffusion import sampling
from msgm_jax.diffusion import sde as sde_lib

SDE = sde_lib.VPSDE(N=200)
MU = np.array([0.3, -0.2, 0.5, 1.0])
KNOWN = np.array([0.0, 0.0, 1.0, 1.0])  # mask: the last two coordinates are known
N_SAMPLES = 4000


def _correlated(rho):
  a = np.array([[1.0, 0.3, rho, 0.2], [0.3, 1.0, 0.1, rho], [rho, 0.1, 1.0, 0.3],
                [0.2, rho, 0.3, 1.0]])
  return a * np.outer([1.0, 0.8, 1.2, 0.9], [1.0, 0.8, 1.2, 0.9])


def _scale_std(t):
  """m(t) and std(t) of the VP SDE (docs/method.md section 2), float64."""
  log_m = -t * t * (SDE.beta_max - SDE.beta_min) / 4 - t * SDE.beta_min / 2
  return np.exp(log_m), np.sqrt(-np.expm1(2 * log_m))


def gaussian_score_fn(mu, cov):
  """The exact score of N(mu, cov) perturbed by SDE (one time per batch)."""

  def score(x, t):
    m, s = SDE.marginal_prob(jnp.ones((1, 1)), t[:1])
    c = m[0, 0] ** 2 * cov + s[0] ** 2 * jnp.eye(cov.shape[0])
    return -jnp.linalg.solve(c, (x - m[0, 0] * mu).T).T

  return score


@jax.jit
def _inpaint(key, x0, mu, cov):
  return sampling.pc_inpaint(key, SDE, gaussian_score_fn(mu, cov), x0, jnp.asarray(KNOWN),
                             predictor="euler_maruyama", corrector="none")


def replacement_moments(mu, cov, b0, eps=1e-3):
  """Mean and covariance of the unknown coordinates after replacement inpainting with the
  Euler-Maruyama predictor, no corrector and the final denoise (float64 recursion)."""
  u, k = KNOWN == 0, KNOWN == 1
  mean, var = np.zeros(u.sum()), np.eye(u.sum())  # the prior N(0, I) where unknown
  dt = -SDE.T / SDE.N
  for i, t in enumerate(np.linspace(SDE.T, eps, SDE.N)):
    m, s = _scale_std(t)
    prec = np.linalg.inv(m * m * cov + s * s * np.eye(4))
    beta = SDE.beta_min + t * (SDE.beta_max - SDE.beta_min)
    # Before the predictor the known part is a fresh draw N(m b0, s^2 I) (replaced after the
    # corrector at this t), independent of the unknown part.
    a = np.eye(u.sum()) + dt * (-beta / 2 * np.eye(u.sum()) + beta * prec[np.ix_(u, u)])
    b = dt * beta * prec[np.ix_(u, k)]
    c = -dt * beta * (prec[np.ix_(u, u)] @ (m * mu[u]) + prec[np.ix_(u, k)] @ (m * mu[k]))
    mean = a @ mean + b @ (m * b0) + c
    noise = 0.0 if i == SDE.N - 1 else beta * -dt  # the last step returns the mean
    var = a @ var @ a.T + s * s * b @ b.T + noise * np.eye(u.sum())
  return mean, var


def _check_moments(x, mean, cov, n):
  """Sample mean and covariance against the truth, within 5 standard errors."""
  se_mean = np.sqrt(np.diag(cov) / n)
  np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * se_mean)
  # var(S_ij) = (C_ij^2 + C_ii C_jj) / n for Gaussian samples.
  se_cov = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / n)
  np.testing.assert_array_less(np.abs(np.cov(x.T) - cov), 5 * se_cov)


def test_inpaint_known_and_independent_parts_match_the_gaussian_conditional():
  """Known coordinates independent of the unknown ones: the conditional is the marginal."""
  cov = _correlated(0.0)
  cov[:2, 2:] = cov[2:, :2] = 0.0
  b0 = np.array([2.0, -1.5])
  x0 = np.tile(np.concatenate([[9.0, 9.0], b0]), (N_SAMPLES, 1)).astype(np.float32)
  x, nfe = _inpaint(jax.random.key(0), x0, MU.astype(np.float32), cov.astype(np.float32))
  x = np.asarray(x, np.float64)
  assert nfe == SDE.N
  m_eps, _ = _scale_std(1e-3)
  np.testing.assert_allclose(x[:, 2:], np.tile(m_eps * b0, (N_SAMPLES, 1)), rtol=1e-6)
  _check_moments(x[:, :2], MU[:2], cov[:2, :2], N_SAMPLES)


def test_inpaint_correlated_gaussian_has_the_replacement_recursions_moments():
  """With correlation the replacement scheme is not the exact conditional (score_sde's
  inpainter is an approximation); its output moments are the recursion's, and they differ
  from the conditional's by far more than the sampling error."""
  cov, b0 = _correlated(0.7), np.array([2.0, -1.5])
  x0 = np.tile(np.concatenate([[0.0, 0.0], b0]), (N_SAMPLES, 1)).astype(np.float32)
  x, _ = _inpaint(jax.random.key(1), x0, MU.astype(np.float32), cov.astype(np.float32))
  x = np.asarray(x, np.float64)[:, :2]
  mean, var = replacement_moments(MU, cov, b0)
  _check_moments(x, mean, var, N_SAMPLES)
  cond_mean = MU[:2] + cov[:2, 2:] @ np.linalg.solve(cov[2:, 2:], b0 - MU[2:])
  assert np.max(np.abs(cond_mean - mean) / np.sqrt(np.diag(var) / N_SAMPLES)) > 20


def test_inpaint_runs_with_langevin_corrector_on_images():
  """Any predictor/corrector pair, image-shaped data, a [H, W, C] mask."""
  sde = sde_lib.VESDE(N=10)
  x0 = jnp.ones((4, 2, 2, 1))
  mask = jnp.asarray([[[1.0], [0.0]], [[1.0], [0.0]]])
  out, nfe = jax.jit(lambda k: sampling.pc_inpaint(
      k, sde, lambda x, t: -x / (1.0 + sde.marginal_prob(x, t)[1][:, None, None, None] ** 2),
      x0, mask, n_steps=2))(jax.random.key(0))
  assert out.shape == x0.shape and nfe == 10 * 3 and np.all(np.isfinite(out))
  np.testing.assert_allclose(out[:, :, 0], 1.0)  # VE: m = 1, the known pixels come back


def _flow_map(cov, t_from, t_to):
  """The affine probability-flow map's matrix C_to^(1/2) C_from^(-1/2)."""
  lam, vec = np.linalg.eigh(cov)
  (m0, s0), (m1, s1) = _scale_std(t_from), _scale_std(t_to)
  ratio = np.sqrt((m1 * m1 * lam + s1 * s1) / (m0 * m0 * lam + s0 * s0))
  return vec @ np.diag(ratio) @ vec.T


@pytest.fixture(scope="module")
def reconstruct():
  cov = _correlated(0.5).astype(np.float32)
  score_fn = gaussian_score_fn(MU.astype(np.float32), cov)
  return cov, jax.jit(lambda k, x, t: sampling.ode_reconstruct(k, SDE, score_fn, x,
                                                                  perturb_t=t),
                      static_argnums=2)


def test_ode_encode_is_the_closed_form_flow_and_round_trips(reconstruct):
  cov, fn = reconstruct
  x = np.random.default_rng(0).multivariate_normal(MU, cov, size=16).astype(np.float32)
  x_rec, z, nfe = fn(jax.random.key(0), x, 0.0)
  (m0, _), (m1, _) = _scale_std(1e-3), _scale_std(SDE.T)
  expect = m1 * MU + (x - m0 * MU) @ _flow_map(cov, 1e-3, SDE.T).T
  np.testing.assert_allclose(z, expect, atol=2e-3)
  np.testing.assert_allclose(x_rec, x, atol=2e-3)  # no perturbation: back to the input
  assert 20 < int(nfe) < 2000


def test_reconstruct_perturbation_has_the_closed_form_moments(reconstruct):
  """Perturbing the latent by the marginal at t = 0.02 and decoding: the reconstructions of
  one input are N(D(m z), std^2 C_eps C_T^-1), D the affine decoding map."""
  cov, fn = reconstruct
  x = np.tile(np.array([1.0, 0.5, -0.5, 2.0], np.float32), (2000, 1))
  x_rec, z, _ = fn(jax.random.key(1), x, 0.02)
  mp, sp = _scale_std(0.02)
  (m0, _), (m1, _) = _scale_std(1e-3), _scale_std(SDE.T)
  decode = _flow_map(cov, SDE.T, 1e-3)
  mean = m0 * MU + decode @ (mp * np.asarray(z[0], np.float64) - m1 * MU)
  _check_moments(np.asarray(x_rec, np.float64), mean, sp * sp * decode @ decode.T, len(x))
