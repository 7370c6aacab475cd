"""Training, evaluating, saving and loading a tiny digits classifier (8 fake devices)."""

import json
import os
import shutil

import chex
import jax
import numpy as np
import pytest

from msgm_jax import data
from msgm_jax.training import checkpoint
from msgm_jax.evaluation.classifier import ClassifierMismatch, inputs, load_classifier
from msgm_jax.evaluation.classifier import train as classifier_train
from tests.helpers import tiny_classifier_setup

STEPS = 120
WIDTH = 16  # tiny_classifier_setup's


def _setup():
  return tiny_classifier_setup(STEPS)


@pytest.fixture(scope="module")
def trained(tiny_classifier):
  return tiny_classifier  # STEPS steps (tests.helpers.train_tiny_classifier's default)


def _test_images(spec):
  batch = next(inputs.split_batches(spec, "test", 512))
  n = int(batch["mask"].sum())
  return batch["image"][:n], batch["label"][:n]


def test_short_training_is_well_above_chance_and_the_json_says_so(trained):
  workdir, _, _, record = trained
  assert record["step"] == STEPS and record["num_examples"] == 297
  assert record["accuracy"] > 0.6  # chance: 0.1; measured 0.83
  with open(os.path.join(workdir, "classifier_eval.json"), encoding="utf-8") as f:
    saved = json.load(f)
  assert saved == record
  assert list(saved["per_class_recall"]) == [str(c) for c in range(10)]
  support = np.array(list(saved["support"].values()))
  recall = np.array(list(saved["per_class_recall"].values()))
  assert support.sum() == 297 and np.array(saved["confusion"]).sum() == 297
  assert saved["accuracy"] == pytest.approx((recall * support).sum() / 297)


def test_json_agrees_with_the_public_functions_on_the_test_images(trained):
  _, spec, clf, record = trained
  images, labels = _test_images(spec)
  logits = np.asarray(jax.jit(clf.logits)(clf.params, images))
  assert np.mean(logits.argmax(-1) == labels) == pytest.approx(record["accuracy"])
  zero = labels == 0
  assert np.mean(logits.argmax(-1)[zero] == 0) == pytest.approx(record["per_class_recall"]["0"])
  features = jax.jit(clf.features)(clf.params, images)
  assert features.shape == (len(images), 4 * WIDTH)
  decide = clf.nsfg_decider(data.DataSpec("digits", nsfg_classes=(0,)))
  np.testing.assert_array_equal(decide(logits), logits.argmax(-1) == 0)


def test_checkpoint_round_trip_and_refusals(trained, tmp_path):
  workdir, spec, clf, _ = trained
  loaded = load_classifier(workdir, spec)
  assert loaded.step == STEPS and loaded.info == clf.info
  chex.assert_trees_all_equal(loaded.params, clf.params)
  earlier = load_classifier(os.path.join(workdir, "checkpoints", str(STEPS // 2)))
  assert earlier.step == STEPS // 2
  with pytest.raises(ClassifierMismatch, match="trained on digits but the data are mnist"):
    load_classifier(workdir, data.DataSpec("mnist", nsfg_classes=(1,)))
  with pytest.raises(FileNotFoundError, match="no checkpoints"):
    load_classifier(str(tmp_path / "nothing"))
  score = checkpoint.Checkpointer(str(tmp_path / "score" / "checkpoints"))
  score.save(1, {"params": {"w": np.zeros(2)}}, {"step": 1})
  score.close()
  with pytest.raises(ClassifierMismatch, match="holds a score model, not a classifier"):
    load_classifier(str(tmp_path / "score"))


def test_resume_ends_with_the_uninterrupted_parameters(trained, tmp_path):
  workdir, _, clf, _ = trained
  resumed_dir = tmp_path / "resumed"
  shutil.copytree(os.path.join(workdir, "checkpoints"), resumed_dir / "checkpoints")
  shutil.rmtree(resumed_dir / "checkpoints" / str(STEPS))  # as if killed after the first save
  config, spec, info = _setup()
  resumed = classifier_train.train(spec, info, seed=config.seed, workdir=str(resumed_dir))
  chex.assert_trees_all_equal(resumed.params, clf.params)
