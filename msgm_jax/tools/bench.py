"""Speed of training, PC sampling and ODE sampling for a config, printed as one JSON object.

  python -m msgm_jax.tools.bench --config=configs/<file>.py [--steps=10] [--what=all|train|forward|...]
      [--conv=xla,hybrid] [--sample_steps=20] [--out=bench.json] [--config.<field>=...]
  python -m msgm_jax.tools.bench --config=configs/<file>.py --what=flops   # FLOPs only, no compile
  python -m msgm_jax.tools.bench --config=configs/<file>.py --what=profile --steps=3  # per-op times

Nothing is read from disk but the config: batches are random arrays of the data's shape, so a
dataset need not be prepared. Every function is compiled ahead of time (the compile seconds are
reported), run `--warmup` times, then timed `--steps` times (wall and process CPU seconds, and
the load average of the host). `--what=forward` times one eval-mode network evaluation on
sampling.batch_size inputs (not part of 'all'); `--what=fast` the fixed-grid samplers
(msgm_jax/diffusion/fast_sampling.py) at sampling.num_steps steps, each a whole sample (not part of
'all' either). FLOPs come from XLA's cost analysis
of one train step / one score evaluation (per device under pmap); MFU divides the achieved
FLOP/s by the chip's peak (measure.PEAK_FLOPS) times the device count. How to read the numbers:
docs/performance.md.
"""

import json
import sys
from typing import Any, Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from msgm_jax.config import builders
from msgm_jax.diffusion import fast_sampling
from msgm_jax.tools import measure
from msgm_jax.tools import opprofile
from msgm_jax.runtime import parallel
from msgm_jax.training import loop as train
from msgm_jax.models.summary import param_count

FLAGS = flags.FLAGS


def _define_flags():
  """Flags of the command, defined only when it runs (so importing the module never clashes
  with another command's flags)."""
  config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).",
                                  lock_config=True)
  flags.DEFINE_integer("steps", 10, "Timed calls per measurement (after the warm-up).")
  flags.DEFINE_integer("warmup", 2, "Untimed calls after compilation.")
  flags.DEFINE_enum("what", "all", ["train", "forward", "sample", "ode", "fast", "all", "flops",
                                    "profile"],
                    "What to measure ('all': train, sample and ode; 'fast': the fixed-grid "
                    "samplers ddim, dpm_solver and heun that the SDE takes, at "
                    "sampling.num_steps steps; 'flops': only XLA's FLOP "
                    "count of a train step, nothing compiled or run; 'profile': where the train "
                    "step's time goes, per operation category, over --steps calls).")
  flags.DEFINE_list("conv", [], "Also time the train step with each of these model.conv_impl "
                    "values (e.g. xla,hybrid,im2col,auto): the CPU convolution choice.")
  flags.DEFINE_integer("sample_steps", 20, "PC steps actually run per timed sample; the time of a "
                       "1000-step sample is scaled from them (every step costs the same).")
  flags.DEFINE_string("out", None, "Also write the JSON to this file.")
  flags.mark_flags_as_required(["config"])


def _random_batch(run: train.Run) -> Dict[str, np.ndarray]:
  """One global batch of the shape training feeds: [n_dev, k, B_dev, ...] leaves."""
  cfg = run.config.training
  rng = np.random.default_rng(0)

  def part(b):
    return rng.uniform(-1, 1, (b,) + run.shape).astype(np.float32), np.arange(b, dtype=np.int32)

  k = cfg.steps_per_call
  sfg, sfg_ids = part(cfg.batch_size)
  batch = {"sfg": sfg, "sfg_ids": sfg_ids}
  if run.step_cfg.msgm is not None:
    nsfg, nsfg_ids = part(run.config.msgm.nsfg_batch_size or cfg.batch_size)
    batch.update(nsfg=nsfg, nsfg_ids=nsfg_ids)
  stacked = {name: np.stack([v] * k) for name, v in batch.items()}
  return parallel.put_sharded(parallel.shard(stacked, run.n_dev, batch_axis=1), run.devices)


