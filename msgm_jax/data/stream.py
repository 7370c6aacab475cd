"""Deterministic, resumable, per-process batch streams with background prefetch.

The global batch at position k is a pure function of (seed, stream tag, k):
  epoch e = k // S, step j = k % S, S = N // B (drop remainder: every batch is full);
  rows = perm_e[j B : (j + 1) B] with perm_e a permutation of the stream's N indices drawn
  from numpy's PCG64 seeded by (seed, tag, e). Flips and dequantisation noise are seeded by
  (seed, tag, k), so resuming needs only the number of batches consumed.
With process_count P, process p receives rows [p B/P, (p + 1) B/P) of every global batch.
Two streams with different tags (SFG and NSFG) have independent orders and epoch counters.
"""

import queue
import threading
from typing import Callable, Dict, Optional

import numpy as np

from msgm_jax.data import transforms
from msgm_jax.data.mixture import GaussianMixture
from msgm_jax.data.sources import Source

# Stream tags and purposes, mixed into the seed so every random draw has its own stream.
MAIN_TAG, NSFG_TAG = 0, 1
_PERM, _FLIP, _DEQUANT, _SAMPLE = 0, 1, 2, 3

Batch = Dict[str, np.ndarray]


def rng_for(seed: int, *path: int) -> np.random.Generator:
  """A numpy Generator that is a pure function of (seed, *path); all must be ints >= 0."""
  if not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"data seed must be a non-negative int; got {seed!r}")
  return np.random.default_rng([int(seed), *map(int, path)])


def local_rows(global_batch: int, process_index: int, process_count: int) -> slice:
  """Rows [p B/P, (p + 1) B/P) of a global batch of B that process p of P receives."""
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"need 0 <= process_index < process_count; got {process_index}, "
                     f"{process_count}")
  if global_batch % process_count:
    raise ValueError(
        f"global batch size {global_batch} is not divisible by process_count {process_count}; "
        f"use a batch size that is a multiple of {process_count} (e.g. "
        f"{(global_batch // process_count + 1) * process_count})")
  b = global_batch // process_count
  return slice(process_index * b, (process_index + 1) * b)


class Stream:
  """Base: global batch k -> this process's rows. Subclasses implement `batch(k)`."""

  def __init__(self, batch_size: int, seed: int, tag: int, process_index: int,
               process_count: int, start_position: int):
    if batch_size < 1:
      raise ValueError(f"batch size must be positive; got {batch_size}")
    rng_for(seed)  # validates the seed early
    self.global_batch_size = batch_size
    self.rows = local_rows(batch_size, process_index, process_count)
    self.local_batch_size = self.rows.stop - self.rows.start
    self.seed, self.tag, self.start_position = seed, tag, start_position

  def batch(self, k: int) -> Batch:
    """{'image': float32 [B_local, *data_shape], 'label': int32 [B_local]} at position k."""
    raise NotImplementedError

  def iterator(self, start: Optional[int] = None, prefetch: int = 2) -> "BatchIterator":
    """Batches start, start + 1, ... (default: start_position), prefetched in a thread."""
    return BatchIterator(self.batch, self.start_position if start is None else start, prefetch)

  def __iter__(self) -> "BatchIterator":
    return self.iterator()


class IndexStream(Stream):
  """Epoch-permuted batches of `indices` into an image Source, transformed to model space.

  preprocess: uint8 [H, W, C] -> uint8 [h, w, c] (crop / resize). Then optional random
  horizontal flip, then x / 255 (or dequantised (x + u) / 256), then `scaler` ([-1, 1] if
  centred).
  """

  def __init__(self, source: Source, indices: np.ndarray, *, batch_size: int, seed: int,
               tag: int = MAIN_TAG, preprocess: Callable = lambda im: im,
               random_flip: bool = False, uniform_dequantization: bool = False,
               scaler: Callable = lambda x: x, process_index: int = 0,
               process_count: int = 1, start_position: int = 0):
    super().__init__(batch_size, seed, tag, process_index, process_count, start_position)
    self.source, self.indices = source, np.asarray(indices, dtype=np.int64)
    self.steps_per_epoch = len(self.indices) // batch_size
    if self.steps_per_epoch == 0:
      raise ValueError(f"{len(self.indices)} examples cannot fill one batch of {batch_size}; "
                       "use a smaller batch size")
    self.preprocess, self.random_flip = preprocess, random_flip
    self.uniform_dequantization, self.scaler = uniform_dequantization, scaler
    self._perms: Dict[int, np.ndarray] = {}
    self._lock = threading.Lock()

  def permutation(self, epoch: int) -> np.ndarray:
    """perm_e: a permutation of range(N) drawn from (seed, tag, epoch); the last two are cached."""
    with self._lock:
      if epoch not in self._perms:
        if len(self._perms) >= 2:
          self._perms.pop(min(self._perms))
        self._perms[epoch] = rng_for(self.seed, self.tag, _PERM, epoch).permutation(
            len(self.indices))
      return self._perms[epoch]

  def global_indices(self, k: int) -> np.ndarray:
    """Source indices of the whole global batch at position k: int64 [B]."""
    epoch, step = divmod(int(k), self.steps_per_epoch)
    b = self.global_batch_size
    return self.indices[self.permutation(epoch)[step * b:(step + 1) * b]]

  def batch(self, k: int) -> Batch:
    idx = self.global_indices(k)[self.rows]
    examples = [self.source[int(i)] for i in idx]
    images = np.stack([self.preprocess(np.asarray(ex["image"])) for ex in examples])
    labels = np.array([ex["label"] for ex in examples], dtype=np.int32)
    if self.random_flip:
      flips = rng_for(self.seed, self.tag, _FLIP, k).random(self.global_batch_size) < 0.5
      images = transforms.flip_left_right(images, flips[self.rows])
    if self.uniform_dequantization:  # per-row generators: shards never draw other rows' noise
      x = np.stack([transforms.dequantize(im, rng_for(self.seed, self.tag, _DEQUANT, k, row))
                    for row, im in zip(range(self.rows.start, self.rows.stop), images)])
    else:
      x = transforms.to_unit_interval(images)
    return {"image": np.asarray(self.scaler(x), dtype=np.float32), "label": labels}


