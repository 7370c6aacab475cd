"""Reads a PyTorch `torch.save` state dict into numpy without torch and without running code.

A `.pth` file is a pickle, and unpickling can call any importable function. This reader's
unpickler resolves only the handful of globals that a saved state dict of tensors names
(collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter and the typed
storage classes such as torch.FloatStorage) to local stand-ins that build numpy arrays; any
other global makes it raise `UnsafePickle` before anything is called. Storages are only
accepted as pickle persistent ids, and every tensor view is bounds-checked against its storage.

Whole training checkpoints read too (score_sde_pytorch's {'optimizer', 'model', 'ema', 'step'}):
their nested dicts, lists, tuples, ints, floats, strings, bools and None are pickle primitives
that name no global (tests/training/test_import_checkpoint.py reads one that torch saved).

Both of torch's formats are read: the zip archive (torch >= 1.6: `<name>/data.pkl` plus one
record `<name>/data/<key>` per storage) and the legacy stream (magic number, protocol version,
system info, the object pickle, the list of storage keys, then each storage as an int64 element
count followed by its bytes).
"""

import collections
import io
import pickle
import zipfile
from typing import Any, Dict, NamedTuple, Tuple

import ml_dtypes
import numpy as np

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafePickle(ValueError):
  """The file is not a plain torch state dict (it names other globals or is malformed)."""


class _StorageType(NamedTuple):
  dtype: Any


class _Storage:
  """One storage: `dtype`, `numel`, and `data` (a 1-D array) once its bytes are read."""

  def __init__(self, dtype, numel: int):
    self.dtype, self.numel, self.data = np.dtype(dtype), numel, None


class _TensorRef(NamedTuple):
  """A tensor as (storage, offset, size, stride) in elements; materialised after loading,
  because the legacy format stores the bytes after the pickle."""

  storage: _Storage
  offset: int
  size: Tuple[int, ...]
  stride: Tuple[int, ...]


def _ints(value, what: str) -> Tuple[int, ...]:
  if not isinstance(value, (tuple, list)) or not all(type(v) is int for v in value):
    raise UnsafePickle(f"tensor {what} must be a tuple of ints, got {value!r}")
  return tuple(value)


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None,
                       metadata=None):
  """Stand-in for torch._utils._rebuild_tensor_v2: records the view, calls nothing."""
  del requires_grad, hooks, metadata
  if not isinstance(storage, _Storage) or type(offset) is not int:
    raise UnsafePickle("a tensor must be rebuilt from a storage and an int offset")
  return _TensorRef(storage, offset, _ints(size, "size"), _ints(stride, "stride"))


def _rebuild_parameter(data, requires_grad=False, hooks=None):
  """Stand-in for torch._utils._rebuild_parameter (an nn.Parameter is its tensor here)."""
  del requires_grad, hooks
  if not isinstance(data, _TensorRef):
    raise UnsafePickle("a parameter must wrap a tensor")
  return data


