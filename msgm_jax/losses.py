"""Denoising score matching losses: continuous DSM, discrete DDPM and SMLD (method.md section 4).

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
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from msgm_jax.sde import VESDE, VPSDE, batch_mul

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
  weight: the per-example likelihood weight g(t)^2 / std^2 (ones without weighting) [B].
  """

  z: Array
  std: Array
  score: Array
  weight: Array


def example_keys(key: Array, example_ids: Array) -> Array:
  """One key per example from its global index: [B] keys, independent of device layout."""
  return jax.vmap(jax.random.fold_in, (None, 0))(key, example_ids)


def _per_example(fn, keys, *args):
  return jax.vmap(lambda k: fn(k, *args))(keys)


def perturb(keys: Array, x: Array, score_fn: ScoreFn, sde, cfg: LossConfig) -> Perturbed:
  """Draws (t, z) per example, perturbs x [B, ...] by the SDE and evaluates the score."""
  t_keys, z_keys = jax.vmap(lambda k: jax.random.split(k), out_axes=1)(keys)
  z = _per_example(lambda k: jax.random.normal(k, x.shape[1:], x.dtype), z_keys)
  ones = jnp.ones((x.shape[0],), jnp.float32)
  if cfg.continuous:
    u = _per_example(lambda k: jax.random.uniform(k, ()), t_keys)
    t = cfg.eps + u * (sde.T - cfg.eps)
    mean, std = sde.marginal_prob(x, t)
  else:
    i = _per_example(lambda k: jax.random.randint(k, (), 0, sde.N), t_keys)
    t = sde.step_time(i)
    if isinstance(sde, VPSDE):
      abar = jnp.asarray(sde.alphas_cumprod, jnp.float32)[i]
      mean, std = batch_mul(jnp.sqrt(abar), x), jnp.sqrt(1.0 - abar)
    elif isinstance(sde, VESDE):
      mean, std = x, jnp.asarray(sde.discrete_sigmas, jnp.float32)[i]
    else:
      raise ValueError(f"discrete training supports vpsde (DDPM) and vesde (SMLD), not "
                       f"{type(sde).__name__}; set training.continuous=True")
  score = score_fn(mean + batch_mul(std, z), t)
  weight = ones
  if cfg.likelihood_weighting:
    g = sde.sde(jnp.zeros_like(x), t)[1]
    weight = (g / std) ** 2
  return Perturbed(z, std, score, weight)


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
