"""Tests for msgm_jax/data/stream.py: determinism, resumption, sharding, prefetch."""

import threading

import numpy as np
import pytest

from msgm_jax.data import stream as stream_lib
from msgm_jax.data.mixture import TOY2D_MIXTURE
from msgm_jax.data.sources import ArraySource
from msgm_jax.data.testing import coded_examples, decode_example

N = 50  # examples; with B = 8 an epoch is 6 full batches (2 examples dropped)


@pytest.fixture(scope="module")
def source():
  examples = coded_examples(N, (4, 5, 1))
  return ArraySource(np.stack([e["image"] for e in examples]), [e["label"] for e in examples])


def _stream(source, **kw):
  args = dict(batch_size=8, seed=0)
  args.update(kw)
  return stream_lib.IndexStream(source, np.arange(N), **args)


def _ids(batch):
  return [decode_example(im)[0] for im in batch["image"]]


def test_batch_layout_and_labels(source):
  b = _stream(source).batch(0)
  assert b["image"].shape == (8, 4, 5, 1) and b["image"].dtype == np.float32
  assert b["label"].dtype == np.int32
  assert [i % 10 for i in _ids(b)] == list(b["label"])


def test_same_seed_and_position_give_the_same_batch(source):
  a, b = _stream(source), _stream(source)
  for k in (0, 3, 17):
    np.testing.assert_array_equal(a.batch(k)["image"], b.batch(k)["image"])


def test_different_seeds_differ(source):
  assert _ids(_stream(source, seed=0).batch(0)) != _ids(_stream(source, seed=1).batch(0))


def test_epochs_are_full_disjoint_batches_in_new_orders(source):
  s = _stream(source)
  assert s.steps_per_epoch == N // 8
  epochs = [np.concatenate([s.global_indices(e * 6 + j) for j in range(6)]) for e in range(3)]
  for ids in epochs:
    assert len(ids) == 48 and len(set(ids.tolist())) == 48
  assert not np.array_equal(epochs[0], epochs[1])


def test_shards_tile_the_global_batch(source):
  full = _stream(source).batch(5)
  for p_count in (2, 4):
    parts = [_stream(source, process_index=p, process_count=p_count).batch(5)
             for p in range(p_count)]
    for key in ("image", "label"):
      np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), full[key])


def test_indivisible_batch_names_the_fix(source):
  with pytest.raises(ValueError, match="multiple of 3"):
    _stream(source, process_count=3, process_index=0)


def test_too_small_dataset_raises(source):
  with pytest.raises(ValueError, match="smaller batch"):
    _stream(source, batch_size=64)


def test_negative_seed_raises(source):
  with pytest.raises(ValueError, match="non-negative"):
    _stream(source, seed=-1)


def test_flip_only_when_asked_and_exact_mirror(source):
  # Coded images are constant except row 0, so use a ramp source to see mirroring.
  images = np.stack([np.arange(20, dtype=np.uint8).reshape(4, 5, 1) + i for i in range(N)])
  src = ArraySource(images, np.zeros(N))
  plain, flipped = _stream(src), _stream(src, random_flip=True)
  assert not _stream(src).random_flip
  n_flipped = 0
  for k in range(4):
    a, b = plain.batch(k)["image"], flipped.batch(k)["image"]
    for x, y in zip(a, b):
      mirrored = np.array_equal(y, x[:, ::-1])
      assert mirrored or np.array_equal(y, x)
      n_flipped += mirrored
  assert 0 < n_flipped < 32
  np.testing.assert_array_equal(flipped.batch(2)["image"], flipped.batch(2)["image"])


def test_dequantized_stream_is_deterministic_and_sharded(source):
  full = _stream(source, uniform_dequantization=True).batch(1)["image"]
  half = _stream(source, uniform_dequantization=True, process_index=1, process_count=2)
  np.testing.assert_array_equal(half.batch(1)["image"], full[4:])
  plain = _stream(source).batch(1)["image"] * 255.0 / 256.0
  assert ((full >= plain - 1e-6) & (full < plain + 1 / 256.0)).all()


def test_iterator_resumes_exactly(source):
  s = _stream(source)
  with s.iterator(start=0) as it:
    straight = [next(it)["image"] for _ in range(9)]
    assert it.position == 9
  with s.iterator(start=4) as it:
    resumed = [next(it)["image"] for _ in range(5)]
  for a, b in zip(straight[4:], resumed):
    np.testing.assert_array_equal(a, b)


def test_iterator_without_prefetch_matches_and_default_start(source):
  s = _stream(source, start_position=3)
  with s.iterator(prefetch=0) as a, iter(s) as b:
    for _ in range(3):
      np.testing.assert_array_equal(next(a)["image"], next(b)["image"])
    assert a.position == b.position == 6


def test_iterator_closes_its_thread_and_reraises_errors():
  def fails_at_two(k):
    if k == 2:
      raise KeyError("boom")
    return {"k": k}

  it = stream_lib.BatchIterator(fails_at_two, start=0, prefetch=2)
  assert next(it)["k"] == 0 and next(it)["k"] == 1
  with pytest.raises(KeyError, match="boom"):
    next(it)
  assert not it._thread.is_alive()  # pylint: disable=protected-access
  ok = stream_lib.BatchIterator(lambda k: {"k": k}, prefetch=2)
  next(ok)
  ok.close()
  ok.close()
  assert not ok._thread.is_alive()  # pylint: disable=protected-access
  with pytest.raises(RuntimeError, match="closed"):
    next(ok)


def test_dropped_iterator_stops_its_thread():
  before = threading.active_count()
  it = stream_lib.BatchIterator(lambda k: {"k": k}, prefetch=2)
  next(it)
  del it
  assert threading.active_count() == before


def test_mixture_stream_is_deterministic_sharded_and_restricted():
  mk = lambda **kw: stream_lib.MixtureStream(TOY2D_MIXTURE, [0, 1], batch_size=16, seed=7, **kw)
  full = mk().batch(3)
  assert full["image"].shape == (16, 2) and full["image"].dtype == np.float32
  assert set(full["label"].tolist()) <= {0, 1}
  np.testing.assert_array_equal(mk().batch(3)["image"], full["image"])
  parts = [mk(process_index=p, process_count=4).batch(3) for p in range(4)]
  np.testing.assert_array_equal(np.concatenate([p["image"] for p in parts]), full["image"])
  assert not np.array_equal(mk().batch(4)["image"], full["image"])
  nsfg = stream_lib.MixtureStream(TOY2D_MIXTURE, [2], batch_size=16, seed=7)
  assert (nsfg.batch(0)["label"] == 2).all()
