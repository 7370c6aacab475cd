"""Predictor-corrector and probability-flow ODE samplers (Song et al. 2021, Algorithms 1-3).

Everything here is a pure function of a score function `score_fn(x [B, ...], t [B]) -> score`
and runs unchanged under plain `jax.jit` (a notebook) or inside `pmap` (msgm_jax/runtime/parallel.py):
no device axis is named. Predictor/corrector updates take `(key, x, t, score_fn, *, sde, ...)`
and return `(x, x_mean)`, where x_mean is the update without its final noise.
"""

import dataclasses
from typing import Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from msgm_jax.diffusion.ode import odeint_dopri5
from msgm_jax.registry import Registry
from msgm_jax.diffusion.sde import VESDE, VPSDE, batch_mul, check_batch

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


@dataclasses.dataclass(frozen=True)
class Update:
  """An update rule and its score evaluations per call (for NFE accounting)."""

  fn: Callable[..., Tuple[Array, Array]]
  nfe: int


PREDICTORS: Registry = Registry("predictor")
CORRECTORS: Registry = Registry("corrector")


def _predictor(name: str, nfe: int = 1):
  return lambda fn: PREDICTORS.add(name, Update(fn, nfe)) or fn


def _corrector(name: str, nfe: int = 1):
  return lambda fn: CORRECTORS.add(name, Update(fn, nfe)) or fn


@_predictor("euler_maruyama")
def euler_maruyama(key, x, t, score_fn, *, sde, probability_flow=False):
  """x <- x + f_rev dt + g sqrt(|dt|) z with dt = -T / N."""
  dt = -sde.T / sde.N
  drift, diffusion = sde.reverse(score_fn, probability_flow).sde(x, t)
  x_mean = x + drift * dt
  z = jax.random.normal(key, x.shape, x.dtype)
  return x_mean + batch_mul(diffusion * np.sqrt(-dt), z), x_mean


@_predictor("reverse_diffusion")
def reverse_diffusion(key, x, t, score_fn, *, sde, probability_flow=False):
  """The reverse of the SDE's own discretisation: x <- x - f + G^2 s + G z."""
  f, g = sde.reverse(score_fn, probability_flow).discretize(x, t)
  x_mean = x - f
  z = jax.random.normal(key, x.shape, x.dtype)
  return x_mean + batch_mul(g, z), x_mean


@_predictor("ancestral_sampling")
def ancestral_sampling(key, x, t, score_fn, *, sde, probability_flow=False):
  """Ancestral sampling of DDPM (VP) or SMLD (VE) (Song et al. 2021, appendix F)."""
  del probability_flow
  z = jax.random.normal(key, x.shape, x.dtype)
  score = score_fn(x, t)
  if isinstance(sde, VESDE):
    sigma, adjacent = sde.discrete_sigma_pair(t)
    x_mean = x + batch_mul(sigma**2 - adjacent**2, score)
    std = jnp.sqrt(adjacent**2 * (sigma**2 - adjacent**2) / sigma**2)
  elif isinstance(sde, VPSDE):
    beta = jnp.asarray(sde.discrete_betas, jnp.float32)[sde.timestep(t)]
    x_mean = batch_mul(1.0 / jnp.sqrt(1.0 - beta), x + batch_mul(beta, score))
    std = jnp.sqrt(beta)
  else:
    raise ValueError(f"ancestral_sampling supports vpsde and vesde, not {type(sde).__name__}; "
                     "use predictor='reverse_diffusion' or 'euler_maruyama'")
  return x_mean + batch_mul(std, z), x_mean


@_predictor("none", nfe=0)
def no_predictor(key, x, t, score_fn, *, sde, probability_flow=False):
  del key, t, score_fn, sde, probability_flow
  return x, x


def _langevin_alpha(sde, t: Array) -> Array:
  """score_sde scales Langevin steps by alpha_i = 1 - beta_i for the VP family, 1 for VE."""
  if hasattr(sde, "alphas"):
    return jnp.asarray(sde.alphas, jnp.float32)[sde.timestep(t)]
  return jnp.ones_like(t)


def _batch_mean_norm(v: Array) -> Array:
  return jnp.mean(jnp.linalg.norm(v.reshape(v.shape[0], -1), axis=-1))


def _langevin_loop(key, x, t, score_fn, n_steps, step_size_fn):
  def body(i, carry):
    x, _ = carry
    grad = score_fn(x, t)
    noise = jax.random.normal(jax.random.fold_in(key, i), x.shape, x.dtype)
    step = step_size_fn(x, t, grad, noise)
    x_mean = x + batch_mul(step, grad)
    return x_mean + batch_mul(jnp.sqrt(2.0 * step), noise), x_mean

  return jax.lax.fori_loop(0, n_steps, body, (x, x))


