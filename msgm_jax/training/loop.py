"""The training loop: one config drives one run in one workdir.

    train_and_evaluate(config, workdir)

Rerunning the same command resumes from the newest intact checkpoint (a damaged newer one is
moved aside, msgm_jax/training/checkpoint.py) and ends with exactly the parameters an uninterrupted run
reaches: the batch at step k and every random draw are pure functions of (seed, k), and
checkpoints land only on compiled-call boundaries. The logs follow the checkpoints: they are
flushed at every checkpoint, and on resume from step S records after S are dropped before
training goes on (msgm_jax/training/logfiles.py), so each step appears once. A resume with a config that
differs in the fields defining the model or the SDE is refused (msgm_jax/config/agreement.py).
"""

import dataclasses
import json
import os
import time
from typing import Any, Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from msgm_jax import data
from msgm_jax.config import agreement
from msgm_jax.config import builders
from msgm_jax.training import checkpoint
from msgm_jax.training import heldout as eval_loss
from msgm_jax.method import optim
from msgm_jax.runtime import parallel
from msgm_jax.runtime import preemption
from msgm_jax.training import progress
from msgm_jax.config import validate
from msgm_jax.method import step as train_step_lib
from msgm_jax.training import writer as writer_lib
from msgm_jax.models import model_from_config


class NonFiniteLoss(RuntimeError):
  """The loss became NaN or infinite; the run stops without saving the bad state."""


@dataclasses.dataclass
class Run:
  """Everything a training run is made of, built once from the config."""

  config: Any
  workdir: str
  spec: data.DataSpec
  shape: tuple
  sde: Any
  model: Any
  step_cfg: train_step_lib.StepConfig
  tx: Any
  devices: list
  key: jax.Array  # the training stream; per-step and per-example keys are folded in
  init_key: jax.Array

  @property
  def n_dev(self) -> int:
    """Local devices: each process splits its share of a batch over these."""
    return len(self.devices)

  @property
  def n_global(self) -> int:
    """Devices of all processes: a global batch is split over these."""
    return parallel.device_count(self.devices)


def build_run(config, workdir: str) -> Run:
  spec = data.DataSpec.from_config(config.data)
  shape = data.data_shape(spec)
  sde = builders.sde_from_config(config.training, config.model)
  model = model_from_config(config.model, data_shape=shape, centered=spec.centered)
  step_cfg = builders.step_config(config)
  devices = parallel.local_devices(config.training.num_devices or None)
  init_key, key = jax.random.split(jax.random.key(config.seed))
  return Run(config, workdir, spec, shape, sde, model, step_cfg,
             optim.make_transform(step_cfg.optim), devices, key, init_key)


def fresh_state(run: Run) -> train_step_lib.TrainState:
  variables = builders.init_variables(run.model, run.shape, run.init_key)
  return train_step_lib.create_train_state(variables, run.tx)


def checkpoint_meta(run: Run, state, step: int) -> Dict[str, Any]:
  cfg_json = checkpoint.dumps_config(run.config)
  return {"step": int(step), "data_position": int(step),
          "config_digest": checkpoint.config_digest(cfg_json), "config": cfg_json,
          "param_shapes": checkpoint.param_shapes(state.params)}


def check_agreement(config, ckpt: checkpoint.Checkpointer, allow: bool,
                    log_changes: bool = False) -> None:
  """Refuses (agreement.ConfigMismatch) a config that differs from the newest readable
  checkpoint's in fields defining the model or the SDE, unless `allow`; log_changes: say
  which other fields changed (on resume)."""
  newest = ckpt.newest_meta()
  if newest is None or "config" not in newest[1]:
    return
  step, meta = newest
  changed = agreement.check(meta["config"], config, ckpt.path(step), allow=allow)
  if changed and log_changes:
    logging.info("the config differs from the run's in: %s", "; ".join(changed))


