"""SDE formulas against closed form and against a fine Euler-Maruyama simulation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax.diffusion import sde as sde_lib

SDES = [sde_lib.VPSDE(), sde_lib.subVPSDE(), sde_lib.VESDE()]
IDS = ["vp", "subvp", "ve"]


def _closed_form(sde, t):
  """m(t), std(t) from docs/method.md section 2, written independently of sde.py."""
  if isinstance(sde, sde_lib.VESDE):
    return 1.0, 0.01 * (50.0 / 0.01) ** t
  log_m = -t**2 * (20.0 - 0.1) / 4 - t * 0.1 / 2
  m = np.exp(log_m)
  return m, (np.sqrt(1 - m**2) if isinstance(sde, sde_lib.VPSDE) else 1 - m**2)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_marginal_prob_matches_formula(sde):
  t = np.array([1e-5, 0.1, 0.5, 1.0], np.float32)
  x = jnp.ones((4, 3, 3, 1)) * 2.0
  mean, std = sde.marginal_prob(x, jnp.asarray(t))
  m, s = _closed_form(sde, t.astype(np.float64))
  np.testing.assert_allclose(mean[:, 0, 0, 0], 2.0 * np.broadcast_to(m, (4,)), rtol=1e-5)
  np.testing.assert_allclose(std, s, rtol=1e-4)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_marginals_match_forward_simulation(sde):
  """Simulate dx = f dt + g dw with 2000 EM steps from x0 ~ N(mu, s^2) and compare moments."""
  n, steps, mu, s = 20000, 2000, 1.5, 0.5
  key = jax.random.key(0)
  x0 = mu + s * jax.random.normal(key, (n, 2))
  ts = np.linspace(0, 1, steps + 1)

  def body(i, x):
    t = jnp.full((n,), ts[0]) + i / steps
    drift, diff = sde.sde(x, t)
    z = jax.random.normal(jax.random.fold_in(key, i + 1), x.shape)
    return x + drift / steps + sde_lib.batch_mul(diff, z) / np.sqrt(steps)

  for t_end in (0.3, 1.0):
    x = jax.jit(lambda x0: jax.lax.fori_loop(0, int(t_end * steps), body, x0))(x0)
    m_ratio, std = _closed_form(sde, t_end)
    var = m_ratio**2 * s**2 + std**2
    np.testing.assert_allclose(np.mean(x), m_ratio * mu, atol=4 * np.sqrt(var / (2 * n)) + 1e-3)
    np.testing.assert_allclose(np.var(x), var, rtol=0.03)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_prior_logp_is_gaussian_density(sde):
  from scipy import stats
  z = np.random.default_rng(0).normal(size=(3, 4, 2)) * sde.prior_std
  expect = stats.norm(0, sde.prior_std).logpdf(z).reshape(3, -1).sum(-1)
  np.testing.assert_allclose(sde.prior_logp(jnp.asarray(z, jnp.float32)), expect, rtol=1e-5)
  sample = sde.prior_sampling(jax.random.key(0), (4000, 3))
  np.testing.assert_allclose(np.std(sample), sde.prior_std, rtol=0.03)


def test_vp_discretize_is_ddpm_chain():
  """N steps of x <- x + f + G z reproduce alphabar: m = sqrt(prod alpha), var = 1 - prod alpha."""
  sde = sde_lib.VPSDE(N=100)
  x = jnp.ones((1, 1))
  m, var = 1.0, 0.0
  grid = np.linspace(1.0, 1e-3, sde.N)[::-1]  # the samplers' time grid, forwards
  for i in range(sde.N):
    t = jnp.full((1,), grid[i])
    assert int(sde.timestep(t)[0]) == i
    f, g = sde.discretize(x, t)
    a = float(f[0, 0]) + 1.0  # f = (sqrt(alpha_i) - 1) x at x = 1
    m, var = m * a, var * a**2 + float(g[0]) ** 2
  betas = np.linspace(0.1 / 100, 20.0 / 100, 100)
  abar = np.prod(1 - betas)
  np.testing.assert_allclose(m, np.sqrt(abar), rtol=1e-4)
  np.testing.assert_allclose(var, 1 - abar, rtol=1e-4)


def test_ve_discretize_follows_sigma_ladder():
  sde = sde_lib.VESDE(N=10)
  sigmas = np.exp(np.linspace(np.log(0.01), np.log(50.0), 10))
  t = jnp.asarray(np.linspace(1.0, 1e-5, 10)[::-1], jnp.float32)
  f, g = sde.discretize(jnp.ones((10, 2)), t)
  expect = np.sqrt(sigmas**2 - np.concatenate([[0.0], sigmas[:-1]]) ** 2)
  np.testing.assert_allclose(g, expect, rtol=1e-5)
  np.testing.assert_array_equal(f, 0.0)


def test_reverse_drift_and_probability_flow():
  sde = sde_lib.VESDE()
  score = lambda x, t: -x
  x, t = jnp.ones((2, 3)), jnp.array([0.2, 0.9])
  _, g = sde.sde(x, t)
  drift, diff = sde.reverse(score).sde(x, t)
  np.testing.assert_allclose(drift, (g**2)[:, None] * x, rtol=1e-6)
  np.testing.assert_allclose(diff, g)
  drift, diff = sde.reverse(score, probability_flow=True).sde(x, t)
  np.testing.assert_allclose(drift, 0.5 * (g**2)[:, None] * x, rtol=1e-6)
  np.testing.assert_array_equal(diff, 0.0)


def test_sdes_are_hashable_and_jit_static():
  calls = []

  def f(sde, x):
    calls.append(1)
    return sde.marginal_prob(x, jnp.ones(x.shape[0]))[1]

  jf = jax.jit(f, static_argnums=0)
  jf(sde_lib.VESDE(), jnp.ones((2, 2)))
  jf(sde_lib.VESDE(), jnp.ones((2, 2)))
  assert len(calls) == 1
  assert sde_lib.VPSDE() != sde_lib.subVPSDE()


def test_registry_and_errors():
  assert isinstance(sde_lib.get_sde("vesde", sigma_max=10.0), sde_lib.VESDE)
  assert sde_lib.get_sde("subvpsde").beta_max == 20.0
  with pytest.raises(ValueError, match="valid names: subvpsde, vesde, vpsde"):
    sde_lib.get_sde("ve")
  with pytest.raises(ValueError, match=r"x \(3, 2\) and t \(4,\)"):
    sde_lib.VPSDE().sde(jnp.ones((3, 2)), jnp.ones(4))
  with pytest.raises(ValueError, match="t must be a"):
    sde_lib.VESDE().marginal_prob(jnp.ones((3, 2)), jnp.ones(()))
