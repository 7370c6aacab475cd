"""Streaming feature statistics equal numpy's mean and covariance, however the data is split."""

import numpy as np
import pytest

from msgm_jax.evaluation import metrics


def test_batches_of_any_size_give_numpys_mean_and_unbiased_covariance():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(103, 7)) @ rng.normal(size=(7, 7)) + rng.normal(size=7)
  moments = metrics.Moments()
  for start, stop in ((0, 1), (1, 1), (1, 40), (40, 41), (41, 103)):
    moments.update(x[start:stop].astype(np.float32 if start else np.float64))
  stats = moments.stats()
  x64 = np.concatenate([x[:1], x[1:].astype(np.float32).astype(np.float64)])
  assert stats.n == 103 and stats.dim == 7
  np.testing.assert_allclose(stats.mu, x64.mean(axis=0), rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(stats.sigma, np.cov(x64, rowvar=False), rtol=1e-10, atol=1e-12)


def test_a_large_mean_does_not_cost_the_covariance_its_digits():
  # Raw second moments would lose about 12 of float64's 16 digits here.
  rng = np.random.default_rng(1)
  x = 1e6 + rng.normal(size=(1000, 3))
  moments = metrics.Moments()
  for batch in np.array_split(x, 9):
    moments.update(batch)
  np.testing.assert_allclose(moments.stats().sigma, np.cov(x, rowvar=False), rtol=1e-8)


def test_too_few_or_bad_features_are_refused():
  with pytest.raises(ValueError, match="at least 2"):
    metrics.Moments().update(np.ones((1, 3))).stats()
  with pytest.raises(ValueError, match="dimension"):
    metrics.Moments().update(np.ones((2, 3))).update(np.ones((2, 4)))
  with pytest.raises(ValueError, match="non-finite"):
    metrics.Moments().update(np.full((2, 3), np.nan))
