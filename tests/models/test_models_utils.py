"""models/utils.py: score parametrisation against the exact conditional score of x(t) | x0.

For x(t) = mean(t) x0 + std(t) z the exact score of the perturbation kernel is
-(x - mean) / std^2. An oracle "network" that recovers the true noise from its time label (and
so fails if the label convention is wrong) must then yield exactly that score.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax.diffusion import sde as sde_lib
from msgm_jax.models import utils

X0 = jax.random.normal(jax.random.PRNGKey(0), (3, 4, 4, 2))
Z = jax.random.normal(jax.random.PRNGKey(1), X0.shape)
T = jnp.array([0.05, 0.5, 0.93])


def _bcast(v):
  return v[:, None, None, None]


def vp_oracle_continuous(sde):
  """Takes label = 999 t, returns the noise z (the epsilon-prediction of a perfect network)."""

  def apply_fn(params, x, labels, train, rngs):
    mean, std = sde.marginal_prob(X0, labels / 999.0)
    return (x - mean) / _bcast(std)

  return apply_fn


# score_sde treats sub-VP as continuous even when continuous=False.
@pytest.mark.parametrize("sde,continuous", [(sde_lib.VPSDE(N=500), True),
                                            (sde_lib.subVPSDE(N=500), True),
                                            (sde_lib.subVPSDE(N=500), False)],
                         ids=["vp", "subvp", "subvp-discrete"])
def test_vp_family_continuous_score_is_exact(sde, continuous):
  mean, std = sde.marginal_prob(X0, T)
  x = mean + _bcast(std) * Z
  score_fn = utils.make_score_fn(vp_oracle_continuous(sde), {}, sde, continuous=continuous)
  np.testing.assert_allclose(score_fn(x, T), -(x - mean) / _bcast(std)**2, rtol=1e-4, atol=1e-4)


def test_vp_discrete_ddpm_score_is_exact():
  """Discrete DDPM: label t (N - 1), std sqrt(1 - alphas_cumprod[floor(t (N - 1))])."""
  sde = sde_lib.VPSDE(N=100)
  abar = np.cumprod(1.0 - np.linspace(0.1 / 100, 20.0 / 100, 100))
  i = np.floor(np.asarray(T) * 99).astype(int)
  mean, std = X0 * _bcast(jnp.asarray(np.sqrt(abar[i]))), jnp.asarray(np.sqrt(1 - abar[i]))
  x = mean + _bcast(std) * Z
  seen = {}

  def apply_fn(params, x, labels, train, rngs):
    seen["labels"] = labels
    return (x - mean) / _bcast(std)

  score = utils.make_score_fn(apply_fn, {}, sde, continuous=False)(x, T)
  np.testing.assert_allclose(seen["labels"], np.asarray(T) * 99, rtol=1e-6)
  np.testing.assert_allclose(score, -(x - mean) / _bcast(std)**2, rtol=1e-4, atol=1e-4)


def test_discrete_vp_model_under_the_flow_takes_the_continuous_std():
  """flow=True (ODE sampling, likelihoods): label t (N - 1), std of the VP SDE, as score_sde's
  continuous=True at N = 1000; at t = 1e-5 the discrete std is 10x the continuous one."""
  sde = sde_lib.VPSDE(N=1000)
  t = jnp.array([1e-5, 0.3, 0.9994])
  seen = []

  def apply_fn(params, x, labels, train, rngs):
    seen.append(labels)
    return jnp.ones_like(x)

  x = jnp.zeros((3, 2))
  flow = utils.make_score_fn(apply_fn, {}, sde, continuous=False, flow=True)(x, t)
  cont = utils.make_score_fn(apply_fn, {}, sde, continuous=True)(x, t)
  disc = utils.make_score_fn(apply_fn, {}, sde, continuous=False)(x, t)
  np.testing.assert_allclose(seen[0], np.asarray(t) * 999, rtol=1e-6)
  np.testing.assert_allclose(seen[0], seen[1], rtol=1e-6)
  b0, b1, tt = 0.1, 20.0, np.asarray(t, np.float64)
  std = np.sqrt(1 - np.exp(-0.5 * tt**2 * (b1 - b0) - tt * b0))
  np.testing.assert_allclose(flow, -1 / std[:, None] * np.ones((3, 2)), rtol=1e-4)
  np.testing.assert_allclose(flow, cont, rtol=1e-6)
  assert abs(float(disc[0, 0]) / float(flow[0, 0]) - 0.1) < 0.01


def test_discrete_ve_model_keeps_its_ladder_labels_under_the_flow():
  sde = sde_lib.VESDE(sigma_min=0.01, sigma_max=10.0, N=11)
  seen = []

  def apply_fn(params, x, labels, train, rngs):
    seen.append(labels)
    return x

  t = jnp.array([1.0, 0.52, 0.0])
  utils.make_score_fn(apply_fn, {}, sde, continuous=False, flow=True)(X0, t)
  np.testing.assert_array_equal(seen[0], [0.0, 5.0, 10.0])


def test_ve_continuous_score_is_exact():
  """VE: label sigma(t); a scale_by_sigma network outputs -z / sigma, which is the score."""
  sde = sde_lib.VESDE(sigma_min=0.01, sigma_max=10.0)
  _, sigma = sde.marginal_prob(X0, T)
  x = X0 + _bcast(sigma) * Z

  def apply_fn(params, x, labels, train, rngs):
    return -(x - X0) / _bcast(labels)**2  # raw output -z, divided by sigma = label

  score = utils.make_score_fn(apply_fn, {}, sde, continuous=True)(x, T)
  np.testing.assert_allclose(score, -(x - X0) / _bcast(sigma)**2, rtol=1e-4, atol=1e-4)


def test_ve_discrete_smld_labels_index_descending_ladder():
  """SMLD: label round((1 - t)(N - 1)) indexes get_sigmas (descending): t = 1 -> sigma_max."""
  sde = sde_lib.VESDE(sigma_min=0.01, sigma_max=10.0, N=11)
  t = jnp.array([1.0, 0.52, 0.0])
  ladder = utils.get_sigmas(0.01, 10.0, 11)
  np.testing.assert_allclose(ladder[[0, -1]], [10.0, 0.01], rtol=1e-6)
  np.testing.assert_allclose(ladder[::-1], sde.discrete_sigmas, rtol=1e-6)
  sigma = jnp.asarray(ladder[[0, 5, 10]], jnp.float32)
  x = X0 + _bcast(sigma) * Z

  def apply_fn(params, x, labels, train, rngs):
    np.testing.assert_array_equal(labels, [0.0, 5.0, 10.0])
    s = jnp.asarray(ladder, jnp.float32)[labels.astype(jnp.int32)]
    return -(x - X0) / _bcast(s)**2

  score = utils.make_score_fn(apply_fn, {}, sde, continuous=False)(x, t)
  np.testing.assert_allclose(score, -(x - X0) / _bcast(sigma)**2, rtol=1e-4, atol=1e-4)


def test_variables_train_flag_and_dropout_rng_are_passed_through():
  sde = sde_lib.VESDE()
  calls = []

  def apply_fn(params, x, labels, train, rngs):
    calls.append((params, train, rngs))
    return x

  key = jax.random.PRNGKey(3)
  variables = {"params": {"w": 1.0}}
  utils.make_score_fn(apply_fn, variables, sde, train=True, rng=key)(X0, T)
  utils.make_score_fn(apply_fn, variables, sde)(X0, T)
  assert calls[0][0] is variables and calls[0][1] is True and calls[0][2]["dropout"] is key
  assert calls[1][1] is False and calls[1][2] == {}
  with pytest.raises(ValueError, match="rng"):
    utils.make_score_fn(apply_fn, variables, sde, train=True)


def test_score_fn_is_jittable():
  sde = sde_lib.VPSDE()
  score_fn = utils.make_score_fn(vp_oracle_continuous(sde), {}, sde)
  mean, std = sde.marginal_prob(X0, T)
  x = mean + _bcast(std) * Z
  np.testing.assert_allclose(jax.jit(score_fn)(x, T), score_fn(x, T), rtol=1e-5, atol=1e-5)
