"""Forward SDEs of score-based generative modelling (Song et al. 2021), docs/method.md section 2.

Each SDE is an immutable, hashable dataclass, so it can be closed over or passed as a static
argument to `jax.jit`. Method names follow score_sde so existing notebooks port unchanged.
Shapes: `x` is [B, ...] (2-D points [B, 2] or images [B, H, W, C]); `t` is [B].
"""

import dataclasses
import functools
from typing import Callable, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from msgm_jax.registry import Registry

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]

SDES: Registry = Registry("SDE")


def batch_mul(v: Array, x: Array) -> Array:
  """Multiplies a per-example [B] vector into x [B, ...]."""
  return v.reshape(v.shape + (1,) * (x.ndim - v.ndim)) * x


def check_batch(x: Array, t: Array) -> None:
  """Raises a ValueError naming both shapes unless t is [B] for x of shape [B, ...]."""
  if jnp.ndim(t) != 1 or jnp.ndim(x) < 1 or jnp.shape(t)[0] != jnp.shape(x)[0]:
    raise ValueError(
        f"t must be a [B] vector matching x of shape [B, ...]; got x {jnp.shape(x)} and "
        f"t {jnp.shape(t)} (use t = jnp.full((x.shape[0],), t0))")


def _gaussian_logp(z: Array, sigma: float) -> Array:
  """log N(z; 0, sigma^2 I), summed over all non-batch dimensions -> [B]."""
  d = np.prod(z.shape[1:])
  sq = jnp.sum(jnp.square(z).reshape(z.shape[0], -1), axis=-1)
  return -0.5 * d * np.log(2 * np.pi * sigma**2) - 0.5 * sq / sigma**2


class _SDE:
  """Shared behaviour; subclasses define sde, marginal_prob, prior_* and optionally discretize."""

  N: int

  @property
  def T(self) -> float:
    return 1.0

  def prior_sampling(self, key: Array, shape) -> Array:
    return jax.random.normal(key, shape) * self.prior_std

  def prior_logp(self, z: Array) -> Array:
    """log density of the prior at z [B, ...] -> [B]."""
    return _gaussian_logp(z, self.prior_std)

  def discretize(self, x: Array, t: Array) -> Tuple[Array, Array]:
    """Euler-Maruyama discretisation x_{i+1} = x_i + f + G z with dt = T / N -> (f, G [B])."""
    dt = self.T / self.N
    drift, diffusion = self.sde(x, t)
    return drift * dt, diffusion * np.sqrt(dt)

  def timestep(self, t: Array) -> Array:
    """Index of the discrete step for continuous t (as score_sde: floor(t (N - 1) / T))."""
    return (t * (self.N - 1) / self.T).astype(jnp.int32)

  def step_time(self, i: Array) -> Array:
    """A time t with timestep(t) == i, for discrete-time losses [B].

    t (N - 1) = i + 1e-3: the network label of score_sde's discrete models is t (N - 1), so it
    sees (almost exactly) the integer step it was trained on in DDPM/SMLD, and the floor in
    `timestep` is safe from float32 rounding (an ulp at 999 is 6e-5).
    """
    return (jnp.asarray(i, jnp.float32) + 1e-3) * self.T / (self.N - 1)

  def reverse(self, score_fn: ScoreFn, probability_flow: bool = False) -> "ReverseSDE":
    return ReverseSDE(self, score_fn, probability_flow)


@dataclasses.dataclass(frozen=True)
class ReverseSDE:
  """The reverse-time SDE (or probability-flow ODE) of `forward` for a given score function."""

  forward: _SDE
  score_fn: ScoreFn
  probability_flow: bool = False

  @property
  def T(self) -> float:
    return self.forward.T

  @property
  def N(self) -> int:
    return self.forward.N

  def _weight(self) -> float:
    # Reverse SDE: f - g^2 s; probability-flow ODE: f - g^2 s / 2 (Song et al. eqs. 6 and 13).
    return 0.5 if self.probability_flow else 1.0

  def sde(self, x: Array, t: Array) -> Tuple[Array, Array]:
    drift, diffusion = self.forward.sde(x, t)
    drift = drift - batch_mul(diffusion**2, self.score_fn(x, t)) * self._weight()
    return drift, (jnp.zeros_like(diffusion) if self.probability_flow else diffusion)

  def discretize(self, x: Array, t: Array) -> Tuple[Array, Array]:
    f, g = self.forward.discretize(x, t)
    rev_f = f - batch_mul(g**2, self.score_fn(x, t)) * self._weight()
    return rev_f, (jnp.zeros_like(g) if self.probability_flow else g)


