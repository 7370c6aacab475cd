"""Checkpoints: damage to any file of the newest one falls back to the intact previous one.

The truth is the arrays saved: a restore either returns exactly the arrays of the step it
names, or refuses; it never returns other numbers.
"""

import os
import shutil
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax.training import checkpoint
from msgm_jax.method.step import TrainState


def _state(step: int) -> TrainState:
  # Random (incompressible) arrays large enough to live in data files of their own.
  rng = np.random.default_rng(step)
  params = {"w": jnp.asarray(rng.normal(size=(64, 64)), jnp.float32),
            "b": jnp.asarray(rng.normal(size=(64,)), jnp.float32)}
  return TrainState(step=jnp.asarray(step, jnp.int32), params=params,
                    ema_params=jax.tree.map(lambda x: x + 1, params), opt_state=())


def _save(directory: str, steps, **keep) -> None:
  ckpt = checkpoint.Checkpointer(directory, **(keep or {"max_to_keep": 5}))
  for step in steps:
    state = _state(step)
    ckpt.save(step, state, {"param_shapes": checkpoint.param_shapes(state.params)})
  ckpt.close()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("ckpts") / "checkpoints")
  _save(directory, (10, 20))
  return directory


def _damage(path: str, how: str) -> None:
  if how == "delete":
    os.remove(path)
    return
  with open(path, "rb") as f:
    data = bytearray(f.read())
  if how == "truncate":
    data = data[:len(data) // 2]
  else:  # garble 16 bytes a third of the way in
    for i in range(len(data) // 3, min(len(data), len(data) // 3 + 16)):
      data[i] ^= 0x5A
  with open(path, "wb") as f:
    f.write(bytes(data))


def _files(step_dir: str):
  return sorted(os.path.relpath(os.path.join(d, f), step_dir)
                for d, _, files in os.walk(step_dir) for f in files)


def test_damage_to_any_file_gives_the_saved_arrays_or_falls_back(saved, tmp_path):
  like = _state(0)
  reasons = []
  files = _files(os.path.join(saved, "20"))
  assert any(f.startswith("state/ocdbt.process_0/d/") for f in files)
  for i, name in enumerate(files):
    for how in ("delete", "truncate", "garble"):
      directory = str(tmp_path / f"{i}_{how}")  # a new path each time: no reader caches
      shutil.copytree(saved, directory)
      _damage(os.path.join(directory, "20", name), how)
      ckpt = checkpoint.Checkpointer(directory, max_to_keep=5)
      step, state, _ = ckpt.restore_newest(like)
      ckpt.close()
      chex.assert_trees_all_equal(state, _state(step))
      moved = os.path.isdir(os.path.join(directory, "20.corrupt"))
      assert moved == (step == 10) and os.path.isdir(os.path.join(directory, "20")) != moved
      if step == 10:
        reasons.append((name, how))
  damaged = {name for name, _ in reasons}
  # The arrays' bytes, the tree's metadata and the meta item are all covered.
  assert any(n.startswith("state/ocdbt.process_0/d/") for n in damaged)
  assert {"state/_METADATA", "meta/metadata"} <= damaged


def test_a_garbled_array_is_caught_by_the_checksum(saved, tmp_path):
  """Orbax reads a garbled data file without error (the numbers are just wrong)."""
  directory = str(tmp_path / "run")
  shutil.copytree(saved, directory)
  data_dir = os.path.join(directory, "20", "state", "ocdbt.process_0", "d")
  sizes = {f: os.path.getsize(os.path.join(data_dir, f)) for f in os.listdir(data_dir)}
  _damage(os.path.join(data_dir, max(sizes, key=sizes.get)), "garble")
  ckpt = checkpoint.Checkpointer(directory)
  with pytest.raises(checkpoint.CheckpointUnreadable, match="run/20 cannot be read "
                     r"\(its arrays do not match the checksum"):
    ckpt.restore(20, _state(0))
  ckpt.close()


def test_nothing_is_moved_when_no_checkpoint_reads(saved, tmp_path):
  directory = str(tmp_path / "run")
  shutil.copytree(saved, directory)
  for step in ("10", "20"):
    os.remove(os.path.join(directory, step, "state", "_METADATA"))
  ckpt = checkpoint.Checkpointer(directory)
  with pytest.raises(checkpoint.CheckpointUnreadable, match="no checkpoint in .* can be read"):
    ckpt.restore_newest(_state(0))
  assert ckpt.all_steps() == [10, 20]
  ckpt.close()
  assert sorted(os.listdir(directory)) == ["10", "20"]


def test_set_aside_never_overwrites_an_earlier_corrupt_copy(saved, tmp_path):
  directory = str(tmp_path / "run")
  shutil.copytree(saved, directory)
  os.makedirs(os.path.join(directory, "20.corrupt"))
  ckpt = checkpoint.Checkpointer(directory)
  assert ckpt.set_aside(20) == os.path.join(directory, "20.corrupt.1")
  assert ckpt.all_steps() == [10]
  ckpt.close()


def test_a_shape_mismatch_is_not_taken_for_damage(saved, tmp_path):
  directory = str(tmp_path / "run")
  shutil.copytree(saved, directory)
  like = _state(0).replace(params={"w": jnp.zeros((3, 3)), "b": jnp.zeros((64,))})
  ckpt = checkpoint.Checkpointer(directory)
  with pytest.raises(checkpoint.CheckpointMismatch, match=r"parameter \['w'\] is \(64, 64\)"):
    ckpt.restore_newest(like)
  ckpt.close()
  assert sorted(os.listdir(directory)) == ["10", "20"]


def test_opening_a_run_for_reading_prints_no_orbax_notices(saved, caplog):
  """A read-only open (trained.load, eval, sample) logs nothing a user cannot act on: Orbax's
  'Given directory is read only' and 'read_only=True, setting ...' warnings are gone."""
  with caplog.at_level("WARNING"):
    ckpt, _ = checkpoint.Checkpointer.for_reading(os.path.dirname(saved))
    assert ckpt.all_steps() == [10, 20]
    ckpt.close()
  assert not [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_the_closed_event_loop_noise_of_failed_reads_is_dropped_and_nothing_else(capsys,
                                                                               monkeypatch):
  monkeypatch.setattr(checkpoint, "_QUIET", [])
  monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
  monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
  checkpoint._quiet_failed_reads()  # pylint: disable=protected-access
  sys.excepthook(RuntimeError, RuntimeError("Event loop is closed"), None)
  assert capsys.readouterr().err == ""
  sys.excepthook(RuntimeError, RuntimeError("something else"), None)
  assert "RuntimeError: something else" in capsys.readouterr().err


@pytest.mark.parametrize("keep_period,kept", [(0, [9, 10]), (4, [4, 8, 9, 10])])
def test_the_newest_max_to_keep_and_every_keep_period_th_step_are_kept(tmp_path, keep_period,
                                                                        kept):
  directory = str(tmp_path / "checkpoints")
  _save(directory, range(1, 11), max_to_keep=2, keep_period=keep_period)
  assert sorted(int(n) for n in os.listdir(directory) if n.isdigit()) == kept
