"""Samplers driven by the exact score of known data must reproduce that data's distribution."""

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax.diffusion import exact
from msgm_jax.diffusion import sampling
from msgm_jax.diffusion import sde as sde_lib

# Three well-separated components with unequal weights and widths.
MIX = exact.make_mixture([[-2.0, -2.0], [2.0, 2.0], [0.0, 2.5]], [0.3, 0.5, 0.2], [0.5, 0.3, 0.2])
N_SAMPLES = 3000
SDES = {"vp": sde_lib.VPSDE(N=500), "subvp": sde_lib.subVPSDE(N=500),
        "ve": sde_lib.VESDE(N=500)}


def _combos():
  for (name, sde), p, c in itertools.product(SDES.items(), sampling.PREDICTORS,
                                             sampling.CORRECTORS):
    if p == "none" and c == "none":
      continue
    if p == "ancestral_sampling" and name == "subvp":
      continue
    yield name, p, c


def _component_stats(x):
  """Assigns samples to the nearest-likelihood component of the clean mixture."""
  comp = np.asarray(jnp.argmax(exact.component_log_joint(sde_lib.VESDE(sigma_min=1e-4), MIX,
                                                         jnp.asarray(x), jnp.zeros(len(x))), -1))
  weights = np.bincount(comp, minlength=3) / len(x)
  means = np.stack([x[comp == k].mean(0) for k in range(3)])
  stds = np.array([(x[comp == k] - means[k]).std() for k in range(3)])
  return weights, means, stds


def _check_matches_mixture(x, weight_tol=0.035, mean_tol=0.1, std_rtol=0.12):
  weights, means, stds = _component_stats(np.asarray(x))
  np.testing.assert_allclose(weights, MIX.weights, atol=weight_tol)
  np.testing.assert_allclose(means, MIX.means, atol=mean_tol)
  np.testing.assert_allclose(stds, MIX.stds, rtol=std_rtol)


@pytest.mark.parametrize("sde_name,predictor,corrector", list(_combos()))
def test_pc_sample_reproduces_mixture(sde_name, predictor, corrector):
  sde = SDES[sde_name]
  corrector_only = predictor == "none"
  # Corrector-only sampling is annealed Langevin: exact only as steps per noise level grow,
  # so it runs 4 steps per level and is held to a looser tolerance. ALD's step (snr std)^2
  # follows the noise scale only, while in the VP family the mean m(t) x0 also moves from 0.007
  # to 1; at snr 0.16 the samples lag behind it (means ~10% short), so ALD uses snr 0.5 here.
  n_steps = 4 if corrector_only else 1
  snr = 0.5 if corrector_only and corrector == "ald" else 0.16
  run = jax.jit(lambda k: sampling.pc_sample(
      k, sde, exact.mixture_score_fn(sde, MIX), (N_SAMPLES, 2), predictor=predictor,
      corrector=corrector, n_steps=n_steps, snr=snr))
  x, nfe = run(jax.random.key(0))
  assert x.shape == (N_SAMPLES, 2) and np.all(np.isfinite(x))
  per_step = (0 if corrector_only else 1) + (0 if corrector == "none" else n_steps)
  assert nfe == sde.N * per_step
  if corrector_only:
    _check_matches_mixture(x, weight_tol=0.06, mean_tol=0.15, std_rtol=0.2)
  else:
    _check_matches_mixture(x)


@pytest.mark.parametrize("sde_name", list(SDES))
def test_ode_sample_reproduces_mixture_and_decodes_latents(sde_name):
  sde = SDES[sde_name]
  score_fn = exact.mixture_score_fn(sde, MIX)
  run = jax.jit(lambda k: sampling.ode_sample(k, sde, score_fn, (N_SAMPLES, 2)))
  x, nfe = run(jax.random.key(1))
  _check_matches_mixture(x)
  assert 20 < int(nfe) < 1000
  # Decoding a given latent is deterministic and equals sampling with that latent.
  z = sde.prior_sampling(jax.random.key(1), (N_SAMPLES, 2))
  x2, _ = jax.jit(lambda z: sampling.ode_sample(None, sde, score_fn, (N_SAMPLES, 2), z=z))(z)
  # Adaptive step sequences may differ in the last bits between the two compiled graphs.
  np.testing.assert_allclose(x2, x, atol=2e-3)


