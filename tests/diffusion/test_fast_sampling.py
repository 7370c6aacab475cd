"""The fixed-grid samplers (msgm_jax/diffusion/fast_sampling.py) driven by exact mixture scores: their
samples match the mixture, their error falls at their order as the steps grow, and they end
where the in-graph RK45 of the same probability-flow ODE ends from the same latent."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax.method import training_free as adjust
from msgm_jax.config import builders
from msgm_jax.diffusion import exact
from msgm_jax.diffusion import fast_sampling
from msgm_jax.runtime import parallel
from msgm_jax.diffusion import sampling
from msgm_jax.diffusion import sde as sde_lib
from msgm_jax.data import TOY2D_MIXTURE as TOY
from msgm_jax.experiments.toy_metrics import toy_metrics
from tests.diffusion.test_sampling import MIX, _check_matches_mixture

SDES = {"vp": (sde_lib.VPSDE(), 1e-3), "subvp": (sde_lib.subVPSDE(), 1e-3),
        "ve": (sde_lib.VESDE(), 1e-5)}
COMBOS = [(method, name) for method in fast_sampling.FAST_SAMPLERS for name, (sde, _) in
          SDES.items() if isinstance(sde, fast_sampling.FAST_SAMPLERS.get(method).sdes)]
# Overlapping components: the flow map is smooth everywhere, so every path converges at the
# solver's order (with MIX's separated modes a few paths near a watershed change mode at
# coarse steps, and their jumps of ~4 dominate a mean error).
SOFT = exact.make_mixture([[-1.0, -0.5], [1.0, 0.5]], [0.6, 0.8], [0.6, 0.4])
STEPS = (10, 20, 40, 80)
FINE = 1280  # the reference solution from the same latent
N_PATHS = 256
# Slopes of log error against log steps: -order within a tolerant band (measured: DDIM -1.0;
# DPM-Solver++ -1.7 to -1.9, Heun -2.1 on these grids).
BANDS = {1: (-1.25, -0.8), 2: (-2.6, -1.6)}


def _sampler(method, name, score_fn, shape, **kw):
  """A jitted latent -> endpoint of `method` at num_steps (static) without noise removal."""
  sde, eps = SDES[name]
  fn = fast_sampling.FAST_SAMPLERS.get(method).fn
  return jax.jit(lambda z, n: fn(jax.random.key(0), sde, score_fn, shape, num_steps=n, eps=eps,
                                 z=z, denoise=False, **kw)[0], static_argnums=1)


@pytest.fixture(scope="module", params=COMBOS, ids=[f"{m}-{s}" for m, s in COMBOS])
def paths(request):
  """(method, endpoints {steps: [N_PATHS, 2]} incl. FINE, RK45 endpoint) from one latent."""
  method, name = request.param
  sde, eps = SDES[name]
  score_fn = exact.mixture_score_fn(sde, SOFT)
  z = sde.prior_sampling(jax.random.key(0), (N_PATHS, 2))
  run = _sampler(method, name, score_fn, (N_PATHS, 2))
  ends = {n: np.asarray(run(z, n)) for n in STEPS + (FINE,)}
  rk45, _ = jax.jit(lambda z: sampling.ode_sample(None, sde, score_fn, z.shape, z=z, eps=eps,
                                                  rtol=1e-6, atol=1e-6))(z)
  return method, ends, np.asarray(rk45)


def test_error_falls_at_the_order_of_the_solver(paths):
  method, ends, _ = paths
  errors = [np.sqrt(np.mean(np.sum((ends[n] - ends[FINE]) ** 2, -1))) for n in STEPS]
  assert all(a > b for a, b in zip(errors, errors[1:])), errors
  slope = np.polyfit(np.log(STEPS), np.log(errors), 1)[0]
  lo, hi = BANDS[fast_sampling.FAST_SAMPLERS.get(method).order]
  assert lo < slope < hi, (slope, errors)


def test_endpoint_agrees_with_the_in_graph_rk45(paths):
  method, ends, rk45 = paths
  order = fast_sampling.FAST_SAMPLERS.get(method).order
  # The fine solution is the same ODE's to 1e-5 (2nd order) / 5e-3 (DDIM's Euler); at 80
  # steps a second-order solver is within 1e-2 of RK45, DDIM within 0.1.
  np.testing.assert_allclose(ends[FINE], rk45, atol=1e-4 if order == 2 else 1e-2)
  np.testing.assert_allclose(ends[80], rk45, atol=1e-2 if order == 2 else 0.1)


# Steps at which the samples match MIX to test_sampling's tolerances (measured at 20: weights
# within 0.03, means 0.07, stds 9%); DDIM's first-order Euler steps need more.
MATCH_STEPS = {"ddim": 100, "dpm_solver": 30, "heun": 30}


@pytest.mark.parametrize("method,name", COMBOS + [("ddim_eta1", "vp")])
def test_samples_reproduce_the_mixture(method, name):
  sde, eps = SDES[name]
  kw, steps = ({"eta": 1.0}, 200) if method == "ddim_eta1" else ({}, MATCH_STEPS[method])
  fn = fast_sampling.FAST_SAMPLERS.get(method.replace("_eta1", "")).fn
  x, nfe = jax.jit(lambda k: fn(k, sde, exact.mixture_score_fn(sde, MIX), (3000, 2),
                                num_steps=steps, eps=eps, **kw))(jax.random.key(2))
  assert nfe == (2 if method == "heun" else 1) * steps + 1  # + the final noise removal
  assert np.all(np.isfinite(x))
  _check_matches_mixture(x)


def test_ddim_with_eta_draws_fresh_noise_and_without_is_deterministic():
  sde, eps = SDES["vp"]
  score_fn = exact.mixture_score_fn(sde, SOFT)
  z = sde.prior_sampling(jax.random.key(0), (8, 2))
  run = jax.jit(lambda k, eta: fast_sampling.ddim_sample(k, sde, score_fn, (8, 2), num_steps=10,
                                                         eta=eta, eps=eps, z=z)[0])
  np.testing.assert_array_equal(run(jax.random.key(1), 0.0), run(jax.random.key(2), 0.0))
  assert not np.allclose(run(jax.random.key(1), 1.0), run(jax.random.key(2), 1.0))


def test_grids_run_from_T_to_eps_and_lambda_inverts():
  for sde, eps in SDES.values():
    t = np.linspace(eps, 1.0, 50)
    np.testing.assert_allclose(fast_sampling.time_of(sde, fast_sampling.half_log_snr(sde, t)),
                               t, rtol=1e-9, atol=1e-12)
    m, std = fast_sampling.scale_std(sde, t)
    mj, stdj = sde.marginal_prob(jnp.ones((50, 1)), jnp.asarray(t, jnp.float32))
    np.testing.assert_allclose(m, mj[:, 0], rtol=1e-5)
    np.testing.assert_allclose(std, stdj, rtol=1e-4)
    for grid in ("time", "lambda", "karras"):
      times = fast_sampling.time_grid(sde, grid, 12, eps)
      assert len(times) == 13 and times[0] == sde.T and times[-1] == eps
      assert np.all(np.diff(times) < 0)
    lam = fast_sampling.half_log_snr(sde, fast_sampling.time_grid(sde, "lambda", 12, eps))
    np.testing.assert_allclose(np.diff(lam), np.diff(lam)[0], rtol=1e-9)
    sigma = np.exp(-fast_sampling.half_log_snr(sde, fast_sampling.time_grid(sde, "karras", 12,
                                                                            eps)))
    np.testing.assert_allclose(np.diff(sigma ** (1 / fast_sampling.RHO)),
                               np.diff(sigma ** (1 / fast_sampling.RHO))[0], rtol=1e-6)


def test_compiles_once_and_refuses_an_sde_it_does_not_take():
  sde, eps = SDES["vp"]
  score_fn = exact.mixture_score_fn(sde, SOFT)
  run = jax.jit(chex.assert_max_traces(lambda k: fast_sampling.dpm_solver_sample(
      k, sde, score_fn, (8, 2), num_steps=5, eps=eps)[0], n=1))
  for seed in range(3):
    run(jax.random.key(seed))
  ve = SDES["ve"][0]
  for fn in (fast_sampling.ddim_sample, fast_sampling.dpm_solver_sample):
    with pytest.raises(ValueError, match=r"takes the SDEs vpsde, subvpsde, not vesde; use "
                       r"--config.sampling.method=heun"):
      fn(jax.random.key(0), ve, exact.mixture_score_fn(ve, SOFT), (8, 2))


def test_runs_data_parallel_under_the_training_free_adjustment():
  """The sample and eval modes' path: SamplerSpec.sample of an adjusted score, mapped over the
  8 test devices by parallel.data_parallel_sampler (a stream per device), on test_adjust.py's
  toy with the obtuse reflection. It lowers the NSFG rate (exact full mixture: 0.33) as the
  RK45 of the same adjusted flow does (measured 0.10 and 0.10, with 10% of the points off the
  data; the PC sampler's Langevin noise takes them back: 0.009)."""
  sde = sde_lib.VESDE(sigma_min=0.01, sigma_max=10.0, N=300)
  score_fn = exact.mixture_score_fn(sde, exact.make_mixture(TOY.means, TOY.stds, TOY.weights))
  refs = TOY.restrict([2]).sample(np.random.default_rng(0), 64)[0]
  ref = adjust.NSFGReference.build(refs, bandwidth=1.0, max_noise=1.0)
  adjusted = adjust.adjust("obtuse", score_fn, sde, ref, strength=3.0)
  spec = builders.SamplerSpec(method="heun", num_steps=30, eps=1e-5)
  devices = jax.local_devices()
  run = parallel.data_parallel_sampler(lambda k, _: spec.sample(k, sde, adjusted, (250, 2))[0],
                                       devices)
  x = np.asarray(parallel.gather(run(jax.random.key(0), parallel.replicate(jnp.zeros(()),
                                                                           devices))))
  assert x.shape == (len(devices), 250, 2) and not np.allclose(x[0], x[1])
  rk45 = jax.jit(lambda k: sampling.ode_sample(k, sde, adjusted, (2000, 2), eps=1e-5)[0])
  fast, ref_rates = (toy_metrics(np.asarray(v).reshape(-1, 2), TOY, [2], n_ref=4000)
                     for v in (x, rk45(jax.random.key(1))))
  assert fast["nsfg_rate"] < 0.2
  for k in ("nsfg_rate", "offmanifold"):
    np.testing.assert_allclose(fast[k], ref_rates[k], atol=0.03)
  np.testing.assert_allclose(fast["mode_shares"], [0.5, 0.5], atol=0.05)
