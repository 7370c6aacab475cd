"""Trains a dataset classifier, then evaluates it: train mode for a classifier config.

  python -m msgm_jax.main --config=configs/classifier/<dataset>.py --workdir=<dir>

One run per workdir, as the score models' loop (msgm_jax/training/loop.py): Orbax checkpoints in
<workdir>/checkpoints/<step>/ (every classifier.snapshot_freq steps and at the end), resumed
by rerunning the same command (batch k and every random draw are functions of (seed, k), so a
resumed run ends with the uninterrupted run's parameters), TensorBoard events and
metrics.jsonl (loss, accuracy of the training batch, lr), a progress bar, and at the end the
test evaluation of msgm_jax/evaluation/classifier/evaluate.py.
"""

import os
from typing import Any, Dict

import jax
import numpy as np
from absl import logging

from msgm_jax import data
from msgm_jax.training import checkpoint
from msgm_jax.runtime import parallel
from msgm_jax.training import progress
from msgm_jax.training import writer as writer_lib
from msgm_jax.evaluation.classifier import evaluate, inputs, step as step_lib
from msgm_jax.evaluation.classifier.info import ClassifierInfo
from msgm_jax.evaluation.classifier.loading import Classifier
from msgm_jax.evaluation.classifier.settings import ClassifierSettings
from msgm_jax.training.loop import NonFiniteLoss


def _meta(info: ClassifierInfo, state, step: int, config_json: str) -> Dict[str, Any]:
  return {"step": int(step), "data_position": int(step), "config": config_json,
          "config_digest": checkpoint.config_digest(config_json),
          "param_shapes": checkpoint.param_shapes(state.params), "classifier": info.to_json()}


def _check_finite(step: int, scalars: Dict[str, float], last_saved) -> None:
  if not np.isfinite(scalars["loss"]):
    raise NonFiniteLoss(f"classifier loss became non-finite by step {step}; the last good "
                        f"checkpoint is step {last_saved} (try a lower classifier.lr)")


def train(spec: data.DataSpec, info: ClassifierInfo, *, seed: int, workdir: str,
          config_json: str = "{}") -> Classifier:
  """Trains (or resumes) until settings.n_iters; returns the trained Classifier."""
  s = info.settings
  devices = parallel.local_devices(s.num_devices or None)
  model = info.model()
  init_key, key = jax.random.split(jax.random.key(seed))
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=2)
  state = step_lib.init_state(model, s, info.image_shape, init_key)
  last_saved = ckpt.latest_step()
  if last_saved is not None:
    state, _ = ckpt.restore(last_saved, state)
    logging.info("resumed the classifier from step %d", last_saved)
  step = int(state.step)
  pid, pcount, is_main = jax.process_index(), jax.process_count(), jax.process_index() == 0
  stream = inputs.train_stream(spec, s.train_split, batch_size=s.batch_size, seed=seed,
                               start_position=step, process_index=pid, process_count=pcount)
  ids = np.arange(stream.local_batch_size, dtype=np.int32) + pid * stream.local_batch_size
  p_state = parallel.replicate(state, devices)
  p_step = parallel.data_parallel_step(
      lambda reduce: step_lib.make_train_step(model, s, reduce), devices)
  writer = writer_lib.MetricWriter(workdir, enabled=is_main)
  bar = progress.Progress(s.n_iters, step, enabled=is_main, desc="classifier")
  batches = stream.iterator(step)
  try:
    while step < s.n_iters:
      b = next(batches)
      batch = parallel.shard({"image": b["image"], "label": b["label"], "ids": ids},
                             len(devices))
      p_state, metrics = p_step(p_state, parallel.put_sharded(batch, devices), key)
      step += 1
      save = step % s.snapshot_freq == 0 or step == s.n_iters
      if step % s.log_freq == 0 or save:
        scalars = {k: float(np.asarray(v)) for k, v in parallel.unreplicate(metrics).items()}
        _check_finite(step, scalars, last_saved)
        writer.scalars(step, scalars)
        bar.update(step, scalars["loss"])
      else:
        bar.update(step)
      if save:
        state = parallel.unreplicate(p_state)
        ckpt.save(step, state, _meta(info, state, step, config_json))
        last_saved = step
  finally:
    batches.close()
    bar.close()
    ckpt.close()
    writer.close()
  params = jax.device_get(parallel.unreplicate(p_state).params)
  return Classifier(info, model, params, step)


def train_and_evaluate(config, workdir: str) -> Dict[str, Any]:
  """Train mode for a config with a `classifier` section; returns the evaluation record."""
  spec = data.DataSpec.from_config(config.data)
  settings = ClassifierSettings.from_config(config.classifier)
  info = ClassifierInfo.for_data(spec, settings)
  clf = train(spec, info, seed=config.seed, workdir=workdir,
              config_json=checkpoint.dumps_config(config))
  return evaluate.report(clf, spec, workdir, settings)
