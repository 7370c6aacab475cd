"""Tests for msgm_jax/data/compositional.py: the colour digits, their factors and NSFG split."""

import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax import data
from msgm_jax.data import compositional as cd
from msgm_jax.data import datasets, sources, split


@pytest.fixture(scope="module")
def train():
  return datasets.get_dataset("colour_digits").load("train")


def test_colourize_puts_the_digit_in_exactly_the_lit_channels():
  grey = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4, 1) * 3 + 1  # no zero pixel
  images, ids = cd.colourize(grey, np.array([7, 2]))
  assert images.shape == (14, 4, 4, 3) and images.dtype == np.uint8
  for row in range(14):
    n, k = divmod(row, 7)
    for ch, lit in enumerate(cd.PALETTE[k]):
      expect = grey[n, ..., 0] if lit else np.zeros((4, 4), np.uint8)
      np.testing.assert_array_equal(images[row, ..., ch], expect)
  np.testing.assert_array_equal(ids, [k * 10 + d for d in (7, 2) for k in range(7)])
  with pytest.raises(ValueError, match=r"grey images \[N, H, W, 1\]"):
    cd.colourize(images, ids)


def test_palette_is_the_seven_on_off_colours():
  assert len({tuple(c) for c in cd.PALETTE}) == 7 and cd.PALETTE.sum(axis=1).min() == 1
  assert cd.COLOUR_NAMES[cd.colour_index("blue")] == "blue" and cd.combo(7, 2) == 27
  assert cd.describe([27, 0]) == "blue 7, red 0"
  with pytest.raises(ValueError, match="valid: red, green"):
    cd.colour_index("purple")


def test_splits_are_every_real_digit_in_every_colour_and_deterministic(train):
  for name, grey in (("train", datasets.load_digits("train")),
                     ("test", datasets.load_digits("test"))):
    src = train if name == "train" else datasets.get_dataset("colour_digits").load(name)
    assert len(src) == 7 * len(grey) and src.images.shape[1:] == (8, 8, 3)
    f = cd.factors(src.labels())
    np.testing.assert_array_equal(f["digit"], np.repeat(grey.labels(), 7))
    np.testing.assert_array_equal(f["colour"], np.tile(np.arange(7), len(grey)))
    np.testing.assert_array_equal(cd.luminance(src.images)[::7], grey.images)
  again = datasets.get_dataset("COLOUR-DIGITS").load("train")
  np.testing.assert_array_equal(again.images, train.images)
  np.testing.assert_array_equal(again.labels(), train.labels())
  # Every combination equally often: each digit's count, once per colour.
  counts = np.bincount(train.labels(), minlength=70).reshape(7, 10)
  assert (counts == np.bincount(datasets.load_digits("train").labels())[None]).all()


def test_default_nsfg_combinations_are_composable_from_sfg(train):
  nsfg = np.asarray(cd.NSFG_COMBOS)
  assert len(nsfg) == 10 and sorted(cd.factors(nsfg)["digit"]) == list(range(10))
  sfg_ids, nsfg_ids = split.split_indices(train, nsfg_classes=cd.NSFG_COMBOS)
  labels = train.labels()
  sfg_f, nsfg_f = cd.factors(labels[sfg_ids]), cd.factors(labels[nsfg_ids])
  # Every factor value of every NSFG image occurs in SFG images, with at least 8 partners.
  for d, k in zip(nsfg_f["digit"], nsfg_f["colour"]):
    assert len(set(sfg_f["colour"][sfg_f["digit"] == d])) == 6
    assert len(set(sfg_f["digit"][sfg_f["colour"] == k])) >= 8
  # One colour per digit: a seventh of the data, exactly the grey training set's size.
  assert len(nsfg_ids) == 1500 and len(sfg_ids) == 9000
  assert not np.isin(labels[sfg_ids], nsfg).any() and np.isin(labels[nsfg_ids], nsfg).all()


def test_read_colour_is_exact_on_every_real_image(train):
  x = train.images / 255.0
  truth = cd.factors(train.labels())["colour"]
  np.testing.assert_array_equal(cd.read_colour(x), truth)
  np.testing.assert_array_equal(np.asarray(cd.read_colour(jnp.asarray(x), xp=jnp)), truth)
  assert cd.colour_leak(x).max() == 0.0


def test_read_colour_thresholds_and_edge_cases():
  img = np.zeros((4, 2, 2, 3))
  img[0, ..., 2] = 1.0                            # blue
  img[1, ..., 0], img[1, ..., 2] = 1.0, 0.6       # magenta: blue at 60% of red
  img[2, ..., 0], img[2, ..., 2] = 1.0, 0.4       # red: blue at 40% is off...
  img[3] = 0.0                                    # black reads as white
  np.testing.assert_array_equal(cd.read_colour(img), [2, 4, 0, 6])
  np.testing.assert_allclose(cd.colour_leak(img), [0.0, 0.0, 0.4, 0.0])  # ...but leaks 0.4
  # Pixels outside [0, 1] (raw samples) are clipped before the channel totals.
  assert cd.read_colour(np.where(img[:1] == 0, -5.0, img[:1]))[0] == 2


def test_registered_like_the_digits_without_tfds(monkeypatch):
  monkeypatch.setattr(sources, "open_tfds", lambda *a, **k: pytest.fail("read TFDS"))
  spec = data.DataSpec("colour_digits", centered=True)
  assert data.data_shape(spec) == (8, 8, 3) and spec.nsfg_criterion() == (cd.NSFG_COMBOS, "")
  assert datasets.get_dataset("colour_digits").num_classes == 70
  unseen, none = data.make_train_streams(spec, regime="unseen", batch_size=64, seed=0)
  assert none is None
  main, nsfg = data.make_train_streams(spec, regime="msgm", batch_size=64, seed=0)
  for k in range(3):
    b = unseen.batch(k)
    assert b["image"].shape == (64, 8, 8, 3) and b["image"].min() >= -1.0
    assert not np.isin(b["label"], cd.NSFG_COMBOS).any()
    assert np.isin(nsfg.batch(k)["label"], cd.NSFG_COMBOS).all()
  test_nsfg = data.make_eval_source(spec, "test", "nsfg")
  assert len(test_nsfg) == 297 and np.isin(test_nsfg.labels(), cd.NSFG_COMBOS).all()
  assert len(data.make_eval_source(spec, "test", "sfg")) == 6 * 297


def test_another_nsfg_set_through_the_config():
  """'Blue sevens' alone: data.nsfg_classes takes any combination ids."""
  spec = data.DataSpec("colour_digits", nsfg_classes=(cd.combo(7, cd.colour_index("blue")),))
  src = data.make_eval_source(spec, "test", "nsfg")
  assert len(src) == np.sum(datasets.load_digits("test").labels() == 7)
  assert all(src[i]["image"][..., :2].max() == 0 for i in range(len(src)))