def test_ode_sample_of_gaussian_is_exact_transport():
  """For Gaussian data the flow map is affine: z -> m0 + (s0 / s_T) (z - m_T)."""
  sde = sde_lib.VPSDE()
  mix = exact.make_mixture([[1.0, -1.0]], [0.5])
  z = jnp.asarray(np.random.default_rng(0).normal(size=(64, 2)), jnp.float32)
  x, _ = sampling.ode_sample(None, sde, exact.mixture_score_fn(sde, mix), (64, 2), z=z, eps=1e-5)
  m1, std1 = sde.marginal_prob(jnp.ones((1, 1)), jnp.ones(1))
  s_t = jnp.sqrt(m1[0, 0] ** 2 * 0.25 + std1[0] ** 2)
  x_eps_std = 0.5  # at eps = 1e-5 the data std is unchanged to 1e-5
  expect = mix.means[0] + x_eps_std / s_t * (z - m1[0, 0] * mix.means[0])
  np.testing.assert_allclose(x, expect, atol=2e-3)


class JitConsistencyTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_pc_sample_same_with_and_without_jit(self):
    sde = sde_lib.VESDE(N=20)
    score_fn = exact.mixture_score_fn(sde, MIX)
    fn = self.variant(lambda k: sampling.pc_sample(k, sde, score_fn, (16, 2))[0])
    ref = jax.jit(lambda k: sampling.pc_sample(k, sde, score_fn, (16, 2))[0])(jax.random.key(3))
    np.testing.assert_allclose(fn(jax.random.key(3)), ref, rtol=1e-4, atol=1e-4)

  @chex.variants(with_jit=True, without_jit=True)
  def test_ode_sample_same_with_and_without_jit(self):
    sde = sde_lib.VPSDE()
    score_fn = exact.mixture_score_fn(sde, MIX)
    fn = self.variant(lambda k: sampling.ode_sample(k, sde, score_fn, (16, 2))[0])
    ref = jax.jit(lambda k: sampling.ode_sample(k, sde, score_fn, (16, 2))[0])(jax.random.key(3))
    np.testing.assert_allclose(fn(jax.random.key(3)), ref, rtol=1e-4, atol=1e-4)


def test_samplers_compile_once():
  sde = sde_lib.VESDE(N=10)
  score_fn = exact.mixture_score_fn(sde, MIX)
  pc = jax.jit(chex.assert_max_traces(
      lambda k: sampling.pc_sample(k, sde, score_fn, (8, 2))[0], n=1))
  ode = jax.jit(chex.assert_max_traces(
      lambda k: sampling.ode_sample(k, sde, score_fn, (8, 2))[0], n=1))
  for seed in range(3):
    pc(jax.random.key(seed))
    ode(jax.random.key(seed))


def test_bad_names_and_shapes():
  sde = sde_lib.VESDE(N=4)
  score_fn = exact.mixture_score_fn(sde, MIX)
  with pytest.raises(ValueError, match="valid names: .*euler_maruyama"):
    sampling.pc_sample(jax.random.key(0), sde, score_fn, (4, 2), predictor="euler")
  with pytest.raises(ValueError, match="valid names: ald, langevin, none"):
    sampling.pc_sample(jax.random.key(0), sde, score_fn, (4, 2), corrector="hmc")
  with pytest.raises(ValueError, match="ancestral_sampling supports vpsde and vesde"):
    sampling.pc_sample(jax.random.key(0), sde_lib.subVPSDE(N=4), score_fn, (4, 2),
                       predictor="ancestral_sampling")
  with pytest.raises(ValueError, match=r"latent z has shape \(3, 2\) but shape is \(4, 2\)"):
    sampling.ode_sample(jax.random.key(0), sde, score_fn, (4, 2), z=jnp.zeros((3, 2)))


def _alpha_in_numpy(name, t, n=1000):
  """score_sde's Langevin factor: 1 - beta_i at i = floor(t (N - 1)) with DDPM's betas
  linspace(0.1 / N, 20 / N, N) for the VP family; 1 for VE."""
  if name == "ve":
    return 1.0
  return 1.0 - np.linspace(0.1 / n, 20.0 / n, n)[int(np.floor(t * (n - 1)))]


