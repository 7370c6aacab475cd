"""Where a compiled step's time goes: per-operation times from the JAX profiler, by category.

XLA:CPU runs a compiled program as a sequence of thunks named after the HLO instructions of the
optimised module (fusions, convolutions, dots, copies); the profiler records each as a complete
event. `profile_calls` traces a few calls, matches those events to the module's instructions and
sums their durations per category:

  conv forward / conv input grad / conv weight grad : convolutions (a weight gradient is the
      convolution whose window spans the feature map, not the kernel: its window outnumbers
      its output pixels, which misnames the forward pass of feature maps smaller than 3x3)
  matmul forward / matmul backward                  : dots (1x1 NIN layers, dense, attention)
  layout copy                                       : transposes and copies (e.g. the weight
      gradient's inputs moved to batch-minor layout)
  random bits                                       : threefry hashing (dropout masks, noise)
  reduce forward / reduce backward                  : fusions with a reduction (norm statistics)
  elementwise forward / elementwise backward        : every other fusion

(while loops, conditionals and calls are not summed: their bodies' operations are), and per
model component (the module named in the instructions' op_name metadata: GroupNorm,
Dropout, Conv, ...). Backward means the instruction comes from the transposed (VJP) program.
`python -m msgm_jax.tools.bench --what=profile` prints it for a config's train step (summed over the
local devices). On other backends the events may be named differently and fewer match.
"""

import collections
import glob
import gzip
import json
import math
import os
import re
import tempfile
from typing import Any, Callable, Dict, List, Tuple

import jax

_INSTR = re.compile(r"\s*(?:ROOT )?%([\w.\-]+) = .*?\s([\w\-]+)\(")  # shapes may be tuples
_RANDOM = re.compile(r"threefry|random_bits|_uniform|_bernoulli|_normal|shift-right-logical")
CONTROL = "control flow"
_COMPONENTS = ("GroupNorm", "Dropout", "Conv", "NIN", "Dense", "AttnBlock", "Upsample",
               "Downsample", "concatenate")  # and swish, which traces as "jit(silu)"


def parse_hlo(text: str) -> Tuple[Dict[str, List[str]], Dict[str, Tuple[str, str]]]:
  """Optimised HLO text -> ({computation: lines}, {instruction: (opcode, line)}) where the
  instructions are those that run on their own (not inside a fusion or a reducer)."""
  comps: Dict[str, List[str]] = {}
  current = None
  for line in text.splitlines():
    head = re.match(r"^(?:ENTRY )?%([\w.\-]+) ", line)
    if head and line.rstrip().endswith("{"):
      current = comps.setdefault(head.group(1), [])
    elif line.startswith("}"):
      current = None
    elif current is not None:
      current.append(line)
  # Instructions inside fused computations and reducers never run as thunks of their own.
  inner = {c for lines in comps.values() for line in lines
           for c in re.findall(r"(?:(?<= )calls|to_apply)=%([\w.\-]+)", line)
           if " fusion(" in line or "to_apply=" in line}
  instrs = {}
  for comp, lines in comps.items():
    if comp in inner:
      continue
    for line in lines:
      m = _INSTR.match(line)
      if m:
        instrs[m.group(1)] = (m.group(2), line)
  return comps, instrs


def _body(name: str, comps, instrs) -> List[str]:
  """The instruction's line and the lines of the computations it calls (one level)."""
  line = instrs[name][1]
  out = [line]
  for called in re.findall(r"(?:calls|to_apply)=%([\w.\-]+)", line):
    out.extend(comps.get(called, []))
  return out


def _window(conv_line: str) -> int:
  """The number of positions in a convolution's window (1 without a window)."""
  m = re.search(r"window=\{size=([\dx]+)", conv_line)
  return math.prod(int(v) for v in m.group(1).split("x")) if m else 1


def _out_pixels(conv_line: str) -> int:
  """The number of spatial positions of a convolution's output (its '->b01f' digits)."""
  shape = re.search(r"= \w+\[([\d,]*)\]", conv_line)
  labels = re.search(r"->(\w+)", conv_line)
  if not shape or not labels:
    return 1
  dims = [int(v) for v in shape.group(1).split(",") if v]
  return math.prod(d for d, l in zip(dims, labels.group(1)) if l.isdigit())


