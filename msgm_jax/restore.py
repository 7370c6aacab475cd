"""Opening a trained run for eval and sample mode: its checkpoints, and its state's shapes."""

import os
from typing import Any

import jax

from msgm_jax import checkpoint, train


def open_checkpoints(workdir: str) -> checkpoint.Checkpointer:
  """The run's checkpoints, read-only; FileNotFoundError naming the fix when there are none."""
  root = os.path.join(workdir, "checkpoints")
  ckpt = checkpoint.Checkpointer(root, read_only=True) if os.path.isdir(root) else None
  if ckpt is None or ckpt.latest_step() is None:
    if ckpt is not None:
      ckpt.close()
    raise FileNotFoundError(f"no checkpoints in {root}; train first with --mode=train and the "
                            "same --config and --workdir, or pass the --workdir of a trained run")
  return ckpt


def state_template(run: train.Run) -> Any:
  """The run's TrainState as shapes only (jax.eval_shape: nothing initialised or compiled)."""
  return jax.eval_shape(lambda: train.fresh_state(run))