class MixtureStream(Stream):
  """An endless stream of points from a Gaussian mixture restricted to `components`.

  Global batch k is sampled from a Generator seeded by (seed, tag, k); labels are the original
  component indices. data: float32 [B_local, D] under key 'image' (so loops stay generic).
  """

  def __init__(self, mixture: GaussianMixture, components, *, batch_size: int, seed: int,
               tag: int = MAIN_TAG, process_index: int = 0, process_count: int = 1,
               start_position: int = 0):
    super().__init__(batch_size, seed, tag, process_index, process_count, start_position)
    self.components = np.asarray(components, dtype=np.int64)
    self.mixture = mixture.restrict(self.components)

  def batch(self, k: int) -> Batch:
    x, c = self.mixture.sample(rng_for(self.seed, self.tag, _SAMPLE, k), self.global_batch_size)
    return {"image": x[self.rows].astype(np.float32),
            "label": self.components[c[self.rows]].astype(np.int32)}


def _produce(batch_fn: Callable[[int], Batch], k: int, out: queue.Queue,
             stop: threading.Event) -> None:
  """Prefetch loop: puts batch_fn(k), batch_fn(k + 1), ... (or the first error) into `out`."""
  while not stop.is_set():
    try:
      item = batch_fn(k)
    except BaseException as e:  # pylint: disable=broad-except  (handed to the consumer)
      item = e
    while not stop.is_set():
      try:
        out.put(item, timeout=0.05)
        break
      except queue.Full:
        continue
    if isinstance(item, BaseException):
      return
    k += 1


class BatchIterator:
  """Endless iterator over batch_fn(start), batch_fn(start + 1), ... with thread prefetch.

  `position` counts batches consumed (the next batch's global position), so a checkpoint
  stores it and a new iterator started there continues identically. prefetch = 0 computes
  batches in the caller's thread. Call `close()` (or use `with`) to stop the thread; an error
  in the thread is re-raised by `next`.
  """

  def __init__(self, batch_fn: Callable[[int], Batch], start: int = 0, prefetch: int = 2):
    if start < 0:
      raise ValueError(f"start position must be >= 0; got {start}")
    self._batch_fn, self.position = batch_fn, int(start)
    self._stop = threading.Event()
    self._queue: queue.Queue = queue.Queue(maxsize=max(prefetch, 1))
    self._thread = None
    if prefetch > 0:
      # The thread must not reference self, so that dropping the iterator runs __del__.
      self._thread = threading.Thread(
          target=_produce, args=(batch_fn, self.position, self._queue, self._stop),
          daemon=True, name="msgm-data-prefetch")
      self._thread.start()

  def __iter__(self) -> "BatchIterator":
    return self

  def __next__(self) -> Batch:
    if self._stop.is_set():
      raise RuntimeError("BatchIterator is closed")
    if self._thread is None:
      item = self._batch_fn(self.position)
    else:
      item = self._queue.get()
      if isinstance(item, BaseException):
        self.close()
        raise item
    self.position += 1
    return item

  def close(self) -> None:
    """Stops and joins the prefetch thread; idempotent."""
    self._stop.set()
    if self._thread is not None:
      while True:  # unblock a producer waiting on a full queue
        try:
          self._queue.get_nowait()
        except queue.Empty:
          break
      self._thread.join()

  def __enter__(self) -> "BatchIterator":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def __del__(self):
    if getattr(self, "_thread", None) is not None and not self._stop.is_set():
      self.close()