_GLOBALS = {("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter}
_GLOBALS.update({("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()})


class _Unpickler(pickle.Unpickler):
  """Resolves only _GLOBALS; storages come from persistent ids ('storage', type, key, ...)."""

  def __init__(self, file):
    super().__init__(file)
    self.storages: Dict[str, _Storage] = {}

  def find_class(self, module, name):
    try:
      return _GLOBALS[(module, name)]
    except KeyError:
      raise UnsafePickle(f"refusing to load global {module}.{name}: a torch state dict names "
                         "only tensors and storages") from None

  def persistent_load(self, pid):
    # zip: (tag, type, key, location, numel); legacy adds a view field (None since torch 0.4).
    if (not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage"
        or not isinstance(pid[1], _StorageType) or type(pid[4]) is not int or pid[4] < 0
        or (len(pid) == 6 and pid[5] is not None)):
      raise UnsafePickle(f"unexpected persistent id {pid!r}")
    key = str(pid[2])
    if key not in self.storages:
      self.storages[key] = _Storage(pid[1].dtype, pid[4])
    return self.storages[key]


def _materialise(obj):
  """Replaces every _TensorRef in dicts / lists / tuples by a numpy array (a copy)."""
  if isinstance(obj, _TensorRef):
    data = obj.storage.data
    if any(n < 0 for n in obj.size) or any(s < 0 for s in obj.stride) or obj.offset < 0:
      raise UnsafePickle("negative tensor size, stride or offset")
    if len(obj.size) != len(obj.stride):
      raise UnsafePickle("tensor size and stride differ in length")
    if 0 not in obj.size:
      last = obj.offset + sum((n - 1) * s for n, s in zip(obj.size, obj.stride))
      if last >= len(data):
        raise UnsafePickle(f"tensor view reaches element {last} of a storage of {len(data)}")
    item = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(data[obj.offset:] if len(data) else data,
                                           shape=obj.size,
                                           strides=tuple(s * item for s in obj.stride))
    return np.array(view)
  if isinstance(obj, dict):
    return type(obj)((k, _materialise(v)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialise(v) for v in obj)
  return obj


def _fill(storage: _Storage, raw: bytes, big_endian: bool, where: str) -> None:
  expected = storage.numel * storage.dtype.itemsize
  if len(raw) != expected:
    raise UnsafePickle(f"storage {where} holds {len(raw)} bytes, expected {expected}")
  dtype = storage.dtype.newbyteorder(">") if big_endian else storage.dtype
  storage.data = np.frombuffer(raw, dtype=dtype).astype(storage.dtype)


def _load_zip(path: str):
  with zipfile.ZipFile(path) as z:
    names = z.namelist()
    pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
    if len(pkl) != 1:
      raise UnsafePickle(f"{path} is a zip file but not a torch.save archive (no */data.pkl)")
    prefix = pkl[0][:-len("data.pkl")]
    big = (prefix + "byteorder" in names and
           z.read(prefix + "byteorder").decode().strip() == "big")
    unpickler = _Unpickler(io.BytesIO(z.read(pkl[0])))
    obj = unpickler.load()
    for key, storage in unpickler.storages.items():
      record = f"{prefix}data/{key}"
      if record not in names:
        raise UnsafePickle(f"storage record {record} is missing from {path}")
      _fill(storage, z.read(record), big, record)
  return obj


def _load_legacy(path: str):
  with open(path, "rb") as f:
    stream = io.BytesIO(f.read())
  # Consecutive pickles on one stream: each load() stops right after its STOP opcode. The
  # header (magic number, protocol, system info: ints and a dict) also goes through the
  # restricted unpickler.
  magic, protocol, sys_info = (_Unpickler(stream).load() for _ in range(3))
  if magic != LEGACY_MAGIC or protocol != LEGACY_PROTOCOL or not isinstance(sys_info, dict):
    raise UnsafePickle(f"{path} is neither a torch zip archive nor a legacy torch.save file")
  main = _Unpickler(stream)
  obj = main.load()
  keys = _Unpickler(stream).load()
  if not isinstance(keys, list):
    raise UnsafePickle(f"{path}: the legacy storage key list is a {type(keys).__name__}")
  big = not sys_info.get("little_endian", True)
  for key in keys:
    storage = main.storages.get(str(key))
    if storage is None:
      raise UnsafePickle(f"legacy storage key {key!r} was not referenced by the pickle")
    count = int(np.frombuffer(stream.read(8).ljust(8, b"\0"), dtype=">i8" if big else "<i8")[0])
    if count != storage.numel:
      raise UnsafePickle(f"storage {key} has {count} elements, the pickle says {storage.numel}")
    _fill(storage, stream.read(count * storage.dtype.itemsize), big, str(key))
  if any(s.data is None for s in main.storages.values()):
    raise UnsafePickle(f"{path}: a storage the pickle references has no data")
  return obj


def load(path: str) -> Any:
  """The object a torch.save file holds, with tensors as numpy arrays (never runs its code).

  Raises UnsafePickle for any global outside the state-dict allow-list or a malformed file.
  """
  if zipfile.is_zipfile(path):
    return _materialise(_load_zip(path))
  return _materialise(_load_legacy(path))
