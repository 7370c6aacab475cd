"""Eval mode: held-out losses and likelihoods of checkpoints on SFG and NSFG data apart, and
the metrics of samples drawn from them.

  python -m msgm_jax.main --config=<file> --workdir=<run dir> --mode=eval

Checkpoints: eval.begin_ckpt / eval.end_ckpt are training steps. 0 / 0 evaluates the latest
checkpoint only; otherwise every kept checkpoint with begin_ckpt <= step <= end_ckpt (end_ckpt
0: no upper bound). Always the EMA parameters. For each of the SFG and NSFG subsets of the
eval.bpd_dataset split:
  (a) with eval.enable_loss, the DSM loss (the training loss's settings) on eval.num_batches
      batches of eval.batch_size;
  (b) with eval.enable_bpd, log-likelihoods by the probability-flow ODE (RK45, rtol = atol =
      1e-5, from eps = 1e-5; divergence by Hutchinson-Skilling with Rademacher probes) of the
      first eval.bpd_num_examples examples, always uniformly dequantised ((x + u) / 256, then
      the data scaler, as score_sde's bpd), as bits/dim with offset 8 for data in [0, 1] and 7
      for centred data (docs/method.md section 8). toy2d points are not quantised: they get the
      mean negative log-likelihood in nats per point instead.
MSGM should raise the NSFG bits/dim and leave the SFG bits/dim nearly unchanged.
  (c) sample metrics (msgm_jax/evaluation/sample_metrics.py; each switched by eval.nsfg_rate,
      eval.fd_classifier, eval.fid = auto | on | off): eval.num_samples samples from the EMA
      weights with the configured sampler (sample.draw_samples: data-parallel, in batches of
      sampling.batch_size, with a progress bar), each finished batch kept under
      <workdir>/eval/samples/ so a preempted eval resumes where it stopped; their nsfg_rate
      with a Wilson 95% interval (and the classifier's rate on the real SFG and NSFG test
      images: the floor and the recall), fd_classifier and fid (each also against the NSFG
      statistics and without the mean term).

Outputs go to <workdir>/eval/<tag>/, where <tag> names the settings that determine the numbers
(eval_tag: the eval, sampling and adjust sections, the seed, the data, the model and the SDE), so
results of other settings never overwrite these: settings.json (those fields),
ckpt_<step>.json per checkpoint (msgm_jax/evaluation/record.py), TensorBoard scalars
eval/<part>_<metric> under tensorboard/ (and metrics.jsonl), and one printed line per
checkpoint. A checkpoint already evaluated with these settings is not evaluated again (its line
is printed from its JSON) unless overwrite (--overwrite). The config must agree with the run's
(msgm_jax/config/agreement.py). An unreadable checkpoint is skipped with a line (the latest-only
default falls back to the newest intact one) and moved aside to <step>.corrupt when another
one reads. Each part shows a progress bar with an ETA.
"""

import contextlib
import dataclasses
import math
import os
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from msgm_jax import data
from msgm_jax.config import agreement
from msgm_jax.config import builders
from msgm_jax.training import checkpoint
from msgm_jax.evaluation import record as eval_record
from msgm_jax.diffusion import likelihood
from msgm_jax.runtime import parallel
from msgm_jax.training import progress
from msgm_jax.training import restore
from msgm_jax.training import loop as train
from msgm_jax.config import validate
from msgm_jax.evaluation.samples import SampleEval
from msgm_jax.evaluation import sample_mode as sample_lib
from msgm_jax.training import writer as writer_lib
from msgm_jax.training.heldout import (ExampleFn, dsm_fn, eval_keys, host_rng, map_examples,
                                model_batches, subset_source)
from msgm_jax.diffusion.losses import LossConfig

SUBSETS = ("sfg", "nsfg")