@_corrector("langevin")
def langevin(key, x, t, score_fn, *, sde, snr, n_steps):
  """Langevin MCMC with step size 2 alpha (snr |z| / |s|)^2 (Algorithm 5).

  The norms are means over the batch this call sees; under pmap that is the per-device batch
  (score_sde averaged across devices with pmean; the difference is within sampling noise).
  """

  def step_size(x, t, grad, noise):
    ratio = snr * _batch_mean_norm(noise) / _batch_mean_norm(grad)
    return 2.0 * ratio**2 * _langevin_alpha(sde, t)

  return _langevin_loop(key, x, t, score_fn, n_steps, step_size)


@_corrector("ald")
def annealed_langevin(key, x, t, score_fn, *, sde, snr, n_steps):
  """Annealed Langevin dynamics of NCSN: step size 2 alpha (snr std(t))^2."""

  def step_size(x, t, grad, noise):
    std = sde.marginal_prob(x, t)[1]
    return 2.0 * (snr * std) ** 2 * _langevin_alpha(sde, t)

  return _langevin_loop(key, x, t, score_fn, n_steps, step_size)


@_corrector("none", nfe=0)
def no_corrector(key, x, t, score_fn, *, sde, snr, n_steps):
  del key, t, score_fn, sde, snr, n_steps
  return x, x


def pc_sample(key: Array, sde, score_fn: ScoreFn, shape, *, predictor: str = "reverse_diffusion",
              corrector: str = "langevin", snr: float = 0.16, n_steps: int = 1,
              probability_flow: bool = False, eps: float = 1e-3,
              denoise: bool = True) -> Tuple[Array, int]:
  """Predictor-corrector sampling over N = sde.N steps on linspace(T, eps, N).

  At each step the corrector runs first, then the predictor (score_sde's order). With
  `denoise`, the last step returns the predictor's noise-free mean. Returns (x [shape], nfe).
  """
  init_key, loop_key = jax.random.split(key)
  x = sde.prior_sampling(init_key, shape)
  corr, pred, nfe = _pc_updates(sde, score_fn, predictor, corrector, snr, n_steps,
                                probability_flow)
  x, x_mean = _pc_loop(loop_key, x, sde, eps, corr, pred)
  return (x_mean if denoise else x), nfe


# An update of a PC step: (key, x, t) -> (x, x_mean).
StepFn = Callable[[Array, Array, Array], Tuple[Array, Array]]


def _pc_updates(sde, score_fn: ScoreFn, predictor: str, corrector: str, snr: float,
                n_steps: int, probability_flow: bool) -> Tuple[StepFn, StepFn, int]:
  """(corrector step, predictor step, NFE of the N steps) of the named updates."""
  pred, corr = PREDICTORS.get(predictor), CORRECTORS.get(corrector)

  def corr_fn(key, x, t):
    return corr.fn(key, x, t, score_fn, sde=sde, snr=snr, n_steps=n_steps)

  def pred_fn(key, x, t):
    return pred.fn(key, x, t, score_fn, sde=sde, probability_flow=probability_flow)

  return corr_fn, pred_fn, sde.N * (pred.nfe + corr.nfe * n_steps)


def _pc_body(loop_key: Array, sde, eps: float, corr_fn: StepFn, pred_fn: StepFn):
  """body(i, (x, x_mean)) -> (x, x_mean): step i of N on linspace(T, eps, N), the corrector
  then the predictor (score_sde's order)."""
  timesteps = jnp.linspace(sde.T, eps, sde.N)

  def body(i, carry):
    x, _ = carry
    t = jnp.full((x.shape[0],), timesteps[i])
    corr_key, pred_key = jax.random.split(jax.random.fold_in(loop_key, i))
    x, _ = corr_fn(corr_key, x, t)
    return pred_fn(pred_key, x, t)

  return body


def _pc_loop(loop_key: Array, x: Array, sde, eps: float, corr_fn: StepFn,
             pred_fn: StepFn) -> Tuple[Array, Array]:
  """The N steps (_pc_body) from x -> (x, x_mean) of the last step."""
  return jax.lax.fori_loop(0, sde.N, _pc_body(loop_key, sde, eps, corr_fn, pred_fn), (x, x))


