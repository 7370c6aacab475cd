"""The classifier's inputs: the target as label (CelebA: Bangs), [0, 1] images, and a binary
Bangs classifier trained end to end on a tiny real-format CelebA."""

import json
import os

import numpy as np
import pytest

from msgm_jax import data
from msgm_jax.evaluation.classifier import ClassifierInfo, ClassifierSettings, evaluate, inputs
from msgm_jax.evaluation.classifier import train as classifier_train
from msgm_jax.data.datasets import get_dataset
from msgm_jax.data.testing import build_local_tfds

# Faces with Bangs have a bright top half (pixels 200 + i) over a dark bottom (40 + i), the
# others the opposite: the same mean brightness, and the top-left pixel says who is who.
BANGS = {"train": lambda i: i % 3 == 0, "test": lambda i: i % 2 == 0}


def _faces(n, bangs):
  out = []
  for i in range(n):
    top, bottom = (200 + i, 40 + i) if bangs(i) else (40 + i, 200 + i)
    image = np.full((218, 178, 3), bottom, np.uint8)
    image[:109] = top
    out.append({"image": image, "attributes": {"Bangs": bangs(i)}})
  return out


@pytest.fixture(scope="module")
def celeba(tmp_path_factory):
  d = str(tmp_path_factory.mktemp("tfds"))
  build_local_tfds("celeb_a", d, {"train": _faces(48, BANGS["train"]),
                                  "test": _faces(24, BANGS["test"])})
  return data.DataSpec("celeba", data_dir=d, image_size=16, random_flip=True, cache_dir=None)


def _who(pixel):
  """(i, bangs) of a face from its pixel value."""
  return (pixel - 200, True) if pixel >= 200 else (pixel - 40, False)


def test_celeba_target_is_the_bangs_attribute(celeba):
  assert inputs.target(celeba) == ("Bangs", 2)
  source = inputs.labelled_source(celeba, "train")
  for k in range(len(source)):
    ex = source[k]
    i, bangs = _who(int(ex["image"][0, 0, 0]))
    assert ex["label"] == int(bangs) == int(BANGS["train"](i))
  assert source.labels().sum() == 16


def test_train_batches_are_unit_interval_images_with_their_labels(celeba):
  stream = inputs.train_stream(celeba, "train", batch_size=16, seed=0)
  batch = stream.batch(0)
  assert batch["image"].shape == (16, 16, 16, 3) and batch["image"].dtype == np.float32
  assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
  pixels = np.rint(batch["image"][:, 0, 0, 0] * 255).astype(int)
  np.testing.assert_array_equal([int(_who(p)[1]) for p in pixels], batch["label"])


def test_split_batches_cover_the_split_once_in_order(celeba):
  batches = list(inputs.split_batches(celeba, "test", 16))
  assert [b["mask"].sum() for b in batches] == [16, 8]
  labels = np.concatenate([b["label"][b["mask"]] for b in batches])
  np.testing.assert_array_equal(labels, inputs.labelled_source(celeba, "test").labels())


def test_class_datasets_keep_their_labels_and_stl10_holds_out_test():
  digits = inputs.labelled_source(data.DataSpec("digits"), "test")
  assert len(digits) == 297 and set(digits.labels().tolist()) == set(range(10))
  assert get_dataset("stl10").tfds_split("train_only") == "train"
  with pytest.raises(ValueError, match="needs image data"):
    inputs.check_spec(data.DataSpec("toy2d"))


def test_bangs_classifier_reports_recall_and_specificity(celeba, tmp_path):
  settings = ClassifierSettings(width=8, depth=2, lr=3e-3, batch_size=16, n_iters=40,
                                snapshot_freq=40, log_freq=20, eval_batch_size=16)
  info = ClassifierInfo.for_data(celeba, settings)
  clf = classifier_train.train(celeba, info, seed=0, workdir=str(tmp_path))
  record = evaluate.report(clf, celeba, str(tmp_path), settings)
  with open(os.path.join(tmp_path, "classifier_eval.json"), encoding="utf-8") as f:
    assert json.load(f) == record
  assert record["attribute"] == "Bangs" and record["num_examples"] == 24
  assert record["support"] == {"not_Bangs": 12, "Bangs": 12}
  # Learnable only from the Bangs labels: trained on CelebA's own (absent, all 0) labels, every
  # face would be not_Bangs and the Bangs recall 0.
  assert record["attribute_recall"] == record["per_class_recall"]["Bangs"] == 1.0
  assert record["attribute_specificity"] == record["per_class_recall"]["not_Bangs"] == 1.0
