"""Eval mode: the held-out DSM loss and likelihoods of checkpoints, on SFG and NSFG apart.

  python -m msgm_jax.main --config=<file> --workdir=<run dir> --mode=eval

Checkpoints: eval.begin_ckpt / eval.end_ckpt are training steps. 0 / 0 evaluates the latest
checkpoint only; otherwise every kept checkpoint with begin_ckpt <= step <= end_ckpt (end_ckpt
0: no upper bound). Always the EMA parameters. For each of the SFG and NSFG subsets of the
eval.bpd_dataset split:
  (a) the DSM loss (the training loss's settings) on eval.num_batches batches of eval.batch_size;
  (b) with eval.enable_bpd, log-likelihoods by the probability-flow ODE (RK45, rtol = atol =
      1e-5, from eps = 1e-5; divergence by Hutchinson-Skilling with Rademacher probes) of the
      first eval.bpd_num_examples examples, always uniformly dequantised ((x + u) / 256, then
      the data scaler, as score_sde's bpd), as bits/dim with offset 8 for data in [0, 1] and 7
      for centred data (method.md section 8). toy2d points are not quantised: they get the mean
      negative log-likelihood in nats per point instead.
MSGM should raise the NSFG bits/dim and leave the SFG bits/dim nearly unchanged. Outputs:
<workdir>/eval/ckpt_<step>.json, TensorBoard scalars eval/<subset>_<metric> under
<workdir>/eval/tensorboard (and eval/metrics.jsonl), and one printed line per checkpoint.
"""

import contextlib
import dataclasses
import json
import math
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from msgm_jax import builders, checkpoint, data, likelihood, parallel, train
from msgm_jax import writer as writer_lib
from msgm_jax.eval_loss import (ExampleFn, dsm_fn, eval_keys, host_rng, map_examples,
                                model_batches, subset_source)
from msgm_jax.losses import LossConfig

SUBSETS = ("sfg", "nsfg")


@dataclasses.dataclass(frozen=True)
class EvalSettings:
  """What eval mode computes (config.eval, plus method.md's fixed ODE settings)."""

  split: str = "test"
  begin_ckpt: int = 0
  end_ckpt: int = 0
  batch_size: int = 128
  num_batches: int = 4
  enable_bpd: bool = True
  bpd_num_examples: int = 256
  rtol: float = 1e-5
  atol: float = 1e-5
  eps: float = 1e-5
  divergence: str = "hutchinson_rademacher"

  @classmethod
  def from_config(cls, eval_cfg) -> "EvalSettings":
    divergence = eval_cfg.get("divergence", cls.divergence)
    likelihood.DIVERGENCES.get(divergence)  # fail early, listing the valid names
    return cls(split=eval_cfg.bpd_dataset, begin_ckpt=int(eval_cfg.begin_ckpt),
               end_ckpt=int(eval_cfg.end_ckpt), batch_size=int(eval_cfg.batch_size),
               num_batches=int(eval_cfg.num_batches), enable_bpd=bool(eval_cfg.enable_bpd),
               bpd_num_examples=int(eval_cfg.bpd_num_examples),
               divergence=divergence)


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


def restore_ema(ckpt: checkpoint.Checkpointer, step: int, template, devices: Sequence) -> Any:
  """The EMA variables of checkpoint `step` (restored like `template`), replicated."""
  state, _ = ckpt.restore(step, template)
  return parallel.replicate(state.ema_params, devices)


def select_steps(available: Sequence[int], begin: int, end: int) -> List[int]:
  """The checkpoint steps to evaluate (see the module docstring for the rule)."""
  if begin == 0 and end == 0:
    return [max(available)]
  chosen = [s for s in sorted(available) if s >= begin and (end == 0 or s <= end)]
  if not chosen:
    raise ValueError(f"no checkpoint with {begin} <= step <= {end or 'any'} (eval.begin_ckpt, "
                     f"eval.end_ckpt); kept steps: {', '.join(map(str, sorted(available)))}")
  return chosen


