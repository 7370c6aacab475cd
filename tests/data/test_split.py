"""Tests for msgm_jax/data/split.py: SFG / NSFG index sets and regimes."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from msgm_jax.data import split
from msgm_jax.data.sources import ArraySource, TfdsSource
from msgm_jax.data.testing import build_local_tfds, coded_examples, decode_example


def _labels_source(labels):
  return ArraySource(np.zeros((len(labels), 1, 1, 1), np.uint8), labels)


def test_class_split_tiles_and_is_correct():
  labels = np.array([0, 1, 5, 3, 1, 9, 5, 2])
  sfg, nsfg = split.split_indices(_labels_source(labels), nsfg_classes=(1, 5))
  assert sfg.dtype == nsfg.dtype == np.int64
  np.testing.assert_array_equal(nsfg, [1, 2, 4, 6])
  np.testing.assert_array_equal(np.sort(np.concatenate([sfg, nsfg])), np.arange(8))
  assert not np.isin(labels[sfg], [1, 5]).any()


def test_attribute_split():
  src = ArraySource(np.zeros((4, 1, 1, 1), np.uint8), np.zeros(4),
                    {"Bangs": np.array([True, False, False, True])})
  sfg, nsfg = split.split_indices(src, nsfg_attribute="Bangs")
  np.testing.assert_array_equal(sfg, [1, 2])
  np.testing.assert_array_equal(nsfg, [0, 3])


@pytest.mark.parametrize("classes, attribute", [((), ""), ((1,), "Bangs")])
def test_exactly_one_criterion(classes, attribute):
  with pytest.raises(ValueError, match="exactly one"):
    split.split_indices(_labels_source([0, 1]), classes, attribute)


def test_split_on_a_real_arrayrecord_dataset(tmp_path):
  build_local_tfds("cifar10", str(tmp_path), {"train": coded_examples(40, (32, 32, 3))})
  src = TfdsSource("cifar10", "train", str(tmp_path))
  sfg, nsfg = split.split_indices(src, nsfg_classes=(1, 5))
  assert len(nsfg) == 8 and len(sfg) == 32
  for i in nsfg:
    assert decode_example(src[i]["image"])[1] in (1, 5)
  for i in sfg:
    assert decode_example(src[i]["image"])[1] not in (1, 5)


def test_split_with_mock_cifar10():
  with tfds.testing.mock_data(num_examples=20):
    src = TfdsSource("cifar10", "train")
    sfg, nsfg = split.split_indices(src, nsfg_classes=(1, 5))
    assert len(sfg) + len(nsfg) == 20
    assert all(src[int(i)]["label"] in (1, 5) for i in nsfg)
    assert all(src[int(i)]["label"] not in (1, 5) for i in sfg)


def test_regime_sets():
  sfg, nsfg = np.array([0, 2]), np.array([1])
  main, extra = split.regime_sets("standard", 3, None, None)
  np.testing.assert_array_equal(main, [0, 1, 2])
  assert extra is None
  main, extra = split.regime_sets("unseen", 3, sfg, nsfg)
  assert main is sfg and extra is None
  main, extra = split.regime_sets("msgm", 3, sfg, nsfg)
  assert main is sfg and extra is nsfg
  with pytest.raises(ValueError, match="NSFG"):
    split.regime_sets("msgm", 3, sfg, np.array([], np.int64))
  with pytest.raises(ValueError, match="standard, unseen, msgm"):
    split.regime_sets("retrain", 3, sfg, nsfg)
