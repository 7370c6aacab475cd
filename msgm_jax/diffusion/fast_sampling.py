"""Few-step samplers of the probability-flow ODE: DDIM, DPM-Solver++(2M) and Heun (EDM).

All three solve the probability-flow ODE (Song et al. 2021, eq. 13) on a fixed grid of
`num_steps` steps from T to eps, in the variables of Karras et al. 2022 (EDM, eq. 4): with
m(t), std(t) the SDE's marginal (x_t = m x_0 + std z), the scaled state y = x / m, the noise
level sigma = std / m = exp(-lambda) (lambda = log(m / std), half the log-SNR) and the data
prediction D(x, t) = (x + std^2 score(x, t)) / m (Tweedie's formula), the ODE reads

    dy / dsigma = (y - D) / sigma = -std(t) score(m y, t).

That holds for every SDE whose marginal agrees with its drift and diffusion (VE, VP, sub-VP).
- DDIM (Song, Meng & Ermon 2021, eq. 12) is this ODE's Euler step in sigma, on a grid uniform
  in t; eta > 0 draws part of each step's noise afresh (their eq. 16). First order.
- DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) integrates the linear part exactly in lambda
  and extrapolates D linearly from the last two steps, on a grid uniform in lambda; its first
  step is DDIM's. Second order, one score evaluation per step.
- Heun (EDM, Algorithm 1) on sigma_i = (sigma(T)^(1/rho) + i / N (sigma(eps)^(1/rho) -
  sigma(T)^(1/rho)))^rho, rho = 7. Second order, two evaluations per step (the grid ends at
  sigma(eps) > 0, so the last step is a Heun step too).
DDIM and DPM-Solver++ are the DDPM parametrisation's solvers and take the VP family only;
Heun takes every SDE. The grids are computed in float64 when the sampler is traced (the SDE
and num_steps are static), so each sampler is one `lax.fori_loop` that runs under plain `jit`
and, unchanged, inside pmap (msgm_jax/runtime/parallel.py). score_fn(x [B, ...], t [B]) -> score.
"""

import dataclasses
from typing import Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from msgm_jax.diffusion import sampling
from msgm_jax.registry import Registry
from msgm_jax.diffusion.sde import SDES, VESDE, VPSDE, subVPSDE

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]
RHO = 7.0  # EDM's time-step exponent (Karras et al. 2022, eq. 5)


# ------------------------------------------------------------------ the grids (numpy, float64)

