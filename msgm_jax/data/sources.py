"""Random-access example sources: in-memory arrays and TFDS ArrayRecord datasets (no TensorFlow).

A `Source` is `len(src)` plus `src[i] -> {'image': uint8 [H, W, C], 'label': int}`, with
`labels() -> int64 [N]` and `attribute(name) -> bool [N]` for splitting without a Python loop
over decoded images. TFDS datasets are read with `tfds.data_source(..., download=False)` so a
missing dataset fails in about a second (with download allowed and no network, TFDS retries
for minutes).
"""

import hashlib
import logging
import os
from typing import Callable, Dict, Optional, Protocol, runtime_checkable

import numpy as np


class DatasetNotPrepared(ValueError):
  """A TFDS dataset is absent (or not in ArrayRecord format) under the given data_dir."""


@runtime_checkable
class Source(Protocol):
  """Random access to examples. `__getitem__` returns at least 'image' and 'label'."""

  def __len__(self) -> int:
    ...

  def __getitem__(self, i: int) -> dict:
    ...

  def labels(self) -> np.ndarray:
    """Class labels of all examples: int64 [N]."""
    ...

  def attribute(self, name: str) -> np.ndarray:
    """A named binary attribute of all examples (e.g. CelebA 'Bangs'): bool [N]."""
    ...


class ArraySource:
  """A Source over in-memory arrays.

  images: [N, ...] (uint8 [N, H, W, C] for image data, float [N, D] for points);
  labels: int [N]; attributes: optional name -> bool [N].
  """

  def __init__(self, images: np.ndarray, labels: np.ndarray,
               attributes: Optional[Dict[str, np.ndarray]] = None):
    if len(images) != len(labels):
      raise ValueError(f"{len(images)} images but {len(labels)} labels")
    self.images = images
    self._labels = np.asarray(labels, dtype=np.int64)
    self._attributes = dict(attributes or {})

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, i: int) -> dict:
    return {"image": self.images[i], "label": int(self._labels[i])}

  def labels(self) -> np.ndarray:
    return self._labels

  def attribute(self, name: str) -> np.ndarray:
    if name not in self._attributes:
      raise ValueError(f"unknown attribute {name!r}; this source has: "
                       f"{', '.join(sorted(self._attributes)) or 'none'}")
    return np.asarray(self._attributes[name], dtype=bool)


def prepare_command(tfds_name: str, data_dir: str) -> str:
  where = f" --data_dir={data_dir}" if data_dir else ""
  return f"python -m msgm_jax.data.prepare --dataset={tfds_name}{where}"


def open_tfds(tfds_name: str, split: str, data_dir: str, decoders=None):
  """`tfds.data_source(..., download=False)`; a missing dataset -> one-line DatasetNotPrepared."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  kwargs = dict(split=split, data_dir=data_dir or None, download=False, decoders=decoders)
  try:
    return tfds.data_source(tfds_name, **kwargs)
  except Exception as e:  # TFDS raises several types here (NotImplementedError, ...)
    builder = tfds.builder(tfds_name, data_dir=data_dir or None)
    where = data_dir or "the TFDS default data_dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
    if not builder.is_prepared():
      raise DatasetNotPrepared(
          f"dataset {tfds_name!r} is not prepared under {where}; on a machine with network "
          f"run: {prepare_command(tfds_name, data_dir)}") from None
    if "TFRECORD" in str(e):
      raise DatasetNotPrepared(
          f"dataset {tfds_name!r} under {where} is in TFRecord format but random access needs "
          f"ArrayRecord; prepare it into another data_dir with: "
          f"{prepare_command(tfds_name, '<new_dir>')}") from None
    raise


class TfdsSource:
  """A Source over a prepared TFDS ArrayRecord split.

  image_key/label_key name the features ('label' None -> every label is 0, e.g. CelebA).
  attributes_key names a dict feature of booleans (CelebA 'attributes'). cache_dir (optional)
  holds .npy caches of label/attribute columns: reading a column decodes every record once
  (O(N); images are skipped where TFDS allows), so it is worth keeping between runs.
  """

  def __init__(self, tfds_name: str, split: str, data_dir: str = "", *, label_key="label",
               attributes_key: Optional[str] = None, cache_dir: Optional[str] = None):
    self.tfds_name, self.split, self.data_dir = tfds_name, split, data_dir
    self.label_key, self.attributes_key, self.cache_dir = label_key, attributes_key, cache_dir
    self._ds = open_tfds(tfds_name, split, data_dir)
    self._columns: Dict[str, np.ndarray] = {}

  def __len__(self) -> int:
    return len(self._ds)

  def __getitem__(self, i: int) -> dict:
    ex = self._ds[int(i)]
    label = int(ex[self.label_key]) if self.label_key else 0
    return {"image": np.asarray(ex["image"]), "label": label}

  def labels(self) -> np.ndarray:
    if not self.label_key:
      return np.zeros(len(self), np.int64)
    return self._column(self.label_key, lambda ex: ex[self.label_key], np.int64)

  def attribute(self, name: str) -> np.ndarray:
    if not self.attributes_key:
      raise ValueError(f"dataset {self.tfds_name!r} has no attributes (asked for {name!r})")
    key = self.attributes_key
    known = self._ds.dataset_info.features[key].keys()
    if name not in known:
      raise ValueError(f"unknown attribute {name!r}; valid names: {', '.join(sorted(known))}")
    return self._column(f"{key}.{name}", lambda ex: ex[key][name], bool)

  def _column(self, column: str, get: Callable[[dict], object], dtype) -> np.ndarray:
    """One field of every record as an array [N], from memory, the .npy cache, or a scan."""
    if column in self._columns:
      return self._columns[column]
    path = self._cache_path(column)
    values = None
    if path and os.path.exists(path):
      values = np.load(path)
      if values.shape != (len(self),):
        logging.warning("ignoring stale label cache %s (shape %s)", path, values.shape)
        values = None
    if values is None:
      values = np.fromiter((get(ex) for ex in self._scan()), dtype=dtype, count=len(self))
      if path:
        _save_atomic(path, values)
    self._columns[column] = values
    return values

  def _scan(self):
    """Yields every record, skipping image decoding when possible (about 3x faster)."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    fast = open_tfds(self.tfds_name, self.split, self.data_dir,
                     decoders={"image": tfds.decode.SkipDecoding()})
    try:
      first = fast[0] if len(fast) else None
    except ImportError:  # tfds.testing.mock_data re-encodes images, which needs TensorFlow
      fast, first = self._ds, None
    for i in range(len(fast)):
      yield first if (i == 0 and first is not None) else fast[i]

  def _cache_path(self, column: str) -> Optional[str]:
    if not self.cache_dir:
      return None
    info = self._ds.dataset_info
    where = hashlib.sha1(str(info.data_dir).encode()).hexdigest()[:10]
    split = "".join(c if c.isalnum() else "_" for c in self.split)
    name = f"{info.name}-{info.version}-{split}-{column}-{where}.npy"
    return os.path.join(self.cache_dir, name)


def _save_atomic(path: str, values: np.ndarray) -> None:
  """np.save to a temporary name then rename, so concurrent processes never read half a file."""
  try:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npy"
    np.save(tmp, values)
    os.replace(tmp, path)
  except OSError as e:  # a read-only cache must not stop training
    logging.warning("could not write label cache %s: %s", path, e)