@dataclasses.dataclass(frozen=True)
class _LinearBetaSDE(_SDE):
  """Shared by VP and sub-VP: beta(t) = b0 + t (b1 - b0), mean m(t) x, prior N(0, I)."""

  beta_min: float = 0.1
  beta_max: float = 20.0
  N: int = 1000

  prior_std = 1.0

  def beta(self, t: Array) -> Array:
    return self.beta_min + t * (self.beta_max - self.beta_min)

  def log_mean_coeff(self, t: Array) -> Array:
    return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

  # Discrete DDPM quantities (Ho et al. 2020) used by the ancestral sampler and the DDPM loss.
  @functools.cached_property
  def discrete_betas(self) -> np.ndarray:
    return np.linspace(self.beta_min / self.N, self.beta_max / self.N, self.N, dtype=np.float64)

  @functools.cached_property
  def alphas(self) -> np.ndarray:
    return 1.0 - self.discrete_betas

  @functools.cached_property
  def alphas_cumprod(self) -> np.ndarray:
    return np.cumprod(self.alphas)

  def discretize(self, x: Array, t: Array) -> Tuple[Array, Array]:
    """DDPM discretisation: x_{i+1} = sqrt(1 - beta_i) x_i + sqrt(beta_i) z."""
    check_batch(x, t)
    i = self.timestep(t)
    beta = jnp.asarray(self.discrete_betas, jnp.float32)[i]
    alpha = jnp.asarray(self.alphas, jnp.float32)[i]
    return batch_mul(jnp.sqrt(alpha), x) - x, jnp.sqrt(beta)


@SDES.register("vpsde")
@dataclasses.dataclass(frozen=True)
class VPSDE(_LinearBetaSDE):
  """Variance preserving SDE: dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw, beta linear in t."""

  def sde(self, x: Array, t: Array) -> Tuple[Array, Array]:
    check_batch(x, t)
    beta_t = self.beta(t)
    return -0.5 * batch_mul(beta_t, x), jnp.sqrt(beta_t)

  def marginal_prob(self, x: Array, t: Array) -> Tuple[Array, Array]:
    check_batch(x, t)
    lmc = self.log_mean_coeff(t)
    # -expm1 keeps std accurate in float32 near t = 0, where 1 - exp(.) cancels (score_sde's
    # form gives std(1e-5) 0.7% too large).
    return batch_mul(jnp.exp(lmc), x), jnp.sqrt(-jnp.expm1(2.0 * lmc))


@SDES.register("subvpsde")
@dataclasses.dataclass(frozen=True)
class subVPSDE(_LinearBetaSDE):  # pylint: disable=invalid-name
  """sub-VP SDE: the VP drift, a smaller diffusion, std(t) = 1 - m(t)^2 (no square root)."""

  def sde(self, x: Array, t: Array) -> Tuple[Array, Array]:
    check_batch(x, t)
    beta_t = self.beta(t)
    discount = -jnp.expm1(-2.0 * self.beta_min * t - (self.beta_max - self.beta_min) * t**2)
    return -0.5 * batch_mul(beta_t, x), jnp.sqrt(beta_t * discount)

  def marginal_prob(self, x: Array, t: Array) -> Tuple[Array, Array]:
    check_batch(x, t)
    lmc = self.log_mean_coeff(t)
    return batch_mul(jnp.exp(lmc), x), -jnp.expm1(2.0 * lmc)

  # score_sde discretises the sub-VP SDE with plain Euler-Maruyama.
  discretize = _SDE.discretize


@SDES.register("vesde")
@dataclasses.dataclass(frozen=True)
class VESDE(_SDE):
  """Variance exploding SDE: dx = sigma(t) sqrt(2 ln(s1/s0)) dw, sigma(t) = s0 (s1/s0)^t."""

  sigma_min: float = 0.01
  sigma_max: float = 50.0
  N: int = 1000

  @property
  def prior_std(self) -> float:
    return self.sigma_max

  def sigma(self, t: Array) -> Array:
    return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

  def sde(self, x: Array, t: Array) -> Tuple[Array, Array]:
    check_batch(x, t)
    g = self.sigma(t) * np.sqrt(2.0 * (np.log(self.sigma_max) - np.log(self.sigma_min)))
    return jnp.zeros_like(x), g

  def marginal_prob(self, x: Array, t: Array) -> Tuple[Array, Array]:
    check_batch(x, t)
    return x, self.sigma(t)

  @functools.cached_property
  def discrete_sigmas(self) -> np.ndarray:
    return np.exp(np.linspace(np.log(self.sigma_min), np.log(self.sigma_max), self.N))

  def discrete_sigma_pair(self, t: Array) -> Tuple[Array, Array]:
    """(sigma_i, sigma_{i-1}) of the SMLD noise ladder at t, with sigma_{-1} = 0."""
    i = self.timestep(t)
    sigmas = jnp.asarray(self.discrete_sigmas, jnp.float32)
    return sigmas[i], jnp.where(i == 0, 0.0, sigmas[jnp.maximum(i - 1, 0)])

  def discretize(self, x: Array, t: Array) -> Tuple[Array, Array]:
    """SMLD discretisation: x_{i+1} = x_i + sqrt(sigma_{i+1}^2 - sigma_i^2) z."""
    check_batch(x, t)
    sigma, adjacent = self.discrete_sigma_pair(t)
    return jnp.zeros_like(x), jnp.sqrt(sigma**2 - adjacent**2)


def get_sde(name: str, **kwargs) -> _SDE:
  """Builds an SDE by registry name ("vpsde", "subvpsde", "vesde")."""
  return SDES.get(name)(**kwargs)