def _peak(run: train.Run) -> Optional[float]:
  return measure.peak_flops(run.devices[0].device_kind, str(jnp.dtype(run.config.model.dtype)))


def _step_flops(p_step, state, batch, pattern) -> Optional[float]:
  """One device's XLA FLOPs for one step. XLA counts a loop body once, so they come from one
  step (lowered only, not compiled)."""
  one = jax.tree.map(lambda x: x[:, :1], batch)
  return measure.lowered_flops(p_step, state, one, jax.random.key(0),
                               None if pattern is None else pattern[:1])


def train_flops(config) -> Dict[str, Any]:
  """XLA's FLOPs of one train step of `config` on one device at the global batch, from the
  lowered program of abstract parameters (nothing is initialised, compiled or run, so the
  paper's configs fit on a CPU); for the MSGM regime a moderating step, a skipped one and
  their `average` over msgm.period. Also the bytes a data-parallel step all-reduces: float32
  gradients of every parameter (`grad_allreduce_bytes`)."""
  config = _with(config, **{"training.num_devices": 1, "training.steps_per_call": 1})
  rows = {"dsm": _with(config, **{"training.regime": "standard"})}
  if config.training.regime == "msgm":
    rows = {"moderating": _with(config, **{"msgm.period": 1}),
            "skipped": _with(config, **{"msgm.period": 2**30}), **rows}
  out = {}
  for name, cfg in rows.items():
    run = train.build_run(cfg, workdir="")
    # [1, ...] leaves: the state as replicated onto the one device.
    state = jax.tree.map(lambda x: jax.ShapeDtypeStruct((1,) + x.shape, x.dtype),
                         jax.eval_shape(lambda r=run: train.fresh_state(r)))
    out[name] = _step_flops(train.compiled_step(run), state, _random_batch(run),
                            train.moderation_pattern(run, 1, 1))
  if "moderating" in out and None not in out.values():
    period = config.msgm.period
    out["average"] = (out["moderating"] + (period - 1) * out["skipped"]) / period
  run = train.build_run(config, workdir="")
  out["params"] = param_count(run.model, run.shape)
  out["grad_allreduce_bytes"] = 4 * out["params"]
  return out


def _train_call(run: train.Run):
  """The AOT-compiled train step on a random batch -> (call, compiled, compile_s, flops); each
  call() runs the steps that the first call of a run (from step 1) would and returns the loss."""
  k = run.config.training.steps_per_call
  state = parallel.replicate(train.fresh_state(run), run.devices)
  batch = _random_batch(run)
  p_step = train.compiled_step(run)
  pattern = train.moderation_pattern(run, 1, k)
  compiled, compile_s = measure.compile_timed(p_step, state, batch, run.key, pattern)
  flops = _step_flops(p_step, state, batch, pattern)
  box = {"state": state}

  def call():
    box["state"], metrics = compiled(box["state"], batch, run.key)
    return metrics["loss"]

  return call, compiled, compile_s, flops


def bench_train(run: train.Run, steps: int, warmup: int) -> Dict[str, Any]:
  """Seconds per optimisation step (a call runs training.steps_per_call of them).

  Every timed call runs the steps that the first call of a run (from step 1) would: for the
  moderated and skipped MSGM rows, msgm_rows sets msgm.period so that all of them moderate or
  none does."""
  k = run.config.training.steps_per_call
  call, _, compile_s, flops = _train_call(run)
  seconds = measure.time_calls(call, steps, warmup)
  per_step = measure.scale_times(seconds, 1.0 / k)
  global_batch = run.config.training.batch_size
  out = {"global_batch": global_batch, "steps_per_call": k, "compile_s": compile_s,
         "step_time_s": per_step, "images_per_s": global_batch / per_step["median"],
         "flops_per_step": flops * run.n_dev if flops else None}
  out.update(measure.throughput(flops, per_step["median"], run.n_dev, _peak(run)))
  return out


