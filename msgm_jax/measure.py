"""Measuring compiled functions: compile time, XLA's FLOP count, wall time, and hardware peaks.

Pure helpers with no knowledge of configs or models; msgm_jax/bench.py composes them.
"""

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


def time_calls(call: Callable[[], Any], steps: int, warmup: int = 1) -> Dict[str, float]:
  """Wall seconds of `call()` (blocked until its outputs are ready): median, min, max over
  `steps` timed calls after `warmup` untimed ones."""
  if steps < 1:
    raise ValueError(f"steps={steps} must be at least 1")
  for _ in range(warmup):
    jax.block_until_ready(call())
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    jax.block_until_ready(call())
    times.append(time.perf_counter() - t0)
  return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def throughput(flops_per_call: Optional[float], seconds: float, n_devices: int,
               peak: Optional[float]) -> Dict[str, Optional[float]]:
  """Achieved FLOP/s over all devices and MFU (achieved / (peak x devices)) when known.

  flops_per_call: one device's FLOPs for one call (what XLA reports under pmap)."""
  if flops_per_call is None or seconds <= 0:
    return {"flops_per_s": None, "mfu": None}
  achieved = flops_per_call * n_devices / seconds
  return {"flops_per_s": achieved, "mfu": achieved / (peak * n_devices) if peak else None}


def device_info(devices: Sequence) -> Dict[str, Any]:
  return {"backend": jax.default_backend(), "device_kind": devices[0].device_kind,
          "device_count": len(devices), "process_count": jax.process_count()}
