"""Sample metrics against independent truth: the classifier's own evaluation (its confusion
matrix) and the Frechet distance of a set with itself (8 fake devices, padded batches)."""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from msgm_jax import data
from msgm_jax.evaluation import metrics
from msgm_jax.evaluation import sample_metrics
from msgm_jax.config import validate
from msgm_jax.evaluation.classifier import ClassifierMismatch
from tests.helpers import load_config

DEVICES = jax.local_devices()
NSFG = 3  # the class the classifier confuses most at 120 steps: a floor above 0


@pytest.fixture(scope="module")
def classifier(tiny_classifier):
  workdir, _, clf, record = tiny_classifier
  return workdir, clf, record


def _settings(workdir, stats_dir, **switches):
  eval_cfg = ml_collections.ConfigDict(dict(
      bpd_dataset="test", batch_size=48, classifier_weights=workdir, inception_weights="",
      stats_dir=str(stats_dir), fid_split="train", nsfg_rate="auto", fd_classifier="auto",
      fid="auto"))
  eval_cfg.update(switches)
  return sample_metrics.SampleMetricSettings.from_config(eval_cfg)


@pytest.fixture(scope="module")
def measured(classifier, tmp_path_factory):
  spec = data.DataSpec("digits", nsfg_classes=(NSFG,))
  settings = _settings(classifier[0], tmp_path_factory.mktemp("stats"))
  chosen, notices = settings.chosen(spec.is_points)
  assert chosen == ("nsfg_rate", "fd_classifier")
  assert len(notices) == 1 and "fid skipped" in notices[0]
  return spec, sample_metrics.SampleMetrics(spec, settings, DEVICES, chosen)


def _images(spec, subset):
  source = data.make_eval_source(spec, "test", subset)
  return np.stack([source[i]["image"] for i in range(len(source))])


def test_real_rates_are_the_classifiers_recall_and_false_positive_rate(classifier, measured):
  _, _, record = classifier
  spec, m = measured
  confusion = np.array(record["confusion"])  # rows: true class, columns: predicted
  real = m.real_rates()
  assert real["nsfg"]["nsfg_rate"] == pytest.approx(record["per_class_recall"][str(NSFG)])
  sfg_rows = np.delete(confusion, NSFG, axis=0)
  assert real["sfg"]["nsfg_rate_count"] == sfg_rows[:, NSFG].sum() > 0
  assert real["sfg"]["nsfg_rate_n"] == sfg_rows.sum() == 297 - confusion[NSFG].sum()
  # Real NSFG images as "samples": the same numbers through the samples' path.
  out = m(_images(spec, "nsfg"))
  assert out["nsfg_rate"] == real["nsfg"]["nsfg_rate"]
  assert out["nsfg_rate_ci"] == list(metrics.wilson_interval(out["nsfg_rate_count"],
                                                             out["nsfg_rate_n"]))


def test_fd_of_the_reference_set_with_itself_is_zero(measured):
  spec, m = measured
  sfg = m(_images(spec, "sfg"))  # 264 images: 5 full batches of 48 and a padded one
  assert sfg["fd_classifier"] == pytest.approx(0.0, abs=1e-6)
  assert sfg["fd_classifier_no_mean"] == pytest.approx(0.0, abs=1e-6)
  assert sfg["fd_classifier_nsfg"] > 1.0
  nsfg = m(_images(spec, "nsfg"))
  assert nsfg["fd_classifier_nsfg"] == pytest.approx(0.0, abs=1e-6)
  assert nsfg["fd_classifier"] > nsfg["fd_classifier_no_mean"] > 0


def test_reference_statistics_are_cached_by_classifier(classifier, measured, tmp_path):
  spec, m = measured
  runner = m.frechet["fd_classifier"][0]
  stats_dir = m.settings.stats_dir
  files = os.listdir(stats_dir)
  assert len(files) == 2 and all(runner.extractor.digest[:16] in f for f in files)
  # The registered extractor reads the same classifier from eval.classifier_weights.
  built = metrics.build_extractor("classifier", metrics.ExtractorOptions(
      weights=classifier[0], image_shape=(8, 8, 1)))
  assert built.digest == runner.extractor.digest and built.dim == runner.extractor.dim
  x = _images(spec, "nsfg")[:5].astype(np.float32) / 255
  np.testing.assert_allclose(built.fn(built.params, x), classifier[1].features(
      classifier[1].params, x), rtol=1e-6)
  with pytest.raises(ValueError, match="needs its weights: set eval.classifier_weights"):
    metrics.build_extractor("classifier", metrics.ExtractorOptions(image_shape=(8, 8, 1)))
  with pytest.raises(ValueError, match=r"takes images of \(8, 8, 1\), not \(16, 16, 1\)"):
    metrics.build_extractor("classifier", metrics.ExtractorOptions(
        weights=classifier[0], image_shape=(16, 16, 1)))


