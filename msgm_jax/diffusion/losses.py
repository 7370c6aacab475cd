"""Denoising score matching losses: continuous DSM, discrete DDPM and SMLD (docs/method.md
section 4).

All three perturb x with Gaussian noise, x~ = m x + std z, and penalise the residual of the
model score against the conditional score -z / std. They differ only in how the noise level is
drawn (continuous t ~ U(eps, T), or a discrete step i), so they share `perturb`:

- continuous: reduce((std s + z)^2), or with likelihood weighting reduce((s + z / std)^2) g^2;
- DDPM (VP, discrete): with s = -eps_theta / sqrt(1 - abar_i) the residual
  std s + z equals z - eps_theta, which is Ho et al.'s loss;
- SMLD (VE, discrete): (s - (-z / sigma_i))^2 sigma_i^2 = (sigma_i s + z)^2 (NCSN's weighting).

Randomness is per example: `keys` is a [B] array of typed keys, so a global batch gets the same
noise whether it is computed on one device or split across eight.
"""

import dataclasses
from typing import Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from msgm_jax.diffusion.sde import VESDE, VPSDE, batch_mul

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """continuous: DSM over t ~ U(eps, T), else the discrete DDPM/SMLD loss of the SDE.
  reduce_mean: mean over data dimensions, else 0.5 * sum (score_sde's VE configs)."""

  continuous: bool = True
  reduce_mean: bool = False
  likelihood_weighting: bool = False
  eps: float = 1e-5

  def __post_init__(self):
    if self.likelihood_weighting and not self.continuous:
      raise ValueError("likelihood_weighting needs training.continuous=True (the discrete "
                       "DDPM/SMLD losses have no g(t)); set one of them differently")


class Perturbed(NamedTuple):
  """A perturbed batch and the model's score on it.

  z: the noise [B, ...]; std: the noise scale [B]; score: s_theta(x~, t) [B, ...];
  weight: the per-example likelihood weight g(t)^2 / std^2 (ones without weighting) [B];
  x_t: the perturbed batch x~ [B, ...]; mean_scale: m(t) [B], the marginal's mean m(t) x
  (None where a hand-built Perturbed does not need them).
  """

  z: Array
  std: Array
  score: Array
  weight: Array
  x_t: Optional[Array] = None
  mean_scale: Optional[Array] = None


def example_keys(key: Array, example_ids: Array) -> Array:
  """One key per example from its global index: [B] keys, independent of device layout."""
  return jax.vmap(jax.random.fold_in, (None, 0))(key, example_ids)


def _per_example(fn, keys, *args):
  return jax.vmap(lambda k: fn(k, *args))(keys)


def _discrete_scale(sde, i: Array) -> Tuple[Array, Array]:
  """(m, std) [B] of the discrete DDPM (VP) / SMLD (VE) noise levels i."""
  if isinstance(sde, VPSDE):
    abar = jnp.asarray(sde.alphas_cumprod, jnp.float32)[i]
    return jnp.sqrt(abar), jnp.sqrt(1.0 - abar)
  if isinstance(sde, VESDE):
    return jnp.ones(i.shape, jnp.float32), jnp.asarray(sde.discrete_sigmas, jnp.float32)[i]
  raise ValueError(f"discrete training supports vpsde (DDPM) and vesde (SMLD), not "
                   f"{type(sde).__name__}; set training.continuous=True")


def _continuous_std(sde, t: np.ndarray) -> np.ndarray:
  with jax.ensure_compile_time_eval():
    return np.asarray(sde.marginal_prob(jnp.zeros((len(t), 1)), jnp.asarray(t, jnp.float32))[1])


def noise_window(sde, cfg: LossConfig, std_min: float, std_max: float) -> Tuple[float, float]:
  """The training times whose noise std lies in [std_min, std_max] (std_max 0: no upper end),
  as (t_lo, t_hi) for continuous training or (i_lo, i_hi + 1) discrete noise levels; ValueError
  naming the SDE's std range when no time has such a std. The std grows with t on every SDE, so
  the window is one interval (continuous: to 1 / 8192 of the time range)."""
  hi = np.inf if std_max <= 0 else std_max
  if cfg.continuous:
    t = np.linspace(cfg.eps, sde.T, 8193)
    std = _continuous_std(sde, t)
  else:
    t = np.arange(sde.N)
    with jax.ensure_compile_time_eval():
      std = np.asarray(_discrete_scale(sde, jnp.arange(sde.N))[1])
  inside = np.nonzero((std >= std_min) & (std <= hi))[0]
  if not len(inside):
    raise ValueError(f"no noise level has std in [{std_min}, {std_max or 'inf'}]: the SDE's std "
                     f"runs from {std.min():.4g} to {std.max():.4g}; widen msgm.std_min / "
                     "msgm.std_max")
  lo, top = inside[0], inside[-1]
  return (float(t[lo]), float(t[top])) if cfg.continuous else (int(lo), int(top) + 1)


def perturb(keys: Array, x: Array, score_fn: ScoreFn, sde, cfg: LossConfig,
            window: Optional[Tuple[float, float]] = None) -> Perturbed:
  """Draws (t, z) per example, perturbs x [B, ...] by the SDE and evaluates the score.

  t ~ U(eps, T) (continuous) or i uniform over the discrete noise levels; window (from
  noise_window): draw t ~ U(t_lo, t_hi), or i in [i_lo, i_hi), instead."""
  t_keys, z_keys = jax.vmap(lambda k: jax.random.split(k), out_axes=1)(keys)
  z = _per_example(lambda k: jax.random.normal(k, x.shape[1:], x.dtype), z_keys)
  ones = jnp.ones((x.shape[0],), jnp.float32)
  if cfg.continuous:
    lo, hi = (cfg.eps, sde.T) if window is None else window
    u = _per_example(lambda k: jax.random.uniform(k, ()), t_keys)
    t = lo + u * (hi - lo)
    m = sde.marginal_prob(ones[:, None], t)[0][:, 0]
    std = sde.marginal_prob(x, t)[1]
  else:
    lo, hi = (0, sde.N) if window is None else window
    i = _per_example(lambda k: jax.random.randint(k, (), lo, hi), t_keys)
    t = sde.step_time(i)
    m, std = _discrete_scale(sde, i)
  x_t = batch_mul(m, x) + batch_mul(std, z)
  score = score_fn(x_t, t)
  weight = ones
  if cfg.likelihood_weighting:
    g = sde.sde(jnp.zeros_like(x), t)[1]
    weight = (g / std) ** 2
  return Perturbed(z, std, score, weight, x_t, m)


def reduce_scale(cfg: LossConfig, x_shape) -> float:
  """Factor that turns a per-dimension mean into the configured reduction (mean or 0.5 sum)."""
  return 1.0 if cfg.reduce_mean else 0.5 * float(np.prod(x_shape[1:]))


def flat_mean(v: Array) -> Array:
  return jnp.mean(v.reshape(v.shape[0], -1), axis=-1)


def dsm_terms(p: Perturbed, cfg: LossConfig) -> Array:
  """Per-example DSM loss [B]: reduce((std s + z)^2) * weight."""
  resid = batch_mul(p.std, p.score) + p.z
  return reduce_scale(cfg, p.z.shape) * flat_mean(resid**2) * p.weight


def dsm_loss(keys: Array, x: Array, score_fn: ScoreFn, sde, cfg: LossConfig) -> Array:
  """Per-example denoising score matching loss [B] on data x [B, ...]."""
  return dsm_terms(perturb(keys, x, score_fn, sde, cfg), cfg)
