"""Tests for msgm_jax/data/pipeline.py and prepare.py: the entry points train.py calls."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from msgm_jax import data
from msgm_jax.config import presets
from msgm_jax.data import prepare
from msgm_jax.data.testing import build_local_tfds, coded_examples, decode_example


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """A real ArrayRecord 'cifar10': 60 train (6 per class), 20 test."""
  d = str(tmp_path_factory.mktemp("tfds"))
  ex = coded_examples(80, (32, 32, 3))
  build_local_tfds("cifar10", d, {"train": ex[:60], "test": ex[60:]})
  return d


def _cifar(data_dir, **kw):
  return data.DataSpec("CIFAR10", data_dir=data_dir, **kw)


def _ids_and_labels(spec, batch):
  images = data.get_inverse_scaler(spec)(batch["image"])
  return [decode_example(im) for im in images]


def test_from_config_reads_the_data_section(monkeypatch, tmp_path):
  monkeypatch.setenv("MSGM_JAX_CACHE", str(tmp_path))
  spec = data.DataSpec.from_config(presets.base().data)
  assert spec.dataset == "cifar10" and spec.nsfg_classes == (1, 5) and spec.random_flip
  assert spec.cache_dir == str(tmp_path) and spec.image_size == 32 and not spec.centered
  assert data.DataSpec.from_config(presets.vp(presets.base()).data).centered


def test_from_config_toy_mixture():
  cfg = presets.base().data
  cfg.dataset, cfg.nsfg_classes = "toy2d", (1,)
  cfg.toy_means, cfg.toy_stds, cfg.toy_weights = [[0.0, 0.0], [3.0, 0.0]], [1.0, 0.2], [1, 1]
  spec = data.DataSpec.from_config(cfg)
  assert spec.toy_mixture().num_components == 2
  _, nsfg = data.make_train_streams(spec, regime="msgm", batch_size=4, seed=0)
  assert (nsfg.batch(0)["label"] == 1).all()


def test_unknown_dataset_and_channel_mismatch():
  with pytest.raises(ValueError, match="valid names: celeba, cifar10, colourdigits, digits"):
    data.DataSpec("svhn")
  with pytest.raises(ValueError, match="num_channels = 1"):
    data.DataSpec("MNIST", num_channels=3)


@pytest.mark.parametrize("spec, shape", [
    (data.DataSpec("toy2d"), (2,)), (data.DataSpec("digits"), (8, 8, 1)),
    (data.DataSpec("colour_digits"), (8, 8, 3)),
    (data.DataSpec("digits", image_size=16), (16, 16, 1)),
    (data.DataSpec("CELEBA", image_size=64), (64, 64, 3)), (data.DataSpec("CELEBA"), (140, 140, 3)),
    (data.DataSpec("STL10", image_size=64), (64, 64, 3)), (data.DataSpec("MNIST"), (28, 28, 1))])
def test_data_shape(spec, shape):
  assert data.data_shape(spec) == shape


def test_regimes_on_a_real_arrayrecord_dataset(data_dir):
  spec = _cifar(data_dir)
  std, none = data.make_train_streams(spec, regime="standard", batch_size=10, seed=0)
  assert none is None and std.steps_per_epoch == 6
  seen = {i for k in range(6) for i, _ in _ids_and_labels(spec, std.batch(k))}
  assert seen == set(range(60))
  unseen, none = data.make_train_streams(spec, regime="unseen", batch_size=8, seed=0)
  assert none is None
  assert all(l not in (1, 5) for k in range(6) for _, l in _ids_and_labels(spec, unseen.batch(k)))
  sfg, nsfg = data.make_train_streams(spec, regime="msgm", batch_size=8, nsfg_batch_size=4, seed=0)
  assert nsfg.global_batch_size == 4 and len(nsfg.indices) == 12 and len(sfg.indices) == 48
  labels = [l for k in range(6) for _, l in _ids_and_labels(spec, nsfg.batch(k))]
  assert set(labels) == {1, 5}
  assert all((b["label"] == [l for _, l in _ids_and_labels(spec, b)]).all()
             for b in (sfg.batch(0), nsfg.batch(0)))


def test_nsfg_stream_cycles_independently(data_dir):
  sfg, nsfg = data.make_train_streams(_cifar(data_dir), regime="msgm", batch_size=8,
                                      nsfg_batch_size=4, seed=3)
  assert (sfg.steps_per_epoch, nsfg.steps_per_epoch) == (6, 3)
  # Positions 0..5 are one SFG epoch but two NSFG epochs, each a permutation of the NSFG set.
  first = np.concatenate([nsfg.global_indices(k) for k in range(3)])
  second = np.concatenate([nsfg.global_indices(k) for k in range(3, 6)])
  np.testing.assert_array_equal(np.sort(first), np.sort(nsfg.indices))
  np.testing.assert_array_equal(np.sort(second), np.sort(nsfg.indices))
  assert not np.array_equal(first, second)
  sfg_epoch = np.concatenate([sfg.global_indices(k) for k in range(6)])
  np.testing.assert_array_equal(np.sort(sfg_epoch), np.sort(sfg.indices))


def test_resume_and_shards_through_the_factory(data_dir):
  spec = _cifar(data_dir, random_flip=True, centered=True)
  make = lambda **kw: data.make_train_streams(spec, regime="msgm", batch_size=8, seed=1, **kw)
  full, full_u = make()
  resumed, resumed_u = make(start_position=4, nsfg_start_position=2)
  with resumed.iterator() as it, resumed_u.iterator() as it_u:
    np.testing.assert_array_equal(next(it)["image"], full.batch(4)["image"])
    np.testing.assert_array_equal(next(it_u)["image"], full_u.batch(2)["image"])
  shards = [make(process_index=p, process_count=2)[0].batch(4) for p in range(2)]
  np.testing.assert_array_equal(np.concatenate([s["image"] for s in shards]),
                                full.batch(4)["image"])
  with pytest.raises(ValueError, match="multiple of 3"):
    make(process_count=3)


@pytest.mark.parametrize("centered, lo, hi", [(True, -1.0, 1.0), (False, 0.0, 1.0)])
def test_scaling_ranges(centered, lo, hi):
  spec = data.DataSpec("digits", centered=centered)
  x = data.make_train_streams(spec, regime="standard", batch_size=64, seed=0)[0].batch(0)["image"]
  assert x.min() == lo and x.max() == hi
  np.testing.assert_allclose(data.get_inverse_scaler(spec)(data.get_scaler(spec)(0.25)), 0.25)


def test_mock_cifar10_msgm_streams():
  with tfds.testing.mock_data(num_examples=40):
    spec = data.DataSpec("cifar10", random_flip=True)
    sfg, nsfg = data.make_train_streams(spec, regime="msgm", batch_size=2, seed=0)
    assert sfg.batch(0)["image"].shape == (2, 32, 32, 3)
    assert not np.isin(sfg.batch(1)["label"], [1, 5]).any()
    assert np.isin(nsfg.batch(1)["label"], [1, 5]).all()


def test_toy2d_regimes():
  spec = data.DataSpec("TOY2D", nsfg_classes=(2,))
  std, _ = data.make_train_streams(spec, regime="standard", batch_size=300, seed=0)
  assert set(std.batch(0)["label"].tolist()) == {0, 1, 2}
  unseen, _ = data.make_train_streams(spec, regime="unseen", batch_size=300, seed=0)
  assert set(unseen.batch(0)["label"].tolist()) == {0, 1}
  sfg, nsfg = data.make_train_streams(spec, regime="msgm", batch_size=300, seed=0)
  assert set(nsfg.batch(0)["label"].tolist()) == {2}
  with pytest.raises(ValueError, match="data.nsfg_classes"):
    data.make_train_streams(data.DataSpec("toy2d", nsfg_classes=(1, 5)), regime="msgm",
                            batch_size=4, seed=0)


def test_eval_source_subsets_and_padded_batches(data_dir):
  spec = _cifar(data_dir)
  for subset, n in (("all", 20), ("sfg", 16), ("nsfg", 4)):
    src = data.make_eval_source(spec, "test", subset)
    assert len(src) == n
    assert all(decode_example(src[i]["image"])[1] == src.labels()[i] for i in range(n))
  src = data.make_eval_source(spec, "test", "sfg")
  batches = list(data.eval_batches(src, 6))
  assert [b["mask"].sum() for b in batches] == [6, 6, 4]
  assert batches[0]["image"].dtype == np.uint8 and batches[-1]["image"].shape == (6, 32, 32, 3)
  halves = [list(data.eval_batches(src, 6, process_index=p, process_count=2)) for p in range(2)]
  for b, h0, h1 in zip(batches, *halves):
    np.testing.assert_array_equal(np.concatenate([h0["mask"], h1["mask"]]), b["mask"])
  with pytest.raises(ValueError, match="subset"):
    data.make_eval_source(spec, "test", "safe")


def test_model_inputs_dequantize_explicitly():
  spec = data.DataSpec("digits", centered=True, uniform_dequantization=True)
  images = next(data.eval_batches(data.make_eval_source(spec, "test"), 8))["image"]
  with pytest.raises(ValueError, match="rng"):
    data.model_inputs(spec, images)
  x = data.model_inputs(spec, images, np.random.default_rng(0))
  assert x.dtype == np.float32 and -1.0 <= x.min() and x.max() < 1.0
  plain = data.model_inputs(data.DataSpec("digits"), images)
  assert plain.min() == 0.0 and plain.max() == 1.0


def test_toy_eval_source_is_fixed_per_split():
  spec = data.DataSpec("toy2d", nsfg_classes=(2,), toy_eval_size=100)
  a, b = data.make_eval_source(spec, "test", "nsfg"), data.make_eval_source(spec, "test", "nsfg")
  np.testing.assert_array_equal(a.images, b.images)
  assert a.images.shape == (100, 2) and (a.labels() == 2).all()
  assert not np.array_equal(data.make_eval_source(spec, "train", "nsfg").images, a.images)


def test_celeba_uses_its_attribute_whatever_the_classes(tmp_path):
  faces = [{"image": np.full((218, 178, 3), i, np.uint8), "attributes": {"Bangs": i < 3}}
           for i in range(8)]
  build_local_tfds("celeb_a", str(tmp_path), {"train": faces})
  spec = data.DataSpec("CELEBA", data_dir=str(tmp_path), image_size=64, nsfg_classes=(1, 5))
  assert spec.nsfg_criterion() == ((), "Bangs")
  sfg, nsfg = data.make_train_streams(spec, regime="msgm", batch_size=2, seed=0)
  assert nsfg.batch(0)["image"].shape == (2, 64, 64, 3)
  assert sorted(nsfg.indices.tolist()) == sorted(
      i for i in range(8) if nsfg.source[i]["image"][0, 0, 0] < 3)


def test_prepare_builds_arrayrecord(monkeypatch):
  calls = []

  class FakeBuilder:
    data_path = "/x/cifar10/3.0.2"

    def download_and_prepare(self, **kw):
      calls.append(kw)

  monkeypatch.setattr(tfds, "builder", lambda name, data_dir: calls.append((name, data_dir))
                      or FakeBuilder())
  prepare.main(["--dataset=CIFAR10", "--data_dir=/x"])
  assert calls == [("cifar10", "/x"), {"file_format": "array_record"}]
  with pytest.raises(SystemExit, match="embedded"):
    prepare.main(["--dataset=digits"])
