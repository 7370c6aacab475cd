"""Orbax checkpoints: `<workdir>/checkpoints/<step>/` with items `state` and `meta`.

`state` is the TrainState (params, ema_params, opt_state, step); `meta` is JSON: the data
position, a digest of the config, and every parameter's shape, so a resume with a model of a
different shape is refused with a message instead of a stack trace. Saves are asynchronous and
atomic (Orbax writes to a temporary directory and renames it when complete), so a process
killed at any moment leaves the last complete checkpoint intact and a rerun resumes from it.
"""

import hashlib
import json
import os
from typing import Any, Dict, Optional, Tuple

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointMismatch(ValueError):
  """The checkpoint was written by a model of a different shape."""


def param_shapes(params: Any) -> Dict[str, list]:
  """{'path/to/leaf': shape} for every leaf of a parameter tree."""
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  return {jax.tree_util.keystr(path): list(np.shape(leaf)) for path, leaf in flat}


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


class Checkpointer:
  """A thin wrapper over ocp.CheckpointManager with the project's layout and checks."""

  def __init__(self, directory: str, *, max_to_keep: int = 2, keep_period: int = 0,
               read_only: bool = False):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, keep_period=keep_period or None, create=not read_only,
        read_only=read_only, enable_async_checkpointing=True)
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

  def latest_step(self) -> Optional[int]:
    return self._mngr.latest_step()

  def all_steps(self) -> list:
    return sorted(self._mngr.all_steps())

  def save(self, step: int, state: Any, meta: Dict[str, Any]) -> None:
    """Starts an asynchronous save; the previous one is waited for first (Orbax does this)."""
    self._mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                  meta=ocp.args.JsonSave(meta)))

  def read_meta(self, step: int) -> Dict[str, Any]:
    return self._mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def restore(self, step: int, like: Any) -> Tuple[Any, Dict[str, Any]]:
    """Restores `state` shaped like the tree `like` (concrete or abstract), and `meta`.

    Raises CheckpointMismatch naming the first differing parameter when shapes disagree.
    """
    meta = self.read_meta(step)
    saved = meta.get("param_shapes")
    if saved is not None:
      check_shapes(saved, param_shapes(like.params), f"{self.directory}/{step}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    out = self._mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    return out["state"], out["meta"]

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