@pytest.mark.parametrize("name", ["vp", "subvp", "ve"])
@pytest.mark.parametrize("t0", [0.999, 0.5, 0.02])
def test_one_langevin_step_has_the_formula_step_size(name, t0):
  """One corrector step with a known constant score c: x_mean = x + e c and x = x_mean +
  sqrt(2 e) z, so e and z are read off the output; e must be 2 alpha_i (snr mean|z| /
  mean|c|)^2 (score_sde's LangevinCorrector; norms per example, averaged over the batch)."""
  sde = {"vp": sde_lib.VPSDE(), "subvp": sde_lib.subVPSDE(), "ve": sde_lib.VESDE()}[name]
  c = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2.0, (16, 3)), jnp.float32)
  x = jnp.zeros((16, 3))  # x_mean - x without cancellation: the steps reach 1e-6
  t = jnp.full((16,), t0)
  snr = 0.16
  update = sampling.CORRECTORS.get("langevin").fn
  x_new, x_mean = update(jax.random.key(4), x, t, lambda x, t: c, sde=sde, snr=snr, n_steps=1)
  step = np.asarray(x_mean - x, np.float64) / np.asarray(c, np.float64)
  np.testing.assert_allclose(step, step[0, 0], rtol=1e-4)  # one step size for the batch
  e = float(np.mean(step))
  z = np.asarray(x_new - x_mean, np.float64) / np.sqrt(2 * e)
  ratio = snr * np.linalg.norm(z, axis=1).mean() / np.linalg.norm(np.asarray(c), axis=1).mean()
  np.testing.assert_allclose(e, 2 * _alpha_in_numpy(name, t0) * ratio**2, rtol=1e-4)
  # ALD: e = 2 alpha_i (snr std(t))^2 with the marginal std (docs/method.md section 2).
  update = sampling.CORRECTORS.get("ald").fn
  _, x_mean = update(jax.random.key(4), x, t, lambda x, t: c, sde=sde, snr=snr, n_steps=1)
  std = float(sde.marginal_prob(x, t)[1][0])
  np.testing.assert_allclose(np.asarray(x_mean - x) / np.asarray(c),
                             2 * _alpha_in_numpy(name, t0) * (snr * std) ** 2, rtol=1e-4)


def _gaussian_marginal_std(sde, s0, t):
  """std of x(t) for data N(mu, s0^2 I): sqrt(m(t)^2 s0^2 + std(t)^2), [len(t)]."""
  m, std = sde.marginal_prob(jnp.ones((len(t), 1)), jnp.asarray(t))
  return np.sqrt(np.asarray(m[:, 0]) ** 2 * s0**2 + np.asarray(std) ** 2)


def test_ode_trajectory_follows_the_exact_gaussian_flow():
  """Gaussian data: (x(t) - m(t) mu) / s(t) is constant along the flow, at every frame."""
  sde = sde_lib.VPSDE()
  mu, s0 = np.array([1.0, -1.0]), 0.5
  score_fn = exact.mixture_score_fn(sde, exact.make_mixture([mu], [s0]))
  z = jnp.asarray(np.random.default_rng(0).normal(size=(64, 2)), jnp.float32)
  frames, times, nfe = jax.jit(lambda z: sampling.ode_trajectory(
      None, sde, score_fn, (64, 2), num_frames=4, eps=1e-5, z=z))(z)
  assert frames.shape == (5, 64, 2) and times.shape == (5,) and int(nfe) > 20
  np.testing.assert_allclose(times, np.linspace(1.0, 1e-5, 5), rtol=1e-6)
  m = np.asarray(sde.marginal_prob(jnp.ones((5, 1)), times)[0][:, 0])
  s = _gaussian_marginal_std(sde, s0, times)
  expect = m[:, None, None] * mu + (s / s[0])[:, None, None] * (np.asarray(z) - m[0] * mu)
  np.testing.assert_allclose(frames, expect, atol=2e-3)


def test_pc_trajectory_ends_at_pc_sample_and_has_the_marginal_spread():
  sde = sde_lib.VESDE(sigma_max=10.0, N=100)
  mu, s0 = np.array([2.0, -1.0]), 0.5
  score_fn = exact.mixture_score_fn(sde, exact.make_mixture([mu], [s0]))
  run = jax.jit(lambda k: sampling.pc_trajectory(k, sde, score_fn, (2000, 2), num_frames=4,
                                                 eps=1e-5))
  frames, times, nfe = run(jax.random.key(7))
  x, nfe_sample = sampling.pc_sample(jax.random.key(7), sde, score_fn, (2000, 2), eps=1e-5)
  assert frames.shape == (5, 2000, 2) and nfe == nfe_sample == 200
  np.testing.assert_allclose(frames[-1], x, atol=1e-5)
  np.testing.assert_allclose(np.asarray(times)[[0, -1]], [1.0, 1e-5], rtol=1e-6)
  assert np.all(np.diff(np.asarray(times)) < 0)
  # Each frame is a draw from the perturbed data at its time: mean mu, std s(t) per axis.
  spread = np.asarray(frames).std(axis=1).mean(-1)
  np.testing.assert_allclose(spread, _gaussian_marginal_std(sde, s0, times), rtol=0.08)
  np.testing.assert_allclose(np.asarray(frames[-1]).mean(0), mu, atol=0.05)
  with pytest.raises(ValueError, match="num_frames=3 must divide the SDE's N=100"):
    sampling.pc_trajectory(jax.random.key(0), sde, score_fn, (4, 2), num_frames=3)