def likelihood_fn(build_score_fn: Callable, sde, settings: EvalSettings) -> ExampleFn:
  """Per-example {'logp': [B] nats, 'nfe': [B]} by the probability-flow ODE."""

  def fn(variables, batch, key):
    logp, _, nfe = likelihood.log_likelihood(
        key, sde, build_score_fn(variables, None), batch["x"], rtol=settings.rtol,
        atol=settings.atol, eps=settings.eps, divergence=settings.divergence)
    return {"logp": logp, "nfe": jnp.full(logp.shape, nfe, jnp.float32)}

  return fn


def bpd_offset(spec: data.DataSpec) -> float:
  """log2(256 / width of the data range): 8 for [0, 1], 7 for centred [-1, 1] data."""
  return 7.0 if spec.centered else 8.0


def _mean_and_stderr(name: str, values: np.ndarray) -> Dict[str, Optional[float]]:
  n = len(values)
  stderr = float(np.std(values, ddof=1) / math.sqrt(n)) if n > 1 else None
  return {name: float(np.mean(values)), f"{name}_stderr": stderr}


def likelihood_summary(logp: np.ndarray, spec: data.DataSpec) -> Dict[str, Optional[float]]:
  """logp [n] (nats, dequantised data in model space) -> {'bpd', 'bpd_stderr'} for images,
  {'nll', 'nll_stderr'} (nats per point) for toy2d points."""
  if spec.is_points:
    return _mean_and_stderr("nll", -np.asarray(logp))
  bpd = likelihood.bits_per_dim(jnp.asarray(logp), data.data_shape(spec), bpd_offset(spec))
  return _mean_and_stderr("bpd", np.asarray(bpd))