def profile_train(config, steps: int, warmup: int) -> Dict[str, Any]:
  """Per-operation profile of the train step (opprofile.py), ms per call; an MSGM config's
  step moderates (msgm.period = 1). Profiling slows the step; time it with --what=train."""
  if config.training.regime == "msgm":
    config = _with(config, **{"msgm.period": 1})
  call, compiled, _, _ = _train_call(train.build_run(config, workdir=""))
  for _ in range(max(warmup, 1)):
    jax.block_until_ready(call())
  return {"steps_per_call": config.training.steps_per_call,
          **opprofile.profile_calls(call, compiled, steps)}


def _with(config, **fields):
  """A copy of config with section.field=value overrides ({"msgm.period": 1})."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    for name, value in fields.items():
      section, field = name.split(".")
      config[section][field] = value
  return config


def msgm_rows(config, steps: int, warmup: int) -> Dict[str, Any]:
  """An MSGM config's step three ways on the same model and batch: every step moderating
  (`train`: what an MSGM step costs), no step moderating (`train_skipped`: the off-period
  steps) and the plain DSM step of the standard regime (`train_dsm`), and the ratio
  `msgm_over_dsm` of the first to the last (an MSGM step runs two forward-backward passes)."""
  big = 2**30  # only step 0, which the warm-up runs, is a multiple of it
  rows = {"train": _with(config, **{"msgm.period": 1}),
          "train_skipped": _with(config, **{"msgm.period": big}),
          "train_dsm": _with(config, **{"training.regime": "standard"})}
  out = {name: bench_train(train.build_run(cfg, workdir=""), steps, warmup)
         for name, cfg in rows.items()}
  out["train"]["moderation"] = "every step"
  msgm, dsm = out["train"]["step_time_s"], out["train_dsm"]["step_time_s"]
  out["msgm_over_dsm"] = msgm["median"] / dsm["median"]
  out["msgm_over_dsm_cpu"] = msgm["cpu_median"] / dsm["cpu_median"]  # steadier on a busy host
  return out


def _score_eval(run: train.Run, batch: int):
  """The data-parallel eval-mode score fn(variables, (x, t), key) and its inputs after the
  variables, `batch` per device."""
  build = builders.score_fn_builder(run.model, run.sde, run.config.training.continuous,
                                    train=False)
  fn = parallel.data_parallel_map(lambda v, xt, key: build(v, None)(*xt), run.devices,
                                  distinct_keys=False)
  x = np.random.default_rng(0).standard_normal((run.n_dev, batch) + run.shape)
  xt = (jnp.asarray(x, jnp.float32), jnp.full((run.n_dev, batch), 0.5))
  return fn, (xt, jax.random.key(0))


def _score_flops(run: train.Run, variables, batch: int) -> Optional[float]:
  """One device's FLOPs for one score evaluation of a [batch, ...] input."""
  fn, inputs = _score_eval(run, batch)
  return measure.lowered_flops(fn, variables, *inputs)


