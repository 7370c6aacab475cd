"""Feature statistics (mean and covariance) in float64, accumulated batch by batch.

Batches are merged with Chan et al.'s pairwise update (count, mean, sum of squared deviations
from the mean), so the result does not depend on how the features were split into batches,
and no raw second moment sum(x x^T) is formed (it loses digits when the mean is large compared
with the spread). The covariance is the unbiased one (divisor n - 1), as np.cov and pytorch-fid.
"""

import dataclasses
from typing import Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class FeatureStats:
  """mu: float64 [D]; sigma: float64 [D, D] (unbiased); n: the number of feature vectors."""

  mu: np.ndarray
  sigma: np.ndarray
  n: int

  @property
  def dim(self) -> int:
    return int(self.mu.shape[0])


class Moments:
  """Running count, mean and scatter matrix of feature vectors [N, D] (float64)."""

  def __init__(self):
    self.n = 0
    self.mean: Optional[np.ndarray] = None
    self.scatter: Optional[np.ndarray] = None  # sum of (x - mean)(x - mean)^T

  def update(self, features) -> "Moments":
    """Adds a batch of feature vectors [B, D] (any float dtype; B may be 0)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
      raise ValueError(f"features must be [B, D], got shape {x.shape}")
    if self.mean is not None and x.shape[1] != self.mean.shape[0]:
      raise ValueError(f"features of dimension {x.shape[1]} after {self.mean.shape[0]}")
    if not np.all(np.isfinite(x)):
      raise ValueError("features have non-finite values")
    if len(x) == 0:
      return self
    b_mean = x.mean(axis=0)
    centred = x - b_mean
    b_scatter = centred.T @ centred
    if self.n == 0:
      self.n, self.mean, self.scatter = len(x), b_mean, b_scatter
      return self
    n = self.n + len(x)
    delta = b_mean - self.mean
    self.scatter = self.scatter + b_scatter + np.outer(delta, delta) * (self.n * len(x) / n)
    self.mean = self.mean + delta * (len(x) / n)
    self.n = n
    return self

  def stats(self) -> FeatureStats:
    """The mean and unbiased covariance; needs at least two feature vectors."""
    if self.n < 2:
      raise ValueError(f"a covariance needs at least 2 feature vectors, got {self.n}")
    return FeatureStats(mu=self.mean.copy(), sigma=self.scatter / (self.n - 1), n=self.n)


def stats_of(features) -> FeatureStats:
  """FeatureStats of all feature vectors [N, D] at once."""
  return Moments().update(features).stats()