@dataclasses.dataclass(frozen=True)
class EvalSettings:
  """What eval mode computes (config.eval, plus the fixed ODE settings of docs/method.md
  section 8)."""

  split: str = "test"
  begin_ckpt: int = 0
  end_ckpt: int = 0
  batch_size: int = 128
  num_batches: int = 4
  enable_loss: bool = True
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
               num_batches=int(eval_cfg.num_batches),
               enable_loss=bool(eval_cfg.get("enable_loss", True)),
               enable_bpd=bool(eval_cfg.enable_bpd),
               bpd_num_examples=int(eval_cfg.bpd_num_examples),
               divergence=divergence)


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
  show_progress: a bar with ETA per part (stderr).
  """

  def __init__(self, spec: data.DataSpec, sde, build_score_fn: Callable, loss_cfg: LossConfig,
               devices: Sequence, settings: EvalSettings, *, seed: int, init_key: jax.Array,
               build_flow_score_fn: Optional[Callable] = None, show_progress: bool = False):
    self.spec, self.devices, self.settings, self.seed = spec, devices, settings, seed
    self.show_progress, self.label = show_progress, ""
    self.sources = {s: subset_source(spec, settings.split, s) for s in SUBSETS}
    self.dsm_key, self.lik_key = eval_keys(init_key)
    self.p_dsm = parallel.data_parallel_map(dsm_fn(build_score_fn, sde, loss_cfg), devices,
                                            distinct_keys=False)
    self.p_lik = parallel.data_parallel_map(
        likelihood_fn(build_flow_score_fn or build_score_fn, sde, settings), devices)

  def _bar(self, subset: str, part: str, n_examples: int, batch: int) -> progress.Progress:
    n = min(n_examples, len(self.sources[subset]))
    return progress.Progress(-(-n // batch), enabled=self.show_progress and n > 0,
                             desc=f"{self.label}{subset} {part}", unit="batch")

  def dsm(self, p_variables, subset: str) -> Dict[str, Any]:
    s = self.settings
    n = s.batch_size * s.num_batches
    batches = model_batches(self.spec, self.sources[subset], s.batch_size, n,
                            host_rng(self.seed, subset, 0))
    with self._bar(subset, "dsm", n, s.batch_size) as bar:
      losses = map_examples(self.p_dsm, p_variables, batches, self.dsm_key, self.devices,
                            on_batch=bar.update)["loss"]
    return {"dsm_loss": float(np.mean(losses)), "dsm_examples": len(losses)}

  def likelihood_batch(self) -> int:
    """The likelihood batch: eval.batch_size, or fewer when fewer examples are asked for."""
    n_dev = parallel.device_count(self.devices)
    return min(self.settings.batch_size, -(-self.settings.bpd_num_examples // n_dev) * n_dev)

  def likelihood(self, p_variables, subset: str) -> Dict[str, Any]:
    """{'bpd' | 'nll', its stderr, 'likelihood_examples', 'nfe'} of the first
    settings.bpd_num_examples examples of `subset`, uniformly dequantised."""
    s, batch = self.settings, self.likelihood_batch()
    spec = dataclasses.replace(self.spec, uniform_dequantization=True)
    batches = model_batches(spec, self.sources[subset], batch, s.bpd_num_examples,
                            host_rng(self.seed, subset, 1))
    key = jax.random.fold_in(self.lik_key, SUBSETS.index(subset))
    with self._bar(subset, "likelihood", s.bpd_num_examples, batch) as bar:
      out = map_examples(self.p_lik, p_variables, batches, key, self.devices,
                         on_batch=bar.update)
    return {**likelihood_summary(out["logp"], self.spec), "likelihood_examples": len(out["logp"]),
            "nfe": float(np.mean(out["nfe"]))}

  def __call__(self, p_variables, label: str = "") -> Dict[str, Dict[str, Any]]:
    """{'sfg': {...}, 'nsfg': {...}} for replicated variables; `label` prefixes the progress
    bars (e.g. 'eval step 20: ')."""
    self.label = label
    results = {}
    for subset in SUBSETS:
      results[subset] = self.dsm(p_variables, subset) if self.settings.enable_loss else {}
      if self.settings.enable_bpd:
        results[subset].update(self.likelihood(p_variables, subset))
    return results


def make_record(step: int, results: Dict[str, Dict[str, Any]], spec: data.DataSpec,
                settings: EvalSettings) -> Dict[str, Any]:
  """The record of one checkpoint (msgm_jax/evaluation/record.py) from the results of its parts."""
  record = {"step": int(step), "params": "ema", "split": settings.split, **results}
  if settings.enable_bpd:
    record["likelihood"] = {
        "divergence": settings.divergence, "rtol": settings.rtol, "atol": settings.atol,
        "eps": settings.eps, "unit": "nats/point" if spec.is_points else "bits/dim",
        "dequantization": "none" if spec.is_points else "uniform",
        "offset": None if spec.is_points else bpd_offset(spec)}
  return record


def eval_tag(config) -> str:
  """Names the settings that determine eval's numbers (see the module docstring)."""
  return agreement.settings_tag(
      config, ("seed", "eval.", "sampling.", "adjust.", "training.sde", "training.continuous",
               "training.reduce_mean", "training.likelihood_weighting", "data.", "model."),
      exclude=("eval.begin_ckpt", "eval.end_ckpt", "data.data_dir", "data.cache_dir") +
      builders.unused_sampling_fields(config.sampling))


def _readable(ckpt: checkpoint.Checkpointer, steps: List[int], template, latest_only: bool):
  """(step, state) for each checkpoint to evaluate that reads; the latest-only default falls
  back to the newest intact one. In a range, an unreadable one is skipped with a line, and
  moved aside at the end if another one read (then the fault is that file's)."""
  if latest_only:
    step, state, _ = ckpt.restore_newest(template)
    yield step, state
    return
  failed, read = [], False
  for step in steps:
    try:
      state, _ = ckpt.restore(step, template)
    except checkpoint.CheckpointUnreadable as e:
      logging.warning("%s; skipped", e)
      failed.append(e)
      continue
    read = True
    yield step, state
  if failed and not read:
    raise checkpoint.CheckpointUnreadable(
        f"no checkpoint to evaluate can be read ({'; '.join(map(str, failed))})")
  for e in failed:
    logging.warning("moved %s aside to %s", ckpt.path(e.step), ckpt.set_aside(e.step))


