"""The safe torch.save reader: files written by torch (committed), and pickles it must refuse."""

import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from msgm_jax.training import torch_pickle
from tests import inception_recipe
from tests.helpers import ROOT

FIXTURES = os.path.join(ROOT, "tests", "fixtures")


@pytest.mark.parametrize("name", ["tiny_zip.pth", "tiny_legacy.pth"])
def test_reads_what_torch_saved_in_both_formats(name):
  # Written by scripts/make_inception_fixture.py with torch 2.13: views sharing one storage,
  # a scalar, int64, float64, float16 and an empty tensor.
  state = torch_pickle.load(os.path.join(FIXTURES, name))
  expected = inception_recipe.tiny_state_dict()
  assert list(state) == list(expected)
  for key, value in expected.items():
    assert state[key].dtype == value.dtype and state[key].shape == value.shape, key
    np.testing.assert_array_equal(state[key], value)
  state["row"][0] = -1.0  # each tensor is its own copy, not a view of the shared storage
  assert state["base"][1, 0] == expected["base"][1, 0]


class _Calls:
  """Unpickling this calls func(*args) with the standard pickle machinery."""

  def __init__(self, func, *args):
    self.func, self.args = func, args

  def __reduce__(self):
    return self.func, self.args


def _zip_archive(path, data_pkl: bytes, records=None):
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", data_pkl)
    for key, raw in (records or {}).items():
      z.writestr(f"archive/data/{key}", raw)
  return str(path)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_refuses_a_pickle_that_would_run_code(tmp_path, fmt):
  marker = tmp_path / "pwned"
  evil = pickle.dumps({"w": _Calls(os.system, f"touch {marker}")}, protocol=2)
  if fmt == "zip":
    path = _zip_archive(tmp_path / "evil.pth", evil)
  else:
    path = str(tmp_path / "evil.pth")
    with open(path, "wb") as f:  # a legacy header, then the payload as the object pickle
      for header in (torch_pickle.LEGACY_MAGIC, torch_pickle.LEGACY_PROTOCOL,
                     {"little_endian": True}):
        pickle.dump(header, f, protocol=2)
      f.write(evil)
  with pytest.raises(torch_pickle.UnsafePickle, match="refusing to load global .*system"):
    torch_pickle.load(path)
  assert not marker.exists()


def test_refuses_builtins_even_in_the_legacy_header(tmp_path):
  path = str(tmp_path / "evil_header.pth")
  with open(path, "wb") as f:
    pickle.dump(_Calls(eval, "1 + 1"), f, protocol=2)
  with pytest.raises(torch_pickle.UnsafePickle, match="refusing to load global .*eval"):
    torch_pickle.load(path)


def _tensor_pickle(numel: int, size, stride) -> bytes:
  """Protocol-2 opcodes for torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False),
  the storage a persistent id ('storage', torch.FloatStorage, '0', 'cpu', numel)."""

  def text(s):
    return b"X" + struct.pack("<I", len(s)) + s.encode()

  def small_tuple(values):
    return b"(" + b"".join(b"K" + bytes([v]) for v in values) + b"t"

  return (b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n("
          + b"(" + text("storage") + b"ctorch\nFloatStorage\n" + text("0") + text("cpu")
          + b"K" + bytes([numel]) + b"tQ"  # BINPERSID
          + b"K\x00" + small_tuple(size) + small_tuple(stride) + b"\x89tR.")


def test_a_crafted_tensor_pickle_loads_and_its_bounds_are_checked(tmp_path):
  raw = np.arange(6, dtype="<f4").tobytes()
  ok = _zip_archive(tmp_path / "ok.pth", _tensor_pickle(6, (2, 3), (1, 2)), {"0": raw})
  np.testing.assert_array_equal(torch_pickle.load(ok), np.arange(6, dtype=np.float32)
                                .reshape(3, 2).T)
  past_end = _zip_archive(tmp_path / "oob.pth", _tensor_pickle(6, (3, 3), (3, 1)), {"0": raw})
  with pytest.raises(torch_pickle.UnsafePickle, match="reaches element 8 of a storage of 6"):
    torch_pickle.load(past_end)
  short = _zip_archive(tmp_path / "short.pth", _tensor_pickle(6, (6,), (1,)), {"0": raw[:8]})
  with pytest.raises(torch_pickle.UnsafePickle, match="holds 8 bytes, expected 24"):
    torch_pickle.load(short)
