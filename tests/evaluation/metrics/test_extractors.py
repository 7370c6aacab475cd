"""The extractor registry and the data-parallel runner (8 fake devices), against numpy."""

import dataclasses

import jax
import numpy as np
import pytest

from msgm_jax.evaluation import metrics
from msgm_jax.evaluation.metrics import extractors
from tests.evaluation.metrics.projection import build_projection

DEVICES = jax.local_devices()


def test_registry_builds_by_name_and_lists_names_on_a_typo():
  assert {"inception", "pixels", "tests.projection"} <= set(metrics.EXTRACTORS.names())
  ex = metrics.build_extractor("tests.projection", metrics.ExtractorOptions(image_shape=(4, 4, 1)))
  assert ex.dim == 5 and len(ex.digest) == 64
  with pytest.raises(ValueError, match="unknown feature extractor 'nope'; valid names: .*pixels"):
    metrics.build_extractor("nope", metrics.ExtractorOptions())


def test_options_read_the_extractors_weights_field():
  import ml_collections  # pylint: disable=import-outside-toplevel
  cfg = ml_collections.ConfigDict({"inception_weights": "/w.pth", "batch_size": 8})
  assert metrics.ExtractorOptions.from_config(cfg, "inception", [8, 8, 1]) == (
      metrics.ExtractorOptions(weights="/w.pth", image_shape=(8, 8, 1)))
  assert metrics.ExtractorOptions.from_config(cfg, "pixels", (8, 8, 1)).weights == ""


def test_tree_digest_changes_with_any_value():
  a = {"w": np.zeros((2, 2), np.float32)}
  b = {"w": np.zeros((2, 2), np.float32)}
  b["w"][1, 1] = 1e-7
  assert metrics.tree_digest(a) == metrics.tree_digest({"w": np.zeros((2, 2), np.float32)})
  assert metrics.tree_digest(a) != metrics.tree_digest(b)
  assert metrics.tree_digest(a) != metrics.tree_digest({"w": np.zeros((4,), np.float32)})


def test_runner_pads_shards_and_returns_the_real_rows_in_order_with_one_trace():
  ex = build_projection(metrics.ExtractorOptions(image_shape=(4, 4, 1)))
  traces = []
  counted = dataclasses.replace(ex, fn=lambda p, x: traces.append(1) or ex.fn(p, x))
  runner = metrics.FeatureRunner(counted, DEVICES, batch_size=2 * len(DEVICES))
  images = np.random.default_rng(1).uniform(size=(21, 4, 4, 1)).astype(np.float32)
  w = np.asarray(ex.params["w"], np.float64)
  for batch in (images[:5], images[5:21]):  # padded, then full: the same compiled function
    expected = batch.reshape(len(batch), -1).astype(np.float64) @ w
    np.testing.assert_allclose(runner(batch), expected, rtol=1e-5, atol=1e-5)
  assert len(traces) == 1
  with pytest.raises(ValueError, match="holds 1..16 images"):
    runner(np.zeros((17, 4, 4, 1)))
  with pytest.raises(ValueError, match="multiple of the 8 devices"):
    metrics.FeatureRunner(ex, DEVICES, batch_size=12)


def test_pixels_extractor_flattens():
  ex = metrics.build_extractor("pixels", metrics.ExtractorOptions(image_shape=(2, 3, 1)))
  x = np.arange(12, dtype=np.float32).reshape(2, 2, 3, 1)
  np.testing.assert_array_equal(ex.fn(ex.params, x), x.reshape(2, 6))
  assert ex.dim == 6 and ex.digest == "none"
  with pytest.raises(ValueError, match="image shape"):
    extractors.build_pixels(metrics.ExtractorOptions())