def test_switches(classifier, tmp_path):
  off = _settings(classifier[0], tmp_path, nsfg_rate="off", fd_classifier="off", fid="off")
  assert off.chosen(False) == ((), ())
  none = _settings("", tmp_path)
  chosen, notices = none.chosen(False)
  assert chosen == () and len(notices) == 3
  assert all("\n" not in n and "eval.classifier_weights" in n for n in notices[:2])
  assert none.chosen(True)[1][0].startswith("eval: nsfg_rate skipped: it needs image data")
  with pytest.raises(ValueError, match="eval.fd_classifier='on' needs eval.classifier_weights"):
    _settings("", tmp_path, fd_classifier="on").chosen(False)
  with pytest.raises(ValueError, match="eval.nsfg_rate='on' needs image data"):
    _settings(classifier[0], tmp_path, nsfg_rate="on").chosen(True)


def test_a_classifier_of_other_data_is_refused(classifier, tmp_path):
  spec = data.DataSpec("digits", nsfg_classes=(12,))
  with pytest.raises(ClassifierMismatch, match="NSFG classes .12. are not among"):
    sample_metrics.SampleMetrics(spec, _settings(classifier[0], tmp_path), DEVICES,
                                 ("nsfg_rate",))


def test_on_without_weights_fails_validation_naming_the_field():
  config = load_config("configs/msgm/digits_ddpm.py")
  config.eval.fid = "on"
  with pytest.raises(validate.ConfigError, match="eval.fid='on' needs eval.inception_weights"):
    validate.check_config(config)
  config.eval.fid = "maybe"
  with pytest.raises(validate.ConfigError, match="eval.fid='maybe' is invalid: it must be one "
                     "of auto, on, off"):
    validate.check_config(config)
  assert json.dumps(config.eval.to_dict())  # every field is plain JSON


def test_factored_detector_reads_the_digits_classifiers_confusion(classifier, tmp_path):
  """On the real colour digits (every grey test digit in each of the 7 colours) the factored
  decision reads the colour exactly and the digit as the grey classifier does: a digit d read
  as p is called NSFG in exactly one colour, p mod 7, which is NSFG truly iff p = d mod 7. So
  the recall and the floor follow from the classifier's confusion matrix alone."""
  workdir, _, record = classifier
  spec = data.DataSpec("colour_digits")
  settings = _settings("", tmp_path, nsfg_detector="factored", detector_weights=workdir,
                       fd_classifier="off")
  chosen, _ = settings.chosen(spec.is_points)
  assert chosen == ("nsfg_rate",)
  real = sample_metrics.SampleMetrics(spec, settings, DEVICES, chosen).real_rates()
  confusion = np.array(record["confusion"])
  same = np.arange(10)[:, None] % 7 == np.arange(10)[None, :] % 7
  found = int(confusion[same].sum())
  assert real["nsfg"]["nsfg_rate_n"] == confusion.sum() == 297
  assert real["nsfg"]["nsfg_rate_count"] == found
  assert real["sfg"]["nsfg_rate_n"] == 6 * 297 and real["sfg"]["nsfg_rate_count"] == 297 - found


def test_factored_detector_needs_its_weights_and_the_colour_digits(classifier, tmp_path):
  settings = _settings(classifier[0], tmp_path, nsfg_detector="factored", nsfg_rate="on")
  with pytest.raises(ValueError, match="eval.nsfg_rate='on' needs eval.detector_weights; set "
                                       "--config.eval.detector_weights=<the digits classifier"):
    settings.chosen(False)
  # fd_classifier keeps the classifier's weights.
  assert settings.needs("fd_classifier") == "classifier" and settings.needs("nsfg_rate") == \
      "detector"
  settings = _settings(classifier[0], tmp_path, nsfg_detector="factored",
                       detector_weights=classifier[0], fd_classifier="off")
  with pytest.raises(ValueError, match="reads the colour digits' factors; the data are "
                                       "'digits': set eval.nsfg_detector=classifier"):
    sample_metrics.SampleMetrics(data.DataSpec("digits", nsfg_classes=(NSFG,)), settings,
                                 DEVICES, ("nsfg_rate",))
  config = load_config("configs/digits_ddpm.py")
  config.eval.nsfg_detector = "exact"
  with pytest.raises(validate.ConfigError, match="eval.nsfg_detector='exact' is invalid: it "
                                                 "must be one of"):
    validate.check_config(config)