def _initial_state(run: Run, ckpt: checkpoint.Checkpointer) -> train_step_lib.TrainState:
  """Resume from the workdir's newest intact checkpoint, else fine-tune from
  training.init_from, else initialise."""
  template = jax.eval_shape(lambda: fresh_state(run))  # shapes only: nothing is compiled
  restored = ckpt.restore_newest(template)
  if restored is not None:
    logging.info("resumed from step %d", restored[0])
    return restored[1]
  init_from = run.config.training.init_from
  if init_from:
    source, step = checkpoint.Checkpointer.for_reading(init_from)
    step = source.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"training.init_from={init_from} holds no complete checkpoint")
    state, _ = source.restore(step, template)
    source.close()
    if run.config.training.restart_step:  # warmup, EMA warm-up and n_iters restart
      state = state.replace(step=jnp.asarray(0, jnp.int32))
    logging.info("fine-tuning from %s (step %d)", init_from, step)
    return state
  return fresh_state(run)


class _Batches:
  """Host batches for steps [s, s + k): SFG every step, NSFG only on moderation steps."""

  def __init__(self, run: Run, start: int):
    cfg = run.config.training
    self.period = run.step_cfg.msgm.period if run.step_cfg.msgm else 0
    nsfg_bs = run.config.msgm.nsfg_batch_size or cfg.batch_size
    pid, pcount = jax.process_index(), jax.process_count()
    self.sfg, self.nsfg = data.make_train_streams(
        run.spec, regime=cfg.regime, batch_size=cfg.batch_size, nsfg_batch_size=nsfg_bs,
        seed=run.config.seed, start_position=start,
        nsfg_start_position=-(-start // self.period) if self.period else 0,
        process_index=pid, process_count=pcount)
    self.sfg_it = self.sfg.iterator(start)
    self.nsfg_it = self.nsfg.iterator(-(-start // self.period)) if self.nsfg else None
    self.sfg_ids = np.arange(self.sfg.local_batch_size, dtype=np.int32) + \
        pid * self.sfg.local_batch_size
    if self.nsfg:
      self.nsfg_ids = np.arange(self.nsfg.local_batch_size, dtype=np.int32) + \
          pid * self.nsfg.local_batch_size
      self._zeros = np.zeros((self.nsfg.local_batch_size,) + run.shape, np.float32)

  def one(self, step: int) -> Dict[str, np.ndarray]:
    batch = {"sfg": next(self.sfg_it)["image"], "sfg_ids": self.sfg_ids}
    if self.nsfg_it is not None:
      batch["nsfg"] = next(self.nsfg_it)["image"] if step % self.period == 0 else self._zeros
      batch["nsfg_ids"] = self.nsfg_ids
    return batch

  def stacked(self, step: int, k: int, n_dev: int) -> Dict[str, np.ndarray]:
    """[n_dev, k, B_dev, ...] leaves for k steps from `step`."""
    steps = [self.one(step + j) for j in range(k)]
    stacked = {name: np.stack([b[name] for b in steps]) for name in steps[0]}
    return parallel.shard(stacked, n_dev, batch_axis=1)

  def close(self) -> None:
    self.sfg_it.close()
    if self.nsfg_it is not None:
      self.nsfg_it.close()


def _first_bad_step(pending: List, base_steps: List[int]) -> Optional[int]:
  """Finds the first step whose loss is not finite among fetched per-call metrics."""
  for start, losses in zip(base_steps, pending):
    losses = np.asarray(losses).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
      return start + int(bad[0]) + 1
  return None


def _snapshot_samples(run: Run, sample_fn, p_ema, step: int, writer, outdir: str) -> None:
  """Draws samples with the (replicated) EMA weights on every process; process 0 writes a
  PNG and a TensorBoard image."""
  x = parallel.gather(sample_fn(jax.random.fold_in(run.key, step), p_ema))
  if jax.process_index() != 0:
    return
  x = x.reshape((-1,) + run.shape)
  path = os.path.join(outdir, f"samples_{step:08d}.png")
  picture = writer_lib.save_samples_png(path, x, data.get_inverse_scaler(run.spec),
                                        points=run.spec.is_points, title=f"step {step}")
  writer.image(step, "samples", picture)


def make_sampler(run: Run, adjust=None, with_nfe: bool = False):
  """f(key, replicated variables) -> [n_local, B / n_devices, ...] samples drawn with the
  sampler of config.sampling, sampling.batch_size (rounded up to the devices of all
  processes) per call; parallel.gather joins the processes' parts. adjust: an optional score
  transformer (msgm_jax/method/training_free.py) applied at every step. with_nfe: f returns (samples,
  nfe [n_local])."""
  cfg = run.config
  per_dev = -(-cfg.sampling.batch_size // run.n_global)
  fn = builders.model_sampler(builders.SamplerSpec.from_config(cfg.sampling), run.model, run.sde,
                              cfg.training.continuous, (per_dev,) + run.shape, adjust=adjust,
                              with_nfe=with_nfe)
  return parallel.data_parallel_sampler(fn, run.devices)


def _training_eval(run: Run) -> Optional[eval_loss.TrainingEval]:
  """The eval_loss of the EMA parameters, every training.eval_freq steps and at the last
  step (0: never)."""
  cfg = run.config
  if not cfg.training.eval_freq:
    return None
  build = builders.score_fn_builder(run.model, run.sde, cfg.training.continuous, train=False)
  return eval_loss.TrainingEval(
      run.spec, cfg.training.regime, split=cfg.eval.bpd_dataset,
      batch_size=cfg.eval.batch_size, seed=cfg.seed, build_score_fn=build, sde=run.sde,
      loss_cfg=run.step_cfg.loss, devices=run.devices, init_key=run.init_key)


class _Monitor:
  """Keeps per-call losses on device until a log or save step, then checks they are finite
  and writes the scalars (one device-to-host sync per log, not per step)."""

  def __init__(self, writer, bar, step: int, last_saved: Optional[int], ckpt_dir: str):
    self.writer, self.bar, self.last_saved, self.ckpt_dir = writer, bar, last_saved, ckpt_dir
    self.pending, self.pending_steps = [], []
    self.t_last, self.s_last = time.time(), step

  def add(self, start: int, metrics) -> None:
    self.pending.append(parallel.unreplicate(metrics["loss"]))
    self.pending_steps.append(start)

  def flush(self, step: int, metrics) -> None:
    """Raises NonFiniteLoss naming the first bad step; else logs the last step's metrics."""
    bad = _first_bad_step(self.pending, self.pending_steps)
    if bad is not None:
      raise NonFiniteLoss(
          f"loss became non-finite at step {bad}; the last good checkpoint is step "
          f"{self.last_saved} in {self.ckpt_dir} (try a lower optim.lr or optim.grad_clip)")
    self.pending, self.pending_steps = [], []
    now = time.time()
    scalars = {k: float(np.asarray(v)[-1]) for k, v in parallel.unreplicate(metrics).items()}
    scalars["steps_per_sec"] = (step - self.s_last) / max(now - self.t_last, 1e-9)
    self.t_last, self.s_last = now, step
    self.writer.scalars(step, scalars)
    self.bar.update(step, scalars["loss"])


def _unrolled() -> bool:
  return jax.default_backend() == "cpu"


def compiled_step(run: Run):
  """The pmapped multi-step p_step(p_state, batch, key, pattern), unrolled on CPU (see
  train_step.scan_steps); pattern comes from moderation_pattern(run, first step, k)."""
  build = builders.score_fn_builder(run.model, run.sde, run.config.training.continuous,
                                    train=True)
  bank = builders.sfg_reference_bank(run.step_cfg, run.spec)
  refs = None if bank is None else jnp.asarray(bank)
  return parallel.data_parallel_step(
      lambda reduce: train_step_lib.scan_steps(train_step_lib.make_train_step(
          build, run.sde, run.step_cfg, run.tx, grad_reduce=reduce, sfg_refs=refs),
          unroll=_unrolled()),
      run.devices, n_static=1)


def moderation_pattern(run: Run, step: int, k: int) -> Optional[Tuple[bool, ...]]:
  """Which of steps [step, step + k) moderate, fixed at trace time where steps are unrolled
  (CPU: one compilation per pattern, at most training.period of them, and no lax.cond, which
  XLA:CPU runs 4-16x slower); None elsewhere (the scanned step decides at run time and skips
  the moderation branch on off-period steps). None too outside the MSGM regime."""
  if run.step_cfg.msgm is None or not _unrolled():
    return None
  return tuple((step + j) % run.step_cfg.msgm.period == 0 for j in range(k))


def write_config(config, workdir: str) -> None:
  """<workdir>/config.json: the config of the latest start (checkpoints keep their own)."""
  with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
    f.write(json.dumps(json.loads(checkpoint.dumps_config(config)), indent=2, sort_keys=True))


def _where_outputs_are(workdir: str, step: int, last_saved: Optional[int]) -> str:
  samples = ", samples/" if os.path.isdir(os.path.join(workdir, "samples")) else ""
  return (f"train: done at step {step}; outputs in {workdir}: checkpoints/ (latest "
          f"{last_saved}), metrics.jsonl{samples}, config.json; curves: tensorboard "
          f"--logdir {workdir}")


def train_and_evaluate(config, workdir: str, *,
                       allow_config_change: bool = False) -> train_step_lib.TrainState:
  """Trains (or resumes) until training.n_iters; returns the final unreplicated state.

  allow_config_change: resume even when the config differs from the run's in fields that
  define the model or the SDE (refused otherwise; see msgm_jax/config/agreement.py).
  """
  validate.check_config(config)
  cfg = config.training
  is_main = jax.process_index() == 0
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                 max_to_keep=cfg.max_to_keep, keep_period=cfg.keep_every)
  check_agreement(config, ckpt, allow_config_change, log_changes=True)
  run = build_run(config, workdir)
  state = _initial_state(run, ckpt)
  step = int(state.step)
  if is_main:
    write_config(config, workdir)
  # Records after the resumed step were logged by a run that was killed before its next
  # checkpoint: this run logs those steps again.
  writer = writer_lib.MetricWriter(workdir, enabled=is_main, keep=lambda s: s <= step)
  p_state = parallel.replicate(state, run.devices)
  p_step = compiled_step(run)
  sample_fn = make_sampler(run) if cfg.snapshot_sampling else None
  evaluator = _training_eval(run)
  batches = _Batches(run, step)
  bar = progress.Progress(cfg.n_iters, step, enabled=is_main)
  monitor = _Monitor(writer, bar, step, ckpt.latest_step(), ckpt.directory)
  try:
    with preemption.watching():
      while step < cfg.n_iters:
        k = min(cfg.steps_per_call, cfg.n_iters - step)
        batch = parallel.put_sharded(batches.stacked(step, k, run.n_dev), run.devices)
        p_state, metrics = p_step(p_state, batch, run.key, moderation_pattern(run, step, k))
        monitor.add(step, metrics)
        step += k
        preempted = preemption.requested()
        save = (step % cfg.snapshot_freq_for_preemption == 0 or step % cfg.snapshot_freq == 0
                or step == cfg.n_iters or preempted)
        if step % cfg.log_freq == 0 or save:
          monitor.flush(step, metrics)
        else:
          bar.update(step)
        last = step == cfg.n_iters  # a short run still ends with its eval loss and a picture
        if evaluator is not None and (step % cfg.eval_freq == 0 or last):
          writer.scalars(step, evaluator(p_state.ema_params))  # before p_state is donated
        if save:
          state = parallel.unreplicate(p_state)
          ckpt.save(step, state, checkpoint_meta(run, state, step))
          writer.flush()  # the logs up to this checkpoint survive a kill, as the parameters do
          monitor.last_saved = step
        if preempted:
          ckpt.wait()
          raise preemption.Preempted(step, ckpt.path(step))
        if sample_fn is not None and (step % cfg.snapshot_freq == 0 or last):
          _snapshot_samples(run, sample_fn, p_state.ema_params, step, writer,
                            os.path.join(workdir, "samples"))
          writer.flush()
  finally:
    batches.close()
    bar.close()
    ckpt.close()
    writer.close()
  if is_main:
    print(_where_outputs_are(workdir, step, monitor.last_saved), flush=True)
  return jax.device_get(parallel.unreplicate(p_state))