def _conv_role(conv_line: str) -> str:
  # A weight gradient sums over the feature map: its window is the map and its output the
  # kernel, so the window outnumbers the output pixels (XLA may leave it without metadata).
  if _window(conv_line) > _out_pixels(conv_line):
    return "conv weight grad"
  return "conv input grad" if "transpose(" in conv_line else "conv forward"


def categorize(text: str) -> Dict[str, Tuple[str, str]]:
  """{instruction: (category, component)} for the optimised HLO module `text`."""
  comps, instrs = parse_hlo(text)
  out = {}
  for name, (opcode, _) in instrs.items():
    body = _body(name, comps, instrs)
    joined = "\n".join(body)
    bwd = "transpose(" in joined
    convs = [l for l in body if " convolution(" in l]
    if convs:
      cat = _conv_role(convs[0])
    elif " dot(" in joined:
      cat = "matmul backward" if bwd else "matmul forward"
    elif opcode in ("copy", "transpose") or re.search(r"ROOT %\S+ = \S+ (copy|transpose)\(",
                                                         joined):
      cat = "layout copy"
    elif opcode in ("while", "conditional", "call"):
      cat = CONTROL  # its body's instructions are timed themselves
    elif _RANDOM.search(joined):
      cat = "random bits"
    elif " reduce(" in joined:
      cat = "reduce backward" if bwd else "reduce forward"
    elif opcode in ("fusion", "add", "multiply", "subtract", "divide", "select", "exponential",
                    "concatenate", "slice", "pad", "broadcast", "convert"):
      cat = "elementwise backward" if bwd else "elementwise forward"
    else:
      cat = "other"
    out[name] = (cat, _component(joined))
  return out


def _component(joined: str) -> str:
  counts = collections.Counter()
  for op_name in re.findall(r'op_name="([^"]+)"', joined):
    parts = [p.split("_")[0] for p in op_name.split("/")]
    hit = [p for p in parts if p.startswith(_COMPONENTS) or "silu" in p]
    counts[hit[-1] if hit else "other"] += 1
  return counts.most_common(1)[0][0] if counts else "other"


def _trace_events(trace_dir: str) -> List[Dict[str, Any]]:
  files = sorted(glob.glob(os.path.join(trace_dir, "plugins", "profile", "*",
                                        "perfetto_trace.json.gz")))
  if not files:
    raise RuntimeError(f"the profiler wrote no perfetto trace under {trace_dir}")
  with gzip.open(files[-1], "rt", encoding="utf-8") as f:
    data = json.load(f)
  return data["traceEvents"] if isinstance(data, dict) else data


def summarize(events, categories: Dict[str, Tuple[str, str]], calls: int,
              top: int = 15) -> Dict[str, Any]:
  """Sums complete events named after instructions: ms per call by category and component."""
  by_cat, n_cat = collections.Counter(), collections.Counter()
  by_comp, per_op = collections.Counter(), collections.Counter()
  matched = 0.0
  for e in events:
    if e.get("ph") != "X":
      continue
    name, dur = e.get("name", ""), float(e.get("dur", 0.0)) / 1e3  # microseconds -> ms
    if name not in categories:  # runtime and host events (dispatch, waits, the executor)
      continue
    cat, comp = categories[name]
    if cat == CONTROL:
      continue
    by_cat[cat] += dur
    n_cat[cat] += 1
    by_comp[f"{cat} | {comp}"] += dur
    per_op[name] += dur
    matched += dur
  per_call = lambda c: {k: round(v / calls, 2) for k, v in c.most_common()}
  return {
      "calls": calls,
      "op_ms_per_call": round(matched / calls, 1),
      "ms_per_call": per_call(by_cat),
      "ops_per_call": {k: n_cat[k] // calls for k in by_cat},
      "by_component": per_call(by_comp),
      "top_ops": [{"op": n, "ms": round(v / calls, 2), "category": categories[n][0],
                   "component": categories[n][1]} for n, v in per_op.most_common(top)],
  }


def profile_calls(call: Callable[[], Any], compiled, calls: int = 3) -> Dict[str, Any]:
  """Runs `call()` (which runs the AOT-compiled `compiled` and blocks) `calls` times under the
  profiler and summarises its operations (see the module docstring)."""
  categories = categorize(compiled.as_text())
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
    try:
      for _ in range(calls):
        jax.block_until_ready(call())
    finally:
      jax.profiler.stop_trace()
    events = _trace_events(trace_dir)
  return summarize(events, categories, calls)
