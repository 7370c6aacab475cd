"""Opening a trained run for eval, sample, inpaint and reconstruct mode: its checkpoints, its
state's shapes, and (`restore_ema`) the EMA parameters and score function of one checkpoint."""

import contextlib
import os
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax

from msgm_jax.config import builders
from msgm_jax.training import checkpoint
from msgm_jax.training import loop as train
from msgm_jax.config import validate


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


def pick_step(available: Sequence[int], begin: int) -> int:
  """eval.begin_ckpt if non-zero (it must be a kept step), else the latest step."""
  if not begin:
    return max(available)
  if begin not in available:
    raise ValueError(f"eval.begin_ckpt={begin} is not a kept checkpoint; kept steps: "
                     f"{', '.join(map(str, sorted(available)))} (0: the latest)")
  return begin


class Restored(NamedTuple):
  """One checkpoint of a trained run: the Run built from the config, the step, and the EMA
  parameters (host arrays; replicate them with parallel.replicate for pmapped use)."""

  run: train.Run
  step: int
  ema_params: Any

  def score_builder(self, flow: bool = False,
                    adjust: Optional[Callable] = None) -> Callable[[Any], Callable]:
    """variables -> score_fn(x, t) of the model in eval mode (flow: the parametrisation of
    the probability-flow ODE), optionally transformed by a score adjustment."""
    cfg = self.run.config
    build = builders.score_fn_builder(self.run.model, self.run.sde, cfg.training.continuous,
                                      train=False, flow=flow)
    if adjust is None:
      return lambda variables: build(variables, None)
    return lambda variables: adjust(build(variables, None))


def restore_ema(config, workdir: str, *, allow_config_change: bool = False) -> Restored:
  """The EMA parameters of checkpoint eval.begin_ckpt of the run in `workdir` (0: the newest
  intact one; a damaged newer one is moved aside), after checking the config and its
  agreement with the run's (ConfigMismatch naming the fields, unless allow_config_change)."""
  validate.check_config(config)
  with contextlib.closing(open_checkpoints(workdir)) as ckpt:
    train.check_agreement(config, ckpt, allow_config_change)
    run = train.build_run(config, workdir)
    template = state_template(run)
    begin = int(config.eval.begin_ckpt)
    if begin:
      step = pick_step(ckpt.all_steps(), begin)
      state, _ = ckpt.restore(step, template)
    else:
      step, state, _ = ckpt.restore_newest(template)
  return Restored(run, step, state.ema_params)