def bench_forward(config, steps: int, warmup: int) -> Dict[str, Any]:
  """One evaluation of the score network (eval mode) on sampling.batch_size inputs, outside any
  sampler loop: the cost of one NFE."""
  run = train.build_run(config, workdir="")
  per_dev = -(-config.sampling.batch_size // run.n_dev)
  fn, inputs = _score_eval(run, per_dev)
  variables = parallel.replicate(train.fresh_state(run).ema_params, run.devices)
  compiled, compile_s = measure.compile_timed(fn, variables, *inputs)
  seconds = measure.time_calls(lambda: compiled(variables, *inputs), steps, warmup)
  flops = measure.lowered_flops(fn, variables, *inputs)
  out = {"batch": per_dev * run.n_dev, "compile_s": compile_s, "seconds": seconds,
         "images_per_s": per_dev * run.n_dev / seconds["median"],
         "flops": flops * run.n_dev if flops else None}
  out.update(measure.throughput(flops, seconds["median"], run.n_dev, _peak(run)))
  return out


def bench_sample(config, steps: int, warmup: int, method: str,
                 sample_steps: int) -> Dict[str, Any]:
  """The training loop's sampler (train.make_sampler) with sampling.method = `method`: PC
  (`sample_steps` steps timed, scaled to 1000), the probability-flow ODE, or a fixed-grid
  sampler (ddim, dpm_solver, heun) at sampling.num_steps steps, timed whole."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.sampling.method = method
    if method == "pc":
      config.model.num_scales = sample_steps
  run = train.build_run(config, workdir="")
  spec = builders.SamplerSpec.from_config(config.sampling)
  per_dev = -(-config.sampling.batch_size // run.n_dev)
  p_sample = train.make_sampler(run, with_nfe=True)
  variables = parallel.replicate(train.fresh_state(run).ema_params, run.devices)
  key = jax.random.key(0)
  compiled, compile_s = measure.compile_timed(p_sample, key, variables)
  nfe_box = {}

  def call():
    x, nfe = compiled(key, variables)
    nfe_box["nfe"] = nfe
    return x

  seconds = measure.time_calls(call, steps, warmup)
  nfe = int(np.max(parallel.gather(nfe_box["nfe"])))
  flops_per_nfe = _score_flops(run, variables, per_dev)
  out = {"batch": per_dev * run.n_dev, "compile_s": compile_s, "nfe": nfe,
         "seconds": seconds, "nfe_per_s": nfe / seconds["median"],
         "flops_per_nfe": flops_per_nfe * run.n_dev if flops_per_nfe else None}
  if method == "pc":
    out.update(steps_timed=sample_steps, predictor=spec.predictor, corrector=spec.corrector,
               seconds_per_1000_steps=seconds["median"] * 1000 / sample_steps)
  elif method in fast_sampling.FAST_SAMPLERS:
    out.update(num_steps=spec.num_steps)
  else:
    out.update(rtol=spec.ode_tol, atol=spec.ode_tol)
  out.update(measure.throughput(flops_per_nfe * nfe if flops_per_nfe else None,
                                seconds["median"], run.n_dev, _peak(run)))
  return out


def run_bench(config, what: str = "all", steps: int = 10, warmup: int = 2,
              conv=(), sample_steps: int = 20) -> Dict[str, Any]:
  """The JSON-ready measurements of `config` (see the module docstring)."""
  if what == "flops":
    return {"model": config.model.name, "train_flops": train_flops(config)}
  if what == "profile":
    return {"model": config.model.name, "profile": profile_train(config, steps, warmup)}
  run = train.build_run(config, workdir="")
  result = {**measure.device_info(run.devices), "dtype": str(jnp.dtype(config.model.dtype)),
            "model": config.model.name, "data_shape": list(run.shape),
            "params": param_count(run.model, run.shape),
            "peak_flops_per_device": _peak(run)}
  if what in ("train", "all"):
    if run.step_cfg.msgm is not None:
      result.update(msgm_rows(config, steps, warmup))
    else:
      result["train"] = bench_train(run, steps, warmup)
  if what == "forward":
    result["forward"] = bench_forward(config, steps, warmup)
  if what in ("sample", "all"):
    result["sample"] = bench_sample(config, steps, warmup, "pc", sample_steps)
  if what in ("ode", "all"):
    result["ode"] = bench_sample(config, steps, warmup, "ode", sample_steps)
  if what == "fast":
    for method in fast_sampling.FAST_SAMPLERS:
      if isinstance(run.sde, fast_sampling.FAST_SAMPLERS.get(method).sdes):
        result[method] = bench_sample(config, steps, warmup, method, sample_steps)
  if conv:
    result["conv"] = {}
    for impl in conv:
      cfg = _with(config, **{"model.conv_impl": impl})
      if run.step_cfg.msgm is not None:
        cfg = _with(cfg, **{"msgm.period": 1})  # time the moderating step
      result["conv"][impl] = bench_train(train.build_run(cfg, workdir=""), steps, warmup)
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)
  try:
    result = run_bench(FLAGS.config, FLAGS.what, FLAGS.steps, FLAGS.warmup, FLAGS.conv,
                       FLAGS.sample_steps)
  except ValueError as e:
    print(f"msgm_jax.tools.bench: error: {e}", file=sys.stderr)
    sys.exit(2)
  text = json.dumps(result, indent=2)
  print(text)
  if FLAGS.out:
    with open(FLAGS.out, "w", encoding="utf-8") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
