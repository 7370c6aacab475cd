"""Measuring compiled functions: compile time, XLA's FLOP count, wall time, and hardware peaks.

Pure helpers with no knowledge of configs or models; msgm_jax/tools/bench.py composes them.
"""

import os
import statistics
import time
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import jax

# Dense peak FLOP/s per chip as published by the vendors, for the compute dtype XLA actually uses:
# bf16 for bfloat16 models; for float32 models GPUs run matmuls and convolutions as TF32 at
# JAX's default precision and TPUs as one bf16 pass, so those peaks apply. Keys are matched
# against jax.Device.device_kind (lower-cased substrings, first match wins).
PEAK_FLOPS: Tuple[Tuple[str, Dict[str, float]], ...] = (
    ("h200", {"bfloat16": 989e12, "float32": 494.5e12}),
    ("h100 pcie", {"bfloat16": 756e12, "float32": 378e12}),
    ("h100", {"bfloat16": 989e12, "float32": 494.5e12}),
    ("a100", {"bfloat16": 312e12, "float32": 156e12}),
    ("tpu v4", {"bfloat16": 275e12, "float32": 275e12}),
    ("tpu v5 lite", {"bfloat16": 197e12, "float32": 197e12}),  # v5e
    ("tpu v5e", {"bfloat16": 197e12, "float32": 197e12}),
    ("tpu v5p", {"bfloat16": 459e12, "float32": 459e12}),
    ("tpu v5", {"bfloat16": 459e12, "float32": 459e12}),  # v5p reports "TPU v5"
)


def peak_flops(device_kind: str, dtype: str) -> Optional[float]:
  """The chip's dense peak FLOP/s for `dtype` ("float32" | "bfloat16"), None when unknown."""
  kind = device_kind.lower()
  for key, peaks in PEAK_FLOPS:
    if key in kind:
      return peaks.get(dtype)
  return None


def _flops_of(compiled) -> Optional[float]:
  """XLA's FLOP estimate of a lowered program (per device under pmap), else None."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except  # best effort: backends may not implement it
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  flops = cost.get("flops") if cost else None
  return float(flops) if flops is not None and flops > 0 else None


def compile_timed(fn, *args) -> Tuple[Callable, float]:
  """Lowers and compiles jitted/pmapped `fn` for `args` -> (compiled, seconds).

  The compiled executable is what the caller times, so nothing is compiled twice."""
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  return compiled, time.perf_counter() - t0


def lowered_flops(fn, *args) -> Optional[float]:
  """XLA's FLOP estimate of jitted/pmapped `fn` for `args` from the lowered (unoptimised) program,
  without compiling it. Loops are counted once, so pass one step, not a scan of k."""
  return _flops_of(fn.lower(*args))


def time_calls(call: Callable[[], Any], steps: int, warmup: int = 1) -> Dict[str, Any]:
  """Seconds of `call()` (blocked until its outputs are ready) over `steps` timed calls after
  `warmup` untimed ones: wall-clock median, min and max; `cpu_median`, the process's CPU seconds
  (all threads) per call; and every call's `wall_s` and `cpu_s`, for pooling runs. On a machine
  shared with other jobs the wall time grows with their load while the CPU time stays closer to
  the work done (docs/performance.md)."""
  if steps < 1:
    raise ValueError(f"steps={steps} must be at least 1")
  for _ in range(warmup):
    jax.block_until_ready(call())
  wall, cpu = [], []
  for _ in range(steps):
    c0, t0 = time.process_time(), time.perf_counter()
    jax.block_until_ready(call())
    wall.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
  return {"median": statistics.median(wall), "min": min(wall), "max": max(wall),
          "cpu_median": statistics.median(cpu), "wall_s": wall, "cpu_s": cpu}


def scale_times(stats: Dict[str, Any], factor: float) -> Dict[str, Any]:
  """time_calls' result with every time multiplied by `factor` (e.g. 1 / steps per call)."""
  return {k: [t * factor for t in v] if isinstance(v, list) else v * factor
          for k, v in stats.items()}


def throughput(flops_per_call: Optional[float], seconds: float, n_devices: int,
               peak: Optional[float]) -> Dict[str, Optional[float]]:
  """Achieved FLOP/s over all devices and MFU (achieved / (peak x devices)) when known.

  flops_per_call: one device's FLOPs for one call (what XLA reports under pmap)."""
  if flops_per_call is None or seconds <= 0:
    return {"flops_per_s": None, "mfu": None}
  achieved = flops_per_call * n_devices / seconds
  return {"flops_per_s": achieved, "mfu": achieved / (peak * n_devices) if peak else None}


def device_info(devices: Sequence) -> Dict[str, Any]:
  """Where it runs, and the host's 1/5/15-minute load averages (how busy the machine was)."""
  return {"backend": jax.default_backend(), "device_kind": devices[0].device_kind,
          "device_count": len(devices), "process_count": jax.process_count(),
          "cpu_count": os.cpu_count(), "loadavg": list(os.getloadavg())}