def pc_trajectory(key: Array, sde, score_fn: ScoreFn, shape, *, num_frames: int = 10,
                  predictor: str = "reverse_diffusion", corrector: str = "langevin",
                  snr: float = 0.16, n_steps: int = 1, probability_flow: bool = False,
                  eps: float = 1e-3, denoise: bool = True) -> Tuple[Array, Array, int]:
  """pc_sample's path, seen every N / num_frames steps (N a multiple of num_frames).

  Returns (frames [num_frames + 1, *shape], times [num_frames + 1], nfe): frames[0] the prior
  draw at T, frames[k] the state after k N / num_frames steps, at the time the next step
  starts from (eps for the last, which is what pc_sample returns for the same key: denoised
  with `denoise`).
  """
  if num_frames < 1 or sde.N % num_frames:
    raise ValueError(f"num_frames={num_frames} must divide the SDE's N={sde.N} steps; "
                     "pick a divisor, or dataclasses.replace(sde, N=...)")
  init_key, loop_key = jax.random.split(key)  # as pc_sample
  x = sde.prior_sampling(init_key, shape)
  corr, pred, nfe = _pc_updates(sde, score_fn, predictor, corrector, snr, n_steps,
                                probability_flow)
  body = _pc_body(loop_key, sde, eps, corr, pred)
  every = sde.N // num_frames

  def chunk(carry, k):
    carry = jax.lax.fori_loop(k * every, (k + 1) * every, body, carry)
    return carry, carry[0]

  (last, last_mean), frames = jax.lax.scan(chunk, (x, x), jnp.arange(num_frames))
  frames = frames.at[-1].set(last_mean if denoise else last)
  ends = jnp.linspace(sde.T, eps, sde.N)[every::every]
  times = jnp.concatenate([jnp.array([sde.T]), ends, jnp.array([eps])])
  return jnp.concatenate([x[None], frames]), times, nfe


def pc_inpaint(key: Array, sde, score_fn: ScoreFn, x: Array, mask: Array, *,
               predictor: str = "reverse_diffusion", corrector: str = "langevin",
               snr: float = 0.16, n_steps: int = 1, probability_flow: bool = False,
               eps: float = 1e-3, denoise: bool = True) -> Tuple[Array, int]:
  """Completes the unknown part of x by PC sampling with replacement (score_sde's
  pc_inpainter; Song et al. 2021, appendix I.2).

  x: [B, ...] data in model space; mask: broadcastable to x, 1 where x is known, 0 where it
  is to be completed. Starts from x where known and the prior elsewhere; after every
  corrector and every predictor update at time t the known entries are replaced by a fresh
  draw of their forward marginal N(m(t) x, std(t)^2). With `denoise` the result is the last
  update's noise-free mean, with the known entries at m(eps) x. (score_sde's x_mean takes the
  unknown entries from the noisy x, so its denoise never reaches them; here they come from
  the update's mean, as in pc_sample.) Returns (completed x [B, ...], nfe).
  """
  mask = jnp.broadcast_to(jnp.asarray(mask, x.dtype), x.shape)
  init_key, loop_key = jax.random.split(key)
  x0 = x
  x = mask * x0 + (1.0 - mask) * sde.prior_sampling(init_key, x0.shape)
  corr, pred, nfe = _pc_updates(sde, score_fn, predictor, corrector, snr, n_steps,
                                probability_flow)

  def replacing(update: StepFn) -> StepFn:
    def step(key, x, t):
      update_key, data_key = jax.random.split(key)
      x, x_mean = update(update_key, x, t)
      known_mean, std = sde.marginal_prob(x0, t)
      known = known_mean + batch_mul(std, jax.random.normal(data_key, x.shape, x.dtype))
      return (mask * known + (1.0 - mask) * x, mask * known_mean + (1.0 - mask) * x_mean)

    return step

  x, x_mean = _pc_loop(loop_key, x, sde, eps, replacing(corr), replacing(pred))
  return (x_mean if denoise else x), nfe


def probability_flow_drift(sde, score_fn: ScoreFn) -> Callable[[Array, Array], Array]:
  """f(x, t) - g(t)^2 score(x, t) / 2: the drift of the probability-flow ODE (eq. 13)."""
  rsde = sde.reverse(score_fn, probability_flow=True)
  return lambda x, t: rsde.sde(x, t)[0]


def _flow_rhs(sde, score_fn: ScoreFn) -> Callable[[Array, Array], Array]:
  """The probability-flow ODE as the solver's f(t scalar, x [B, ...])."""
  drift = probability_flow_drift(sde, score_fn)
  return lambda t, x: drift(x, jnp.full((x.shape[0],), t))


def prior_or_latent(key: Array, sde, shape, z: Optional[Array]) -> Array:
  """z, checked against shape, or a prior draw of shape."""
  if z is None:
    return sde.prior_sampling(key, shape)
  if tuple(z.shape) != tuple(shape):
    raise ValueError(f"latent z has shape {tuple(z.shape)} but shape is {tuple(shape)}")
  return z


