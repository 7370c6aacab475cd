"""Tests for msgm_jax/data/sources.py and datasets.py: TFDS ArrayRecord reading, embedded digits."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from msgm_jax.data import datasets, sources
from msgm_jax.data.testing import build_local_tfds, coded_examples, decode_example


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """A real ArrayRecord 'cifar10' (30 train, 12 test) and 'celeb_a' (9 train) under a tmp dir."""
  d = str(tmp_path_factory.mktemp("tfds"))
  ex = coded_examples(42, (32, 32, 3))
  build_local_tfds("cifar10", d, {"train": ex[:30], "test": ex[30:]})
  faces = [{"image": np.full((218, 178, 3), i, np.uint8), "attributes": {"Bangs": i % 3 == 0}}
           for i in range(9)]
  build_local_tfds("celeb_a", d, {"train": faces})
  return d


def test_tfds_source_reads_the_real_arrayrecord_path(data_dir):
  src = sources.TfdsSource("cifar10", "train", data_dir)
  assert isinstance(src, sources.Source) and len(src) == 30
  seen = set()
  for i in range(len(src)):
    ex = src[i]
    assert ex["image"].shape == (32, 32, 3) and ex["image"].dtype == np.uint8
    idx, label = decode_example(ex["image"])
    assert label == ex["label"] == idx % 10
    seen.add(idx)
  assert seen == set(range(30))
  np.testing.assert_array_equal(src.labels(), [src[i]["label"] for i in range(len(src))])


def test_split_strings_concatenate(data_dir):
  assert len(sources.TfdsSource("cifar10", "train+test", data_dir)) == 42


def test_label_cache_is_written_and_reused(data_dir, tmp_path, monkeypatch):
  cache = str(tmp_path / "cache")
  labels = sources.TfdsSource("cifar10", "train", data_dir, cache_dir=cache).labels()
  assert len(os.listdir(cache)) == 1
  again = sources.TfdsSource("cifar10", "train", data_dir, cache_dir=cache)
  monkeypatch.setattr(again, "_scan", lambda: pytest.fail("scanned despite the cache"))
  np.testing.assert_array_equal(again.labels(), labels)


def test_stale_cache_is_ignored(data_dir, tmp_path):
  src = sources.TfdsSource("cifar10", "test", data_dir, cache_dir=str(tmp_path))
  path = src._cache_path("label")  # pylint: disable=protected-access
  np.save(path, np.zeros(3, np.int64))
  np.testing.assert_array_equal(src.labels(), [src[i]["label"] for i in range(12)])


def test_celeba_attributes(data_dir):
  src = datasets.get_dataset("CELEBA").load("train", data_dir)
  bangs = src.attribute("Bangs")
  assert bangs.dtype == bool and bangs.sum() == 3
  for i in range(len(src)):
    assert bangs[i] == (src[i]["image"][0, 0, 0] % 3 == 0)
  assert (src.labels() == 0).all()
  with pytest.raises(ValueError, match="Bangs"):
    src.attribute("Bang")


def test_missing_dataset_fails_fast_in_one_line(tmp_path):
  start = time.time()
  with pytest.raises(sources.DatasetNotPrepared) as err:
    sources.TfdsSource("cifar10", "train", str(tmp_path))
  assert time.time() - start < 5
  msg = str(err.value)
  assert "\n" not in msg and isinstance(err.value, ValueError)
  assert f"python -m msgm_jax.data.prepare --dataset=cifar10 --data_dir={tmp_path}" in msg
  assert os.listdir(tmp_path) == []


def test_missing_dataset_traceback_is_one_error(tmp_path):
  code = ("from msgm_jax.data import sources; "
          f"sources.TfdsSource('mnist', 'train', {str(tmp_path)!r})")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()}, check=False)
  assert out.returncode != 0
  assert "During handling" not in out.stderr
  assert out.stderr.strip().splitlines()[-1].startswith("msgm_jax.data.sources.DatasetNotPrepared")


def test_mock_data_source_labels_fall_back_to_full_decoding():
  with tfds.testing.mock_data(num_examples=12):
    src = sources.TfdsSource("cifar10", "train")
    labels = src.labels()
    assert labels.shape == (12,) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [src[i]["label"] for i in range(12)])


def test_array_source():
  src = sources.ArraySource(np.zeros((3, 2, 2, 1), np.uint8), [0, 1, 2],
                            {"Bangs": np.array([1, 0, 1])})
  assert src[1]["label"] == 1 and src.attribute("Bangs").tolist() == [True, False, True]
  with pytest.raises(ValueError, match="Bangs"):
    src.attribute("Male")
  with pytest.raises(ValueError, match="labels"):
    sources.ArraySource(np.zeros((3, 1)), [0, 1])


def test_digits_are_the_real_sklearn_digits():
  train, test = datasets.load_digits("train"), datasets.load_digits("test")
  assert len(train) == 1500 and len(test) == 297
  for src in (train, test):
    assert src.images.shape[1:] == (8, 8, 1) and src.images.dtype == np.uint8
    assert src.images.min() == 0 and src.images.max() == 255
    assert set(src.labels().tolist()) == set(range(10))
  counts = np.bincount(train.labels(), minlength=10) + np.bincount(test.labels(), minlength=10)
  assert counts.sum() == 1797 and counts.min() >= 174
  np.testing.assert_array_equal(datasets.load_digits("train").images, train.images)
  # Pixel values are the 17 levels v * 255 / 16 of the original 0..16 data.
  assert set(np.unique(train.images).tolist()) <= {round(v * 255 / 16) for v in range(17)}


@pytest.mark.parametrize("name, canonical", [
    ("CIFAR10", "cifar10"), ("cifar10", "cifar10"), ("MNIST", "mnist"), ("CELEBA", "celeba"),
    ("celeb_a", "celeba"), ("STL10", "stl10"), ("digits", "digits"), ("TOY2D", "toy2d"),
    ("colour_digits", "colourdigits")])
def test_dataset_names_are_case_insensitive(name, canonical):
  assert datasets.get_dataset(name).name == canonical


def test_unknown_dataset_lists_valid_names():
  with pytest.raises(ValueError, match="celeba, cifar10, colourdigits, digits, mnist, stl10, toy2d"):
    datasets.get_dataset("imagenet")


def test_unknown_split_lists_valid_splits():
  with pytest.raises(ValueError, match="train, validation, test"):
    datasets.get_dataset("celeba").tfds_split("val")
  assert datasets.get_dataset("STL10").tfds_split("train") == "train+test"
