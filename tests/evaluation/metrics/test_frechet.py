"""The Frechet distance against closed forms (commuting covariances, 1-D, equal Gaussians)."""

import numpy as np
import pytest
import scipy.linalg

from msgm_jax.evaluation import metrics
from msgm_jax.evaluation.metrics import frechet


def _rotation(d, seed=0):
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
  return q


def _commuting(a, b, seed=0):
  """Covariances Q diag(a) Q^T and Q diag(b) Q^T: tr sqrt(S1 S2) = sum sqrt(a b)."""
  q = _rotation(len(a), seed)
  return (q * a) @ q.T, (q * b) @ q.T


def test_one_dimension_is_the_squared_w2_of_two_normals():
  # N(m1, s1^2), N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2.
  d = metrics.frechet_distance([1.0], [[4.0]], [-2.0], [[0.25]])
  assert d == pytest.approx(9.0 + 1.5 ** 2, abs=1e-12)


def test_commuting_covariances_match_the_closed_form():
  rng = np.random.default_rng(1)
  a, b = rng.uniform(0.1, 3.0, 64), rng.uniform(0.1, 3.0, 64)
  mu1, mu2 = rng.normal(size=64), rng.normal(size=64)
  s1, s2 = _commuting(a, b)
  terms = metrics.frechet_terms(mu1, s1, mu2, s2)
  assert terms.mean == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-12)
  assert terms.cov == pytest.approx(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2), rel=1e-9)
  assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(terms.mean + terms.cov)
  assert metrics.frechet_distance_no_mean(mu1, s1, mu2, s2) == pytest.approx(terms.cov)
  assert metrics.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(terms.distance, rel=1e-9)


def test_general_covariances_match_scipy_sqrtm():
  # Independent route for non-commuting, well-conditioned matrices: the Schur-based sqrtm.
  rng = np.random.default_rng(2)
  x, y = rng.normal(size=(40, 16)), rng.normal(size=(40, 16)) @ rng.normal(size=(16, 16))
  s1, s2 = x.T @ x / 40 + np.eye(16), y.T @ y / 40 + np.eye(16)
  mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
  expected = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
              - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2)).real)
  assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_equal_gaussians_give_zero_even_when_singular():
  rng = np.random.default_rng(3)
  features = rng.normal(size=(20, 100)) * rng.uniform(0.1, 5.0, 100)  # rank 19 < 100
  stats = metrics.stats_of(features)
  assert np.linalg.matrix_rank(stats.sigma) == 19
  d = metrics.frechet_distance(stats.mu, stats.sigma, stats.mu, stats.sigma)
  assert d == pytest.approx(0.0, abs=1e-9)


def test_a_pure_mean_shift_gives_the_squared_distance_of_the_means():
  rng = np.random.default_rng(4)
  features = rng.normal(size=(30, 50))  # singular sample covariance (rank 29)
  sigma = np.cov(features, rowvar=False)
  shift = rng.normal(size=50)
  d = metrics.frechet_distance(np.zeros(50), sigma, shift, sigma)
  assert d == pytest.approx(shift @ shift, rel=1e-9)
  assert metrics.frechet_distance_no_mean(np.zeros(50), sigma, shift, sigma) == pytest.approx(
      0.0, abs=1e-8)


def test_rank_deficient_commuting_covariances_match_the_closed_form():
  a = np.r_[np.zeros(10), np.linspace(0.5, 2.0, 30)]
  b = np.r_[np.linspace(1.0, 3.0, 20), np.zeros(20)]
  s1, s2 = _commuting(a, b, seed=5)
  expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert metrics.frechet_distance(np.zeros(40), s1, np.zeros(40), s2) == pytest.approx(
      expected, rel=1e-9)
  # A point mass against a Gaussian: tr(S2).
  assert metrics.frechet_distance(np.zeros(40), np.zeros((40, 40)), np.ones(40), s2) == (
      pytest.approx(40.0 + b.sum(), rel=1e-12))


def test_round_off_negative_eigenvalues_give_a_finite_real_result():
  rng = np.random.default_rng(6)
  s = np.cov(rng.normal(size=(5, 30)), rowvar=False)
  s_bad = s - 1e-12 * np.eye(30)  # slightly indefinite, as accumulated round-off can make it
  assert np.linalg.eigvalsh(s_bad).min() < 0
  d = metrics.frechet_distance(np.zeros(30), s_bad, np.zeros(30), s)
  assert isinstance(d, float) and np.isfinite(d) and 0.0 <= d < 1e-5


def test_eps_adds_a_diagonal_offset_to_both():
  s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 0.0])
  eps = 0.5
  expected = np.sum((np.sqrt([1.5, 4.5]) - np.sqrt([9.5, 0.5])) ** 2)
  assert frechet.frechet_distance(np.zeros(2), s1, np.zeros(2), s2, eps=eps) == pytest.approx(
      expected, rel=1e-12)


@pytest.mark.parametrize("args, match", [
    ((np.zeros(3), np.eye(3), np.zeros(2), np.eye(2)), "shapes disagree"),
    ((np.zeros(3), np.ones((3, 2)), np.zeros(3), np.eye(3)), "square"),
    ((np.zeros(2), np.diag([1.0, np.nan]), np.zeros(2), np.eye(2)), "non-finite"),
])
def test_bad_inputs_are_refused(args, match):
  with pytest.raises(ValueError, match=match):
    metrics.frechet_distance(*args)