def ode_sample(key: Array, sde, score_fn: ScoreFn, shape, *, rtol: float = 1e-5,
               atol: float = 1e-5, eps: float = 1e-3, z: Optional[Array] = None,
               denoise: bool = False, max_steps: int = 10_000) -> Tuple[Array, Array]:
  """Samples by integrating the probability-flow ODE from T to eps with in-graph RK45.

  z: an optional latent [shape] to decode (else one is drawn from the prior with `key`).
  denoise: finish with one noise-free reverse-diffusion step at eps (score_sde's option).
  Returns (x [shape], nfe) with nfe a traced int32 (adaptive); x is NaN when the solver runs
  out of `max_steps` before reaching eps.
  """
  z = prior_or_latent(key, sde, shape, z)
  result = odeint_dopri5(_flow_rhs(sde, score_fn), z, sde.T, eps, rtol=rtol, atol=atol,
                         max_steps=max_steps)
  x, nfe = jnp.where(result.success, result.y, jnp.nan), result.nfe
  if denoise:
    x, nfe = denoise_step(key, sde, score_fn, x, eps), nfe + 1
  return x, nfe


def denoise_step(key: Array, sde, score_fn: ScoreFn, x: Array, eps: float) -> Array:
  """The noise-free mean of one reverse-diffusion step at eps (score_sde's ODE denoising), for
  x [B, ...] at time eps; one score evaluation."""
  _, x = reverse_diffusion(key, x, jnp.full((x.shape[0],), eps), score_fn, sde=sde)
  return x


def ode_trajectory(key: Array, sde, score_fn: ScoreFn, shape, *, num_frames: int = 10,
                   rtol: float = 1e-5, atol: float = 1e-5, eps: float = 1e-3,
                   z: Optional[Array] = None,
                   max_steps: int = 10_000) -> Tuple[Array, Array, Array]:
  """The probability-flow ODE's path from T to eps at num_frames + 1 evenly spaced times.

  Each piece between two times is one in-graph RK45 solve from where the last ended, so the
  last frame is ode_sample's output (no denoise) to solver tolerance. Returns (frames
  [num_frames + 1, *shape], times [num_frames + 1], nfe); frames from the first piece that
  runs out of `max_steps` on are NaN.
  """
  z, rhs = prior_or_latent(key, sde, shape, z), _flow_rhs(sde, score_fn)
  times = jnp.linspace(sde.T, eps, num_frames + 1)

  def piece(carry, ends):
    x, nfe = carry
    result = odeint_dopri5(rhs, x, ends[0], ends[1], rtol=rtol, atol=atol, max_steps=max_steps)
    x = jnp.where(result.success, result.y, jnp.nan)
    return (x, nfe + result.nfe), x

  (_, nfe), frames = jax.lax.scan(piece, (z, jnp.zeros((), jnp.int32)),
                                  jnp.stack([times[:-1], times[1:]], axis=1))
  return jnp.concatenate([z[None], frames]), times, nfe


def ode_encode(sde, score_fn: ScoreFn, x: Array, *, rtol: float = 1e-5, atol: float = 1e-5,
               eps: float = 1e-3, max_steps: int = 10_000) -> Tuple[Array, Array]:
  """The latent of x: the probability-flow ODE integrated from eps to T with in-graph RK45
  (the inverse of ode_sample's decoding). x: [B, ...] in model space. Returns (z [B, ...],
  nfe); z is NaN when the solver runs out of `max_steps`."""
  result = odeint_dopri5(_flow_rhs(sde, score_fn), x.astype(jnp.float32), eps, sde.T,
                         rtol=rtol, atol=atol, max_steps=max_steps)
  return jnp.where(result.success, result.y, jnp.nan), result.nfe


def perturb(key: Array, sde, x: Array, t: float) -> Array:
  """A draw of the forward marginal at time t given x: m(t) x + std(t) z ([B, ...])."""
  mean, std = sde.marginal_prob(x, jnp.full((x.shape[0],), t, jnp.float32))
  return mean + batch_mul(std, jax.random.normal(key, x.shape, x.dtype))


def ode_reconstruct(key: Array, sde, score_fn: ScoreFn, x: Array, *, perturb_t: float = 0.02,
                    rtol: float = 1e-5, atol: float = 1e-5, eps: float = 1e-3,
                    max_steps: int = 10_000) -> Tuple[Array, Array, Array]:
  """Encodes x [B, ...] to its latent with the probability-flow ODE, perturbs the latent as
  the forward marginal at time perturb_t (m z + std noise; 0: no perturbation) and decodes it
  with the ODE. Returns (reconstruction [B, ...], latent [B, ...] before the perturbation,
  nfe of both solves)."""
  z, nfe_encode = ode_encode(sde, score_fn, x, rtol=rtol, atol=atol, eps=eps,
                             max_steps=max_steps)
  z_perturbed = perturb(key, sde, z, perturb_t) if perturb_t > 0 else z
  x_rec, nfe_decode = ode_sample(key, sde, score_fn, x.shape, rtol=rtol, atol=atol, eps=eps,
                                 z=z_perturbed, max_steps=max_steps)
  return x_rec, z, nfe_encode + nfe_decode
