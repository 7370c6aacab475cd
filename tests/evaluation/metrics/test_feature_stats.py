"""Dataset feature statistics: cache names, other tools' files, and values against numpy and
the torch Inception reference."""

import os

import jax
import numpy as np
import pytest

from msgm_jax import data
from msgm_jax.evaluation import metrics
from msgm_jax.data import datasets
from msgm_jax.evaluation.metrics import feature_stats, weights
from tests.helpers import ROOT
from tests.evaluation.metrics.projection import build_projection

DEVICES = jax.local_devices()
DIGITS = data.DataSpec("digits", nsfg_classes=(0,), cache_dir=None)


def test_cache_names_encode_data_split_subset_count_extractor_and_digest():
  cifar = data.DataSpec("CIFAR10", nsfg_classes=(1, 5))
  name = feature_stats.cache_name(cifar, "train", "sfg", "inception",
                                 weights.FID_WEIGHTS_SHA256)
  assert name == "cifar10-32x32x3_train_sfg-nsfg1+5_all_inception-6726825d0af5f729.npz"
  celeba = data.DataSpec("celeb_a", image_size=64)
  assert feature_stats.cache_name(celeba, "test", "nsfg", "classifier", "ab" * 32, 500) == (
      "celeba-64x64x3_test_nsfg-nsfgBangs_n500_classifier-abababababababab.npz")
  assert feature_stats.cache_name(DIGITS, "train", "all", "pixels", "none") == (
      "digits-8x8x1_train_all_all_pixels-none.npz")


def test_load_stats_reads_score_sde_pool3_and_pytorch_fid_files(tmp_path):
  pool3 = np.random.default_rng(0).uniform(size=(50, 6)).astype(np.float32)
  np.savez(tmp_path / "cifar10_stats.npz", pool_3=pool3)  # score_sde: raw activations
  stats = metrics.load_stats(str(tmp_path / "cifar10_stats.npz"))
  assert stats.n == 50 and stats.mu.dtype == np.float64
  np.testing.assert_allclose(stats.mu, pool3.astype(np.float64).mean(0), rtol=1e-12)
  np.testing.assert_allclose(stats.sigma, np.cov(pool3.astype(np.float64), rowvar=False),
                             rtol=1e-10)
  np.savez(tmp_path / "fid.npz", mu=stats.mu, sigma=stats.sigma)  # pytorch-fid's keys
  assert metrics.load_stats(str(tmp_path / "fid.npz")).n == 0
  metrics.save_stats(str(tmp_path / "ours.npz"), stats, extractor="x")
  again = metrics.load_stats(str(tmp_path / "ours.npz"))
  assert again.n == 50 and np.array_equal(again.sigma, stats.sigma)
  np.savez(tmp_path / "other.npz", activations=pool3)
  with pytest.raises(ValueError, match="neither 'mu' and 'sigma' nor 'pool_3'"):
    metrics.load_stats(str(tmp_path / "other.npz"))
  with pytest.raises(FileNotFoundError, match="python -m msgm_jax.evaluation.metrics.stats"):
    metrics.load_stats(str(tmp_path / "absent.npz"))


def _digit_features(subset, ex):
  """The extractor's features of the digits train subset, straight from the raw arrays."""
  raw = datasets.load_digits("train")
  keep = (raw.labels() == 0) if subset == "nsfg" else (raw.labels() != 0)
  images = raw.images[keep].astype(np.float64) / 255.0
  return images.reshape(len(images), -1) @ np.asarray(ex.params["w"], np.float64)


def test_dataset_stats_match_numpy_and_are_cached(tmp_path):
  ex = build_projection(metrics.ExtractorOptions(image_shape=(8, 8, 1)))
  runner = metrics.FeatureRunner(ex, DEVICES, batch_size=64)  # the last batch is padded
  for subset in ("sfg", "nsfg"):
    stats, path, fresh = metrics.dataset_stats(DIGITS, "train", subset, runner, str(tmp_path))
    features = _digit_features(subset, ex)
    assert fresh and os.path.basename(path).startswith(f"digits-8x8x1_train_{subset}-nsfg0_all")
    assert stats.n == len(features) and stats.n == (145 if subset == "nsfg" else 1355)
    np.testing.assert_allclose(stats.mu, features.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.sigma, np.cov(features, rowvar=False), rtol=1e-4, atol=1e-5)
    again, same_path, fresh = metrics.dataset_stats(DIGITS, "train", subset, runner,
                                                    str(tmp_path))
    assert not fresh and same_path == path and np.array_equal(again.sigma, stats.sigma)
  few, path, _ = metrics.dataset_stats(DIGITS, "train", "sfg", runner, str(tmp_path),
                                       num_examples=10)
  assert few.n == 10 and "_n10_" in path
  with pytest.raises(ValueError, match="for image datasets"):
    metrics.dataset_stats(data.DataSpec("toy2d"), "train", "sfg", runner, str(tmp_path))


def test_inception_statistics_match_the_torch_reference(seeded_inception):
  # The registered 'inception' extractor with the seeded weights, data-parallel over 2 devices
  # (8 compile and run 1.5-4x slower here) on 3 images padded to a batch of 4, against the
  # statistics of the torch reference's features of the same images
  # (tests/fixtures/inception_pool3.npz).
  _, weights_path = seeded_inception
  with np.load(os.path.join(ROOT, "tests", "fixtures", "inception_pool3.npz")) as f:
    images, pool3 = f["images"], f["pool3"]
  ex = metrics.build_extractor("inception", metrics.ExtractorOptions(weights=weights_path))
  assert ex.digest == weights.file_sha256(weights_path)
  runner = metrics.FeatureRunner(ex, DEVICES[:2], batch_size=4)
  source = data.ArraySource(images, np.zeros(len(images)))
  stats = feature_stats.compute_stats(runner, source)
  expected = metrics.stats_of(pool3)
  assert stats.n == 3 and stats.dim == 2048
  np.testing.assert_allclose(stats.mu, expected.mu, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(stats.sigma, expected.sigma, rtol=1e-4, atol=2e-4)