class Evaluator:
  """The metrics of one set of (replicated) variables on the SFG and NSFG subsets.

  build_score_fn: (variables, rng) -> score_fn(x, t), e.g. builders.score_fn_builder(...,
  train=False); any score works (tests pass an exact one). build_flow_score_fn: the same for
  the likelihoods' probability-flow ODE (score_fn_builder(..., flow=True)); default
  build_score_fn. Compiles once per function, however many checkpoints it evaluates.
  """

  def __init__(self, spec: data.DataSpec, sde, build_score_fn: Callable, loss_cfg: LossConfig,
               devices: Sequence, settings: EvalSettings, *, seed: int, init_key: jax.Array,
               build_flow_score_fn: Optional[Callable] = None):
    self.spec, self.devices, self.settings, self.seed = spec, devices, settings, seed
    self.sources = {s: subset_source(spec, settings.split, s) for s in SUBSETS}
    self.dsm_key, self.lik_key = eval_keys(init_key)
    self.p_dsm = parallel.data_parallel_map(dsm_fn(build_score_fn, sde, loss_cfg), devices,
                                            distinct_keys=False)
    self.p_lik = parallel.data_parallel_map(
        likelihood_fn(build_flow_score_fn or build_score_fn, sde, settings), devices)

  def dsm(self, p_variables, subset: str) -> Dict[str, Any]:
    s = self.settings
    batches = model_batches(self.spec, self.sources[subset], s.batch_size,
                            s.batch_size * s.num_batches, host_rng(self.seed, subset, 0))
    losses = map_examples(self.p_dsm, p_variables, batches, self.dsm_key, self.devices)["loss"]
    return {"dsm_loss": float(np.mean(losses)), "dsm_examples": len(losses)}

  def likelihood(self, p_variables, subset: str) -> Dict[str, Any]:
    """{'bpd' | 'nll', its stderr, 'likelihood_examples', 'nfe'} of the first
    settings.bpd_num_examples examples of `subset`, uniformly dequantised."""
    s, n_dev = self.settings, len(self.devices)
    batch = min(s.batch_size, -(-s.bpd_num_examples // n_dev) * n_dev)
    spec = dataclasses.replace(self.spec, uniform_dequantization=True)
    batches = model_batches(spec, self.sources[subset], batch, s.bpd_num_examples,
                            host_rng(self.seed, subset, 1))
    key = jax.random.fold_in(self.lik_key, SUBSETS.index(subset))
    out = map_examples(self.p_lik, p_variables, batches, key, self.devices)
    return {**likelihood_summary(out["logp"], self.spec), "likelihood_examples": len(out["logp"]),
            "nfe": float(np.mean(out["nfe"]))}

  def __call__(self, p_variables) -> Dict[str, Dict[str, Any]]:
    """{'sfg': {...}, 'nsfg': {...}} for replicated variables."""
    results = {}
    for subset in SUBSETS:
      results[subset] = self.dsm(p_variables, subset)
      if self.settings.enable_bpd:
        results[subset].update(self.likelihood(p_variables, subset))
    return results


def _record(step: int, results: Dict[str, Dict[str, Any]], spec: data.DataSpec,
            settings: EvalSettings) -> Dict[str, Any]:
  record = {"step": int(step), "params": "ema", "split": settings.split, **results}
  if settings.enable_bpd:
    record["likelihood"] = {
        "divergence": settings.divergence, "rtol": settings.rtol, "atol": settings.atol,
        "eps": settings.eps, "unit": "nats/point" if spec.is_points else "bits/dim",
        "dequantization": "none" if spec.is_points else "uniform",
        "offset": None if spec.is_points else bpd_offset(spec)}
  return record


def _summary_line(record: Dict[str, Any], path: str) -> str:
  parts = []
  for subset in SUBSETS:
    r = record[subset]
    text = f"{subset.upper()} dsm {r['dsm_loss']:.4f}"
    for name, unit in (("bpd", "bits/dim"), ("nll", "nats")):
      if name in r:
        err = f" +- {r[name + '_stderr']:.3f}" if r[name + "_stderr"] is not None else ""
        text += f" {name} {r[name]:.3f}{err} {unit}"
    parts.append(text)
  return f"eval step {record['step']}: {' | '.join(parts)} -> {path}"


def write_record(outdir: str, record: Dict[str, Any], writer) -> str:
  """Writes ckpt_<step>.json and the numeric results as TensorBoard scalars; returns the path."""
  os.makedirs(outdir, exist_ok=True)
  path = os.path.join(outdir, f"ckpt_{record['step']}.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(record, f, indent=2)
  writer.scalars(record["step"], {f"eval/{subset}_{k}": v for subset in SUBSETS
                                  for k, v in record[subset].items() if v is not None})
  return path


def evaluate(config, workdir: str) -> Dict[int, Dict[str, Any]]:
  """Eval mode (see the module docstring); returns {step: record}."""
  settings = EvalSettings.from_config(config.eval)
  with contextlib.closing(open_checkpoints(workdir)) as ckpt:
    steps = select_steps(ckpt.all_steps(), settings.begin_ckpt, settings.end_ckpt)
    run = train.build_run(config, workdir)
    builds = [builders.score_fn_builder(run.model, run.sde, config.training.continuous,
                                        train=False, flow=flow) for flow in (False, True)]
    evaluator = Evaluator(run.spec, run.sde, builds[0], run.step_cfg.loss, run.devices, settings,
                          seed=config.seed, init_key=run.init_key, build_flow_score_fn=builds[1])
    template = state_template(run)
    outdir, is_main = os.path.join(workdir, "eval"), jax.process_index() == 0
    records = {}
    with contextlib.closing(writer_lib.MetricWriter(outdir, enabled=is_main)) as writer:
      for step in steps:
        results = evaluator(restore_ema(ckpt, step, template, run.devices))
        records[step] = _record(step, results, run.spec, settings)
        if is_main:
          path = write_record(outdir, records[step], writer)
          print(_summary_line(records[step], path), flush=True)
  return records
