"""Tests for msgm_jax/data/mixture.py: exact densities, posteriors and scores of the toy data."""

import numpy as np
import pytest
from scipy import stats

from msgm_jax.data.mixture import TOY2D_MIXTURE, TOY2D_NSFG_COMPONENTS, GaussianMixture

MIX = GaussianMixture(means=[[-2.0, -2.0], [2.0, 2.0], [0.0, 0.5]], stds=[0.5, 0.8, 0.3],
                      weights=[0.5, 0.3, 0.2])


def _scipy_log_prob(mix, x):
  dens = sum(w * stats.multivariate_normal(m, s**2 * np.eye(mix.dim)).pdf(x)
             for m, s, w in zip(mix.means, mix.stds, mix.weights))
  return np.log(dens)


def test_log_prob_matches_scipy_for_unequal_weights():
  x = np.random.default_rng(0).normal(scale=2.5, size=(200, 2))
  np.testing.assert_allclose(MIX.log_prob(x), _scipy_log_prob(MIX, x), rtol=1e-10)


def test_log_prob_is_stable_far_from_the_data():
  x = np.array([[40.0, -40.0]])
  assert np.isfinite(MIX.log_prob(x)).all()


def test_weights_are_normalised():
  mix = GaussianMixture([[0.0], [1.0]], [1.0, 1.0], [2.0, 6.0])
  np.testing.assert_allclose(mix.weights, [0.25, 0.75])


def test_component_posterior_is_bayes_rule():
  x = np.random.default_rng(1).normal(size=(50, 2))
  joint = np.stack([w * stats.multivariate_normal(m, s**2 * np.eye(2)).pdf(x)
                    for m, s, w in zip(MIX.means, MIX.stds, MIX.weights)], axis=1)
  np.testing.assert_allclose(MIX.component_posterior(x), joint / joint.sum(1, keepdims=True),
                             rtol=1e-9, atol=1e-12)


def test_score_is_gradient_of_log_prob():
  x = np.random.default_rng(2).normal(size=(20, 2))
  h = 1e-5
  fd = np.stack([(MIX.log_prob(x + h * e) - MIX.log_prob(x - h * e)) / (2 * h)
                 for e in np.eye(2)], axis=1)
  np.testing.assert_allclose(MIX.score(x), fd, rtol=1e-5, atol=1e-6)


def test_perturbed_is_the_convolution_with_gaussian_noise():
  m, s = 0.6, 1.3
  pert = MIX.perturbed(m, s)
  x = np.random.default_rng(3).normal(scale=2.0, size=(30, 2))
  dens = sum(w * stats.multivariate_normal(m * mu, (m**2 * sd**2 + s**2) * np.eye(2)).pdf(x)
             for mu, sd, w in zip(MIX.means, MIX.stds, MIX.weights))
  np.testing.assert_allclose(pert.log_prob(x), np.log(dens), rtol=1e-10)


def test_sample_follows_weights_and_components():
  x, c = MIX.sample(np.random.default_rng(4), 30_000)
  assert x.shape == (30_000, 2) and c.dtype == np.int64
  np.testing.assert_allclose(np.bincount(c) / len(c), MIX.weights, atol=0.01)
  for k in range(3):
    np.testing.assert_allclose(x[c == k].mean(0), MIX.means[k], atol=0.05)
    np.testing.assert_allclose(x[c == k].std(0), MIX.stds[k], rtol=0.05)


def test_sample_is_deterministic_given_the_generator():
  a = MIX.sample(np.random.default_rng(5), 10)[0]
  b = MIX.sample(np.random.default_rng(5), 10)[0]
  np.testing.assert_array_equal(a, b)


def test_restrict_renormalises():
  sub = MIX.restrict([0, 2])
  np.testing.assert_allclose(sub.weights, [0.5 / 0.7, 0.2 / 0.7])
  np.testing.assert_array_equal(sub.means, MIX.means[[0, 2]])
  with pytest.raises(ValueError, match="subset"):
    MIX.restrict([3])


def test_invalid_parameters_raise():
  with pytest.raises(ValueError, match="means"):
    GaussianMixture([0.0, 1.0], [1.0, 1.0], [1.0, 1.0])
  with pytest.raises(ValueError, match="positive"):
    GaussianMixture([[0.0], [1.0]], [1.0, -1.0], [1.0, 1.0])


def test_arrays_are_read_only_and_hashable():
  with pytest.raises(ValueError):
    MIX.means[0, 0] = 1.0
  assert hash(MIX) == hash(MIX)


def test_toy2d_is_the_papers_first_figure():
  np.testing.assert_array_equal(TOY2D_MIXTURE.means, [[-2, -2], [2, 2], [0, 0]])
  assert TOY2D_NSFG_COMPONENTS == (2,)
