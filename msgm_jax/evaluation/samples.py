"""Eval mode's sample metrics: draw eval.num_samples samples of a checkpoint, resumably, and
measure them (msgm_jax/evaluation/sample_metrics.py)."""

from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from msgm_jax import data
from msgm_jax.evaluation import sample_mode as sample
from msgm_jax.evaluation import sample_metrics
from msgm_jax.training import loop as train


def metrics_for(eval_cfg, spec: data.DataSpec, devices: Sequence, cache: Optional[dict] = None,
                show_progress: bool = False) -> Optional[sample_metrics.SampleMetrics]:
  """sample_metrics.build's metrics (None when none is chosen; the notices of skipped ones
  are printed), kept in `cache` (a dict the caller keeps across calls) by their settings, so
  runs with other sampler settings but the same metrics share the compiled extractors."""
  key = ("sample_metrics", sample_metrics.SampleMetricSettings.from_config(eval_cfg), spec,
         tuple(str(d) for d in devices))
  cache = {} if cache is None else cache
  if key not in cache:
    cache[key] = sample_metrics.build(eval_cfg, spec, devices, progress=show_progress)
  metrics, notices = cache[key]
  for line in notices if show_progress else ():
    print(line, flush=True)
  return metrics


class SampleEval:
  """Samples of a checkpoint's EMA weights and their metrics; `build` gives None when no
  sample metric is chosen.

  The samples are sample mode's (the config's sampler, data-parallel over the run's devices,
  sample.sample_key's stream), each finished batch kept in a store directory so a preempted
  eval resumes where it stopped. One instance serves any run with the same eval settings
  (the compiled sampler and extractors are reused).
  """

  def __init__(self, run: train.Run, metrics: sample_metrics.SampleMetrics,
               adjust: Optional[Callable] = None):
    self.run, self.metrics = run, metrics
    self.sampler = train.make_sampler(run, adjust)
    self.num_samples = int(run.config.eval.num_samples)
    self.inverse = data.get_inverse_scaler(run.spec)

  @classmethod
  def build(cls, run: train.Run, show_progress: bool, adjust: Optional[Callable] = None,
            cache: Optional[dict] = None) -> Optional["SampleEval"]:
    """cache: see metrics_for."""
    metrics = metrics_for(run.config.eval, run.spec, run.devices, cache, show_progress)
    return None if metrics is None else cls(run, metrics, adjust)

  def real_rates(self) -> Dict[str, Dict[str, Any]]:
    return self.metrics.real_rates()

  def __call__(self, p_ema, store: str, label: str = "") -> Dict[str, Any]:
    """Draws (or reads from `store`) the samples of replicated EMA variables; their metrics,
    with num_samples and nonfinite_rate (the share of diverged samples, each measured as a
    black image)."""
    x = sample.draw_samples(self.run, p_ema, self.num_samples, desc=f"{label}samples",
                            store=store, sampler=self.sampler)
    finite = np.all(np.isfinite(x.reshape(len(x), -1)), axis=1)
    x = np.where(finite.reshape((-1,) + (1,) * (x.ndim - 1)), x, 0.0)
    images = sample.to_uint8(self.inverse(x))
    return {"num_samples": len(x), "nonfinite_rate": float(1.0 - finite.mean()),
            **self.metrics(images)}
