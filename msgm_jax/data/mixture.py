"""Isotropic Gaussian mixtures in numpy: the 2-D toy data of the paper's first figure.

`GaussianMixture` is the data model of the toy experiment (docs/method.md section 7). Everything
is closed form, so samplers, losses and metrics can be checked against truth: the exact density,
the exact score, the posterior over components ("nearest component" metric) and the mixture
perturbed by a Gaussian SDE kernel (whose score is the exact time-dependent score).
"""

import dataclasses
from typing import Sequence, Tuple

import numpy as np


def _readonly(x, dtype=np.float64) -> np.ndarray:
  a = np.array(x, dtype=dtype)
  a.flags.writeable = False
  return a


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianMixture:
  """p(x) = sum_k w_k N(x; mu_k, sigma_k^2 I).

  means: [K, D]; stds: [K] (isotropic per component); weights: [K], positive, normalised here.
  Arrays are stored read-only as float64. Hashing is by identity (eq=False), so an instance
  can be a static argument of `jax.jit`.
  """

  means: np.ndarray
  stds: np.ndarray
  weights: np.ndarray

  def __post_init__(self):
    means = _readonly(self.means)
    stds = _readonly(self.stds)
    weights = np.array(self.weights, dtype=np.float64)
    if means.ndim != 2 or stds.shape != (means.shape[0],) or weights.shape != stds.shape:
      raise ValueError(f"need means [K, D], stds [K], weights [K]; got {means.shape}, "
                       f"{stds.shape}, {weights.shape}")
    if np.any(stds <= 0) or np.any(weights <= 0):
      raise ValueError(f"stds and weights must be positive; got {stds}, {weights}")
    object.__setattr__(self, "means", means)
    object.__setattr__(self, "stds", stds)
    object.__setattr__(self, "weights", _readonly(weights / weights.sum()))

  @property
  def num_components(self) -> int:
    return self.means.shape[0]

  @property
  def dim(self) -> int:
    return self.means.shape[1]

  def sample(self, rng: np.random.Generator, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Draws n points: returns x [n, D] float64 and their component indices [n] int64."""
    comp = rng.choice(self.num_components, size=n, p=self.weights)
    z = rng.standard_normal((n, self.dim))
    return self.means[comp] + self.stds[comp, None] * z, comp.astype(np.int64)

  def component_log_probs(self, x: np.ndarray) -> np.ndarray:
    """log(w_k N(x; mu_k, sigma_k^2 I)) for x [N, D] -> [N, K]."""
    x = np.asarray(x, dtype=np.float64)
    sq = np.sum((x[:, None, :] - self.means[None]) ** 2, axis=-1)  # [N, K]
    var = self.stds**2
    log_norm = -0.5 * self.dim * np.log(2 * np.pi * var)
    return np.log(self.weights) + log_norm - 0.5 * sq / var

  def log_prob(self, x: np.ndarray) -> np.ndarray:
    """Exact log p(x) for x [N, D] -> [N] (log-sum-exp over components)."""
    lp = self.component_log_probs(x)
    top = lp.max(axis=1, keepdims=True)
    return (top + np.log(np.sum(np.exp(lp - top), axis=1, keepdims=True)))[:, 0]

  def component_posterior(self, x: np.ndarray) -> np.ndarray:
    """p(k | x) for x [N, D] -> [N, K]; rows sum to 1. argmax is the nearest component."""
    lp = self.component_log_probs(x)
    lp = lp - lp.max(axis=1, keepdims=True)
    p = np.exp(lp)
    return p / p.sum(axis=1, keepdims=True)

  def score(self, x: np.ndarray) -> np.ndarray:
    """Exact grad_x log p(x) for x [N, D] -> [N, D]: sum_k p(k|x) (mu_k - x) / sigma_k^2."""
    x = np.asarray(x, dtype=np.float64)
    r = self.component_posterior(x) / self.stds**2  # [N, K]
    return r @ self.means - r.sum(axis=1, keepdims=True) * x

  def perturbed(self, mean_coef: float, noise_std: float) -> "GaussianMixture":
    """Law of m x + s z (x ~ self, z ~ N(0, I)): the SDE marginal with mean m(t), std s(t).

    Its `score` is the exact time-t score of the perturbed data distribution.
    """
    stds = np.sqrt((mean_coef * self.stds) ** 2 + noise_std**2)
    return GaussianMixture(mean_coef * self.means, stds, self.weights)

  def restrict(self, components: Sequence[int]) -> "GaussianMixture":
    """The mixture of the given components only, weights renormalised (e.g. the SFG part)."""
    c = np.asarray(components, dtype=np.int64)
    if c.size == 0 or np.any(c < 0) or np.any(c >= self.num_components):
      raise ValueError(f"components must be a non-empty subset of 0..{self.num_components - 1};"
                       f" got {tuple(components)}")
    return GaussianMixture(self.means[c], self.stds[c], self.weights[c])


# The paper's first figure: SFG blobs near (-2, -2) and (2, 2), an NSFG blob near (0, 0).
TOY2D_MIXTURE = GaussianMixture(
    means=[[-2.0, -2.0], [2.0, 2.0], [0.0, 0.0]], stds=[0.5, 0.5, 0.5], weights=[1.0, 1.0, 1.0])
TOY2D_NSFG_COMPONENTS = (2,)