def scale_std(sde, t: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """m(t), std(t) of the SDE's marginal at times t, in float64 (sde.marginal_prob's formulas)."""
  t = np.asarray(t, np.float64)
  if isinstance(sde, VESDE):
    return np.ones_like(t), sde.sigma_min * (sde.sigma_max / sde.sigma_min) ** t
  lmc = sde.log_mean_coeff(t)
  std = -np.expm1(2.0 * lmc)
  return np.exp(lmc), (std if isinstance(sde, subVPSDE) else np.sqrt(std))


def half_log_snr(sde, t: np.ndarray) -> np.ndarray:
  """lambda(t) = log(m(t) / std(t)), decreasing in t."""
  m, std = scale_std(sde, t)
  return np.log(m) - np.log(std)


def time_of(sde, lam: np.ndarray) -> np.ndarray:
  """The inverse of half_log_snr: t with lambda(t) = lam, in closed form."""
  lam = np.asarray(lam, np.float64)
  if isinstance(sde, VESDE):  # sigma = exp(-lambda)
    return (-lam - np.log(sde.sigma_min)) / (np.log(sde.sigma_max) - np.log(sde.sigma_min))
  if isinstance(sde, subVPSDE):  # m / (1 - m^2) = e^lambda
    log_m = np.log(2.0) + lam - np.log1p(np.sqrt(1.0 + 4.0 * np.exp(2.0 * lam)))
  else:  # VP: m^2 / (1 - m^2) = e^(2 lambda)
    log_m = -0.5 * np.logaddexp(0.0, -2.0 * lam)
  # log m = -(b1 - b0) t^2 / 4 - b0 t / 2, solved for t >= 0 (the form without cancellation).
  b0, slope = sde.beta_min, sde.beta_max - sde.beta_min
  return -2.0 * log_m / (0.5 * b0 + np.sqrt(0.25 * b0**2 - slope * log_m))


def time_grid(sde, grid: str, num_steps: int, eps: float) -> np.ndarray:
  """num_steps + 1 decreasing times from sde.T to eps: 'time' uniform in t, 'lambda' uniform in
  lambda, 'karras' EDM's rho = 7 spacing of sigma = exp(-lambda)."""
  if grid == "time":
    return np.linspace(sde.T, eps, num_steps + 1)
  lam_t, lam_eps = half_log_snr(sde, np.array([sde.T, eps]))
  if grid == "lambda":
    times = time_of(sde, np.linspace(lam_t, lam_eps, num_steps + 1))
  elif grid == "karras":
    lo, hi = np.exp(-lam_eps / RHO), np.exp(-lam_t / RHO)  # sigma^(1/rho) at eps and T
    times = time_of(sde, -RHO * np.log(np.linspace(hi, lo, num_steps + 1)))
  else:
    raise ValueError(f"grid={grid!r} is not one of time, lambda, karras")
  times[0], times[-1] = sde.T, eps  # exact ends (the inverse is exact up to rounding)
  return times


# --------------------------------------------------------------------------------- the solvers

def data_prediction(score_fn: ScoreFn, x: Array, t: Array, m: Array, std: Array) -> Array:
  """D = (x + std^2 score(x, t)) / m at the scalar time t, with m(t), std(t) given."""
  return (x + std**2 * score_fn(x, jnp.full((x.shape[0],), t, jnp.float32))) / m


def _const(v: np.ndarray) -> Array:
  return jnp.asarray(v, jnp.float32)


class _Start(NamedTuple):
  """A sampler's start: the state x at T, the key of its loop, and its grid in float64:
  times t [N + 1] from T to eps, m(t), std(t) and lambda(t)."""

  x: Array
  loop_key: Array
  t: np.ndarray
  m: np.ndarray
  std: np.ndarray
  lam: np.ndarray


def _start(method: str, key: Array, sde, shape, z: Optional[Array], grid: str,
           num_steps: int, eps: float) -> _Start:
  check_sde(method, type(sde))
  init_key, loop_key = jax.random.split(key)
  times = time_grid(sde, grid, num_steps, eps)
  m, std = scale_std(sde, times)
  return _Start(sampling.prior_or_latent(init_key, sde, shape, z), loop_key, times, m, std,
                np.log(m) - np.log(std))


def _finish(key: Array, sde, score_fn: ScoreFn, x: Array, eps: float, denoise: bool,
            nfe: int) -> Tuple[Array, int]:
  """ode_sample's noise removal: with `denoise`, one noise-free reverse-diffusion step at eps
  (one more evaluation)."""
  if not denoise:
    return x, nfe
  return sampling.denoise_step(key, sde, score_fn, x, eps), nfe + 1


def ddim_sample(key: Array, sde, score_fn: ScoreFn, shape, *, num_steps: int = 50,
                eta: float = 0.0, eps: float = 1e-3, z: Optional[Array] = None,
                denoise: bool = True) -> Tuple[Array, int]:
  """DDIM on num_steps steps uniform in t from T to eps (VP and sub-VP).

  Each step s -> t: x_t = m_t D + sqrt(std_t^2 - c^2) (x_s - m_s D) / std_s + c noise, with
  c = eta std_t sqrt(1 - exp(-2 (lambda_t - lambda_s))), eta in [0, 1] (0: deterministic,
  1: DDPM's posterior noise; eta may be traced). z: an optional latent [shape] (else a prior
  draw with `key`); denoise: ode_sample's final step. Returns (x [shape], nfe = num_steps
  (+1 with denoise)).
  """
  g = _start("ddim", key, sde, shape, z, "time", num_steps, eps)
  t, m, std = _const(g.t), _const(g.m), _const(g.std)
  noise_std = eta * _const(g.std[1:] * np.sqrt(-np.expm1(-2.0 * np.diff(g.lam))))
  keep = jnp.sqrt(jnp.maximum(std[1:] ** 2 - noise_std**2, 0.0)) / std[:-1]

  def body(i, x):
    d = data_prediction(score_fn, x, t[i], m[i], std[i])
    noise = jax.random.normal(jax.random.fold_in(g.loop_key, i), x.shape, x.dtype)
    return m[i + 1] * d + keep[i] * (x - m[i] * d) + noise_std[i] * noise

  x = jax.lax.fori_loop(0, num_steps, body, g.x)
  return _finish(g.loop_key, sde, score_fn, x, eps, denoise, num_steps)


def dpm_solver_sample(key: Array, sde, score_fn: ScoreFn, shape, *, num_steps: int = 20,
                      eps: float = 1e-3, z: Optional[Array] = None,
                      denoise: bool = True) -> Tuple[Array, int]:
  """DPM-Solver++(2M) on num_steps steps uniform in lambda from T to eps (VP and sub-VP).

  Step i from s to t, h = lambda_t - lambda_s: x_t = (std_t / std_s) x_s + m_t (1 - e^-h) D',
  D' = D_s for the first step, else D_s + (D_s - D_prev) h / (2 h_prev) (Lu et al. 2022,
  Algorithm 2). Returns (x [shape], nfe = num_steps (+1 with denoise)).
  """
  g = _start("dpm_solver", key, sde, shape, z, "lambda", num_steps, eps)
  h = np.diff(g.lam)
  t, m, std = _const(g.t), _const(g.m), _const(g.std)
  ratio, gain = _const(g.std[1:] / g.std[:-1]), _const(g.m[1:] * -np.expm1(-h))
  # weight of D_s - D_prev: 1 / (2 r), r = h_prev / h; 0 at the first (first-order) step.
  slope = _const(np.concatenate([[0.0], h[1:] / (2.0 * h[:-1])]))

  def body(i, carry):
    x, d_prev = carry
    d = data_prediction(score_fn, x, t[i], m[i], std[i])
    return ratio[i] * x + gain[i] * (d + slope[i] * (d - d_prev)), d

  x, _ = jax.lax.fori_loop(0, num_steps, body, (g.x, jnp.zeros_like(g.x)))
  return _finish(g.loop_key, sde, score_fn, x, eps, denoise, num_steps)


def heun_sample(key: Array, sde, score_fn: ScoreFn, shape, *, num_steps: int = 20,
                eps: float = 1e-3, z: Optional[Array] = None,
                denoise: bool = True) -> Tuple[Array, int]:
  """Heun's method on dy/dsigma = -std score(m y, t) (module docstring) over EDM's rho = 7
  grid from T to eps (every SDE). Returns (x [shape], nfe = 2 num_steps (+1 with denoise))."""
  g = _start("heun", key, sde, shape, z, "karras", num_steps, eps)
  t, m, std = _const(g.t), _const(g.m), _const(g.std)
  dsigma = _const(np.diff(np.exp(-g.lam)))  # sigma = std / m = exp(-lambda)

  def dy(y, i):
    return -std[i] * score_fn(m[i] * y, jnp.full((y.shape[0],), t[i], jnp.float32))

  def body(i, y):
    d0 = dy(y, i)
    d1 = dy(y + dsigma[i] * d0, i + 1)
    return y + dsigma[i] * 0.5 * (d0 + d1)

  y = jax.lax.fori_loop(0, num_steps, body, g.x / m[0])
  return _finish(g.loop_key, sde, score_fn, m[-1] * y, eps, denoise, 2 * num_steps)


@dataclasses.dataclass(frozen=True)
class FastSampler:
  """A fixed-grid solver: fn(key, sde, score_fn, shape, *, num_steps, eps, z, denoise, ...),
  the SDEs it takes, and its order of convergence in the step size."""

  fn: Callable[..., Tuple[Array, int]]
  sdes: Tuple[type, ...]
  order: int


FAST_SAMPLERS: Registry = Registry("fast sampler")
FAST_SAMPLERS.add("ddim", FastSampler(ddim_sample, (VPSDE, subVPSDE), 1))
FAST_SAMPLERS.add("dpm_solver", FastSampler(dpm_solver_sample, (VPSDE, subVPSDE), 2))
FAST_SAMPLERS.add("heun", FastSampler(heun_sample, (VPSDE, subVPSDE, VESDE), 2))


def check_sde(method: str, sde_cls: type) -> None:
  """ValueError (one line naming the fix) unless fast sampler `method` takes SDEs of class
  sde_cls (e.g. sde.VESDE)."""
  if sde_cls not in FAST_SAMPLERS.get(method).sdes:
    name = {SDES.get(n): n for n in SDES}  # class -> registry name
    takes = [name[c] for c in FAST_SAMPLERS.get(method).sdes]
    others = [n for n in FAST_SAMPLERS if sde_cls in FAST_SAMPLERS.get(n).sdes]
    raise ValueError(f"sampling.method={method!r} takes the SDEs {', '.join(takes)}, not "
                     f"{name.get(sde_cls, sde_cls.__name__)}; use "
                     f"--config.sampling.method={' or '.join(others + ['pc', 'ode'])}")