def _describe(settings: EvalSettings, evaluator: Evaluator, sample_eval) -> str:
  parts = []
  if settings.enable_loss:
    parts.append(f"the DSM loss of {settings.num_batches} x {settings.batch_size} examples")
  if settings.enable_bpd:
    parts.append(f"the likelihoods of {settings.bpd_num_examples} (batches of "
                 f"{evaluator.likelihood_batch()})")
  if sample_eval is not None:
    parts.append(f"{', '.join(sample_eval.metrics.metrics)} of {sample_eval.num_samples} samples")
  return "; ".join(parts) or "nothing (every metric is switched off)"


class EvalTools(NamedTuple):
  """The compiled functions of one set of eval settings (eval_tag's), for any run."""

  evaluator: Evaluator
  samples: Optional[SampleEval]


def _tools(config, run: train.Run, show_progress: bool, cache: dict) -> EvalTools:
  settings = EvalSettings.from_config(config.eval)
  adjust = builders.adjustment(config, run.spec, run.sde)  # training-free moderation
  builds = [builders.score_fn_builder(run.model, run.sde, config.training.continuous,
                                      train=False, flow=flow) for flow in (False, True)]
  if adjust is not None:  # losses and likelihoods of the adjusted score, as its samples
    builds = [lambda variables, rng, plain=b: adjust(plain(variables, rng)) for b in builds]
  evaluator = Evaluator(run.spec, run.sde, builds[0], run.step_cfg.loss, run.devices, settings,
                        seed=config.seed, init_key=run.init_key, build_flow_score_fn=builds[1],
                        show_progress=show_progress)
  return EvalTools(evaluator, SampleEval.build(run, show_progress, adjust, cache))


def evaluate(config, workdir: str, *, allow_config_change: bool = False,
             overwrite: bool = False, cache: Optional[dict] = None) -> Dict[int, Dict[str, Any]]:
  """Eval mode (see the module docstring); returns {step: record}.

  cache: a dict the caller keeps across calls (an experiment evaluating many runs in one
  process): the compiled functions of one set of eval settings (EvalTools) are built once,
  not per run.
  """
  validate.check_config(config)
  settings = EvalSettings.from_config(config.eval)
  tag = eval_tag(config)
  outdir, is_main = os.path.join(workdir, "eval", tag), jax.process_index() == 0
  with contextlib.closing(restore.open_checkpoints(workdir)) as ckpt:
    train.check_agreement(config, ckpt, allow_config_change)
    latest_only = settings.begin_ckpt == 0 and settings.end_ckpt == 0
    steps = select_steps(ckpt.all_steps(), settings.begin_ckpt, settings.end_ckpt)
    records = {} if overwrite else {s: eval_record.previous(outdir, s) for s in steps}
    records = {s: r for s, r in records.items() if r is not None}
    todo = [s for s in steps if s not in records]
    if not todo:
      return records
    run = train.build_run(config, workdir)
    key = (tag, tuple(str(d) for d in run.devices))
    cache = {} if cache is None else cache
    if key not in cache:
      cache[key] = _tools(config, run, is_main, cache)
    evaluator, sample_eval = cache[key]
    store_root = os.path.join(workdir, "eval", "samples")
    logging.info("eval of %s -> %s: per subset (SFG, NSFG) %s",
                 "the latest checkpoint" if latest_only else f"steps {todo}", outdir,
                 _describe(settings, evaluator, sample_eval))
    if is_main:
      eval_record.write_settings(outdir, config, tag)
    for step, state in _readable(ckpt, todo, restore.state_template(run), latest_only):
      earlier = None if step in todo or overwrite else eval_record.previous(outdir, step)
      if earlier is not None:  # the latest-only fallback landed on an evaluated checkpoint
        records[step] = earlier
        continue
      p_ema = parallel.replicate(state.ema_params, run.devices)
      label = f"eval step {step}: "
      results = evaluator(p_ema, label=label)
      if sample_eval is not None:
        for subset, rate in sample_eval.real_rates().items():  # the floor and the recall
          results[subset].update(rate)
        store = sample_lib.store_dir(store_root, config, step, run.n_global)
        results["samples"] = sample_eval(p_ema, store, label)
      records[step] = make_record(step, results, run.spec, settings)
      # One event file per evaluation; an earlier result of this step (--overwrite) goes.
      with contextlib.closing(writer_lib.MetricWriter(outdir, enabled=is_main,
                                                      keep=lambda s, step=step: s != step)) as w:
        if is_main:
          path = eval_record.write_record(outdir, records[step], w)
          print(eval_record.summary_line(records[step], path), flush=True)
  return records
