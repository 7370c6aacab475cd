"""Orbax checkpoints: `<workdir>/checkpoints/<step>/` with items `state` and `meta`.

`state` is the TrainState (params, ema_params, opt_state, step); `meta` is JSON: the data
position, the config that trained the run, every parameter's shape (a resume with a model of a
different shape is refused with a message instead of a stack trace) and a checksum of the
state's arrays. Saves are asynchronous and atomic (Orbax writes to a temporary directory and
renames it when complete), so a process killed at any moment leaves the last complete
checkpoint intact and a rerun resumes from it.

A checkpoint damaged afterwards (a file missing, truncated or garbled: Orbax's own errors, or
arrays that do not match the checksum, since a garbled data file can read back as wrong
numbers without any error) is unreadable. `restore_newest` then falls back to the newest
intact checkpoint and moves each newer unreadable one aside to `<step>.corrupt` (never
deleted), saying so in one line. It moves nothing when no checkpoint reads: then the fault is
more likely the code or the config than the files.
"""

import hashlib
import json
import logging as py_logging
import os
import sys
import zlib
from typing import Any, Dict, Iterable, List, Optional, Tuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies
from absl import logging

from msgm_jax.runtime import distributed
from msgm_jax.runtime import parallel
from msgm_jax.errors import first_line

class CheckpointMismatch(ValueError):
  """The checkpoint was written by a model of a different shape."""


class CheckpointUnreadable(ValueError):
  """A checkpoint's files are missing, truncated or garbled (or none of a run's read)."""

  def __init__(self, message: str, step: Optional[int] = None):
    super().__init__(message)
    self.step = step


def param_shapes(params: Any) -> Dict[str, list]:
  """{'path/to/leaf': shape} for every leaf of a parameter tree."""
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  return {jax.tree_util.keystr(path): list(np.shape(leaf)) for path, leaf in flat}


def state_digest(state: Any) -> str:
  """A CRC-32 of every array's path, dtype, shape and bytes (8 hex digits).

  Leaves that this process cannot see whole (arrays sharded across processes) are left out.
  """
  crc = 0
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    if not getattr(leaf, "is_fully_addressable", True):
      continue
    arr = np.ascontiguousarray(jax.device_get(leaf))
    crc = zlib.crc32(f"{jax.tree_util.keystr(path)}|{arr.dtype}|{arr.shape}".encode(), crc)
    crc = zlib.crc32(arr.reshape(-1).view(np.uint8), crc)
  return f"{crc:08x}"


def config_digest(config_json: str) -> str:
  return hashlib.sha256(config_json.encode()).hexdigest()[:16]


def _checkpoint_root(path: str) -> Tuple[str, Optional[int]]:
  """Accepts a workdir, its checkpoints/ directory, or one checkpoint <step>/ directory."""
  path = os.path.abspath(path)
  if os.path.isdir(os.path.join(path, "checkpoints")):
    return os.path.join(path, "checkpoints"), None
  base = os.path.basename(path.rstrip("/"))
  if base.isdigit() and os.path.isdir(path):
    return os.path.dirname(path), int(base)
  return path, None


_QUIET = []


def _quiet_failed_reads() -> None:
  """Installed before every read: after a failed one, Orbax's abandoned reads print hundreds of lines of 'Exception
  ignored' and 'Event loop is closed' tracebacks (unraisable exceptions, asyncio's logger,
  and, in about 1 run of 4 (measured), a bare traceback of a tensorstore callback calling
  into the closed loop, printed through sys.excepthook); the one-line message says what
  happened, so drop these (once per process)."""
  if _QUIET:
    return
  markers = ("Event loop is closed", "while reading array index")
  previous, previous_except = sys.unraisablehook, sys.excepthook

  def hook(unraisable):
    if not any(m in str(unraisable.exc_value) for m in markers):
      previous(unraisable)

  def except_hook(kind, value, tb):
    if not (isinstance(value, RuntimeError) and str(value) == "Event loop is closed"):
      previous_except(kind, value, tb)

  sys.unraisablehook = hook
  sys.excepthook = except_hook
  py_logging.getLogger("asyncio").addFilter(
      lambda record: "exception was never retrieved" not in record.getMessage())
  _QUIET.append(hook)


_READ_ONLY_NOTICES = ("Given directory is read only", "CheckpointManagerOptions.read_only=True")


def _drop_read_only_notices(record) -> bool:
  """Orbax warns on every read-only manager ('Given directory is read only=...', though the
  directory is not: it is the manager's mode); a reader opened read-only on purpose cannot
  act on it (notebooks printed it twice per trained.load)."""
  return not str(record.msg).startswith(_READ_ONLY_NOTICES)


py_logging.getLogger("absl").addFilter(_drop_read_only_notices)


class Checkpointer:
  """A thin wrapper over ocp.CheckpointManager with the project's layout and checks."""

  def __init__(self, directory: str, *, max_to_keep: int = 2, keep_period: int = 0,
               read_only: bool = False):
    self.directory = os.path.abspath(directory)
    if read_only:  # the values Orbax would otherwise reset (with a warning each)
      options = ocp.CheckpointManagerOptions(
          max_to_keep=None, keep_period=None, save_interval_steps=0, create=False,
          read_only=True, enable_async_checkpointing=True)
    else:
      # Orbax 0.12 marks max_to_keep / keep_period deprecated; these are the policies it
      # builds from them: the newest max_to_keep, and every keep_period-th step forever.
      keep = [policies.LatestN(n=max_to_keep)]
      if keep_period:
        keep.insert(0, policies.EveryNSteps(keep_period))
      options = ocp.CheckpointManagerOptions(
          preservation_policy=policies.AnyPreservationPolicy(keep), create=True,
          enable_async_checkpointing=True)
    self._mngr = ocp.CheckpointManager(self.directory, item_names=("state", "meta"),
                                       options=options)

  @classmethod
  def for_reading(cls, path: str) -> Tuple["Checkpointer", Optional[int]]:
    """Opens a workdir / checkpoints dir / single checkpoint dir; returns (ckpt, step or None)."""
    root, step = _checkpoint_root(path)
    if not os.path.isdir(root):
      raise FileNotFoundError(f"no checkpoints at {path}; pass a workdir of a finished run or "
                              "one of its checkpoints/<step> directories")
    return cls(root, read_only=True), step

  def path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def latest_step(self) -> Optional[int]:
    return self._mngr.latest_step()

  def all_steps(self) -> list:
    return sorted(self._mngr.all_steps())

  def save(self, step: int, state: Any, meta: Dict[str, Any]) -> None:
    """Starts an asynchronous save (the previous one is waited for first, by Orbax); meta gets
    the state's checksum. With several processes every one calls it with its (equal) copy;
    one checkpoint is written (the arrays by process 0, see parallel.to_process_replicated)."""
    meta = {**meta, "state_digest": state_digest(state)}
    state = parallel.to_process_replicated(state)
    self._mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                  meta=ocp.args.JsonSave(meta)))

  def read_meta(self, step: int) -> Dict[str, Any]:
    """The JSON item of checkpoint `step`; CheckpointUnreadable when it cannot be read."""
    try:
      return self._mngr.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # Orbax raises many types for damaged files
      raise CheckpointUnreadable(f"checkpoint {self.path(step)} cannot be read ({first_line(e)})",
                                 step) from e

  def newest_meta(self) -> Optional[Tuple[int, Dict[str, Any]]]:
    """(step, meta) of the newest checkpoint whose meta reads; None when none does."""
    for step in reversed(self.all_steps()):
      try:
        return step, self.read_meta(step)
      except CheckpointUnreadable:
        continue
    return None

  def restore(self, step: int, like: Any) -> Tuple[Any, Dict[str, Any]]:
    """Restores `state` shaped like the tree `like` (concrete or abstract), and `meta`.

    Raises CheckpointMismatch naming the first differing parameter when shapes disagree, and
    CheckpointUnreadable (one line, naming the checkpoint) when its files are damaged.
    """
    meta = self.read_meta(step)
    saved = meta.get("param_shapes")
    if saved is not None:
      check_shapes(saved, param_shapes(like.params), self.path(step))
    abstract = parallel.process_replicated_like(
        jax.tree.map(ocp.utils.to_shape_dtype_struct, like))
    # Before the read: a failing read's noise can print before its exception reaches here
    # (seen in CI-like runs: the bare traceback came first). The hooks drop only that noise.
    _quiet_failed_reads()
    try:
      state = parallel.from_process_replicated(self._mngr.restore(
          step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"])
      intact = meta.get("state_digest") in (None, state_digest(state))
      reason = "its arrays do not match the checksum saved with them"
    except Exception as e:  # Orbax raises many types for damaged files
      intact, reason = False, first_line(e)
    if not distributed.all_agree(intact):
      raise CheckpointUnreadable(f"checkpoint {self.path(step)} cannot be read ({reason})", step)
    return state, meta

  def set_aside(self, step: int) -> str:
    """Renames checkpoint `step` to `<step>.corrupt` (`.corrupt.1`, ... if taken); returns
    the new path. Process 0 renames; every process then sees the same steps."""
    target = f"{self.path(step)}.corrupt"
    n = 0
    while os.path.exists(target if n == 0 else f"{target}.{n}"):
      n += 1
    target = target if n == 0 else f"{target}.{n}"
    if jax.process_index() == 0:
      os.rename(self.path(step), target)
    distributed.barrier(f"set_aside/{step}")
    self._mngr.reload()
    return target

  def restore_newest(self, like: Any, steps: Optional[Iterable[int]] = None
                     ) -> Optional[Tuple[int, Any, Dict[str, Any]]]:
    """(step, state, meta) of the newest checkpoint among `steps` (default: all) that reads.

    Each newer checkpoint that cannot be read is moved aside to `<step>.corrupt` with a
    one-line warning. None when there are no checkpoints; CheckpointUnreadable listing each
    one when none reads (nothing is moved then).
    """
    failed: List[CheckpointUnreadable] = []
    for step in sorted(self.all_steps() if steps is None else steps, reverse=True):
      try:
        state, meta = self.restore(step, like)
      except CheckpointUnreadable as e:
        failed.append(e)
        continue
      for error in failed:
        moved = self.set_aside(error.step)
        logging.warning("%s; moved it aside to %s; using step %d instead", error, moved, step)
      return step, state, meta
    if failed:
      raise CheckpointUnreadable(
          f"no checkpoint in {self.directory} can be read ({'; '.join(map(str, failed))}); "
          "nothing was moved: if the --config is the run's, move the damaged ones aside and "
          "rerun")
    return None

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()


def check_shapes(saved: Dict[str, list], current: Dict[str, list], where: str) -> None:
  if saved == current:
    return
  missing = sorted(set(saved) ^ set(current))
  if missing:
    what = f"parameter {missing[0]} exists in only one of them"
  else:
    name = next(k for k in sorted(saved) if saved[k] != current[k])
    what = f"parameter {name} is {tuple(saved[name])} there but {tuple(current[name])} now"
  raise CheckpointMismatch(
      f"the checkpoint {where} was written by a model of a different shape ({what}); use a new "
      "--workdir, or restore the model config that wrote it")


def dumps_config(config) -> str:
  """A canonical JSON of a ConfigDict (sorted keys; tuples as lists)."""
  return json.dumps(config.to_dict(), sort_keys=True, default=str)
