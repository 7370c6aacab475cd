"""The samplers' trade-off against steps: NSFG rate, fd_classifier and wall time (issue 22).

  python -m msgm_jax.experiments.sampler_tradeoff --runs=runs.txt --out=docs/fast_samplers_colour

--runs names one eval command per line, as the runner in docs/fast_samplers.md writes them:

  <model label> <wall seconds> <eval record json> [--config.<field>=<value> ...]

(the record is the path eval mode's last line prints; the overrides are the command's own,
read for sampling.method, sampling.num_steps and model.num_scales; the default number of PC
steps is the run's, read from config.json beside the record's eval/ directory). A later line
for the same model and sampler replaces an earlier one (e.g. a rerun on a fresh copy, timed
without eval's stored batches). Writes <out>.md (a table per model) and <out>.png (NSFG rate
with its interval, and fd_classifier, against NFE; one line per sampler, the PC sampler and
RK45 (adaptive: a horizontal line); the reference, the PC sampler at the run's own steps,
with its interval as a band).
"""

import json
import os
import shlex
from typing import Dict, List, Optional, Sequence

from absl import app, flags

FLAGS = flags.FLAGS
FIXED_GRID = ("ddim", "dpm_solver", "heun")


def nfe(method: str, steps: int, noise_removal: bool = True) -> Optional[int]:
  """Score evaluations per sample (msgm_jax/diffusion/fast_sampling.py's counts): `steps` for
  pc, ddim and dpm_solver, 2 per step for heun, +1 for the final noise removal; None for the
  adaptive ode."""
  if method == "ode":
    return None
  per_step = 2 if method == "heun" else 1
  extra = 1 if noise_removal and method in FIXED_GRID else 0
  return per_step * steps + extra


def _overrides(args: Sequence[str]) -> Dict[str, str]:
  out = {}
  for arg in args:
    if arg.startswith("--config.") and "=" in arg:
      key, value = arg[len("--config."):].split("=", 1)
      out[key] = value
  return out


def parse_line(line: str) -> Optional[Dict]:
  """One --runs line -> {model, wall_s, record, method, steps, nfe} (None for blank/#)."""
  parts = shlex.split(line, comments=True)
  if not parts:
    return None
  if len(parts) < 3:
    raise ValueError(f"a --runs line needs '<model> <wall seconds> <record json> [overrides]', "
                     f"got {line.strip()!r}")
  model, wall, record, args = parts[0], float(parts[1]), parts[2], parts[3:]
  over = _overrides(args)
  method = over.get("sampling.method", "pc")
  eta = float(over.get("sampling.ddim_eta", 0.0)) if method == "ddim" else 0.0
  reference = False
  if method == "pc":
    default = _run_num_scales(record)
    steps = int(over.get("model.num_scales", default))
    reference = steps == default
  elif method == "ode":
    steps = None
  else:
    steps = int(over.get("sampling.num_steps", 50))
  sampler = f"ddim eta={eta:g}" if eta else method
  return {"model": model, "wall_s": wall, "record": record, "method": method,
          "sampler": sampler, "steps": steps, "reference": reference,
          "nfe": nfe(method, steps) if steps is not None else None}


def _run_num_scales(record: str) -> int:
  """model.num_scales of the run whose eval/<tag>/ckpt_<step>.json `record` is."""
  workdir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(record))))
  with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
    return int(json.load(f)["model"]["num_scales"])


def collect(lines: Sequence[str]) -> List[Dict]:
  """The rows of the table: each line's run with its record's samples metrics, the last line
  of each (model, sampler, steps) kept, in the order first seen."""
  rows: Dict[tuple, Dict] = {}
  for line in lines:
    row = parse_line(line)
    if row is None:
      continue
    with open(row["record"], encoding="utf-8") as f:
      samples = json.load(f)["samples"]
    row.update(num_samples=samples["num_samples"], nsfg_rate=samples["nsfg_rate"],
               nsfg_rate_ci=list(samples["nsfg_rate_ci"]),
               fd_classifier=samples.get("fd_classifier"))
    rows[(row["model"], row["sampler"], row["steps"])] = row
  return list(rows.values())


def _method_name(row: Dict) -> str:
  names = {"pc": "pc (Euler-Maruyama)", "ode": "ode (RK45)"}
  name = names.get(row["sampler"], row["sampler"])
  return f"**{name}, the reference**" if row["reference"] else name


def table(rows: Sequence[Dict]) -> str:
  """A markdown table per model."""
  out = []
  for model in dict.fromkeys(r["model"] for r in rows):
    out += [f"### {model}", "",
            "| sampling.method | steps | NFE | NSFG rate [Wilson 95%] | fd_classifier | wall s |",
            "|---|---|---|---|---|---|"]
    for r in (r for r in rows if r["model"] == model):
      lo, hi = r["nsfg_rate_ci"]
      fd = "" if r["fd_classifier"] is None else f"{r['fd_classifier']:.2f}"
      out.append(f"| {_method_name(r)} | {r['steps'] if r['steps'] is not None else 'adaptive'} "
                 f"| {r['nfe'] if r['nfe'] is not None else 'adaptive'} | {r['nsfg_rate']:.4f} "
                 f"[{lo:.4f}, {hi:.4f}] | {fd} | {r['wall_s']:.0f} |")
    out.append("")
  return "\n".join(out)


def figure(rows: Sequence[Dict], path: str) -> None:
  """NSFG rate (with intervals) and fd_classifier against NFE, a column per model."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  models = list(dict.fromkeys(r["model"] for r in rows))
  fig, axes = plt.subplots(2, len(models), figsize=(5.5 * len(models), 7), squeeze=False)
  for j, model in enumerate(models):
    mine = [r for r in rows if r["model"] == model]
    for sampler in dict.fromkeys(r["sampler"] for r in mine if r["method"] != "ode"):
      pts = sorted((r for r in mine if r["sampler"] == sampler), key=lambda r: r["nfe"])
      x = [r["nfe"] for r in pts]
      rate = [r["nsfg_rate"] for r in pts]
      err = [[r["nsfg_rate"] - r["nsfg_rate_ci"][0] for r in pts],
             [r["nsfg_rate_ci"][1] - r["nsfg_rate"] for r in pts]]
      style = dict(color="k", linestyle="--") if sampler == "pc" else {}
      label = "pc (Euler-Maruyama)" if sampler == "pc" else sampler
      axes[0, j].errorbar(x, rate, yerr=err, marker="o", capsize=3, label=label, **style)
      axes[1, j].plot(x, [r["fd_classifier"] for r in pts], marker="o", label=label, **style)
    for r in (r for r in mine if r["reference"]):
      axes[0, j].axhspan(*r["nsfg_rate_ci"], color="k", alpha=0.08,
                         label=f"the reference's 95% interval ({r['nfe']} NFE)")
    for r in (r for r in mine if r["method"] == "ode"):
      for i, key in enumerate(("nsfg_rate", "fd_classifier")):
        axes[i, j].axhline(r[key], color="k", linestyle=":", label="ode (RK45, adaptive)")
    for i, name in enumerate(("NSFG rate", "fd_classifier")):
      axes[i, j].set_xscale("log")
      axes[i, j].set_xlabel("NFE per sample")
      axes[i, j].set_ylabel(name)
      axes[i, j].set_title(f"{model}: {name}")
    axes[0, j].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main(argv):
  del argv
  with open(FLAGS.runs, encoding="utf-8") as f:
    rows = collect(f.read().splitlines())
  if not rows:
    raise app.UsageError(f"{FLAGS.runs} names no eval command; see this module's docstring")
  with open(f"{FLAGS.out}.md", "w", encoding="utf-8") as f:
    f.write(f"# Samplers against steps: every row\n\nWritten by `python -m "
            f"msgm_jax.experiments.sampler_tradeoff --runs={FLAGS.runs} --out={FLAGS.out}` "
            f"from {len(rows)} eval records; what they show: docs/fast_samplers.md.\n\n")
    f.write(table(rows))
  with open(f"{FLAGS.out}.json", "w", encoding="utf-8") as f:
    json.dump(rows, f, indent=1)
  figure(rows, f"{FLAGS.out}.png")
  print(table(rows))
  print(f"report: {FLAGS.out}.{{md,json,png}}")


if __name__ == "__main__":
  flags.DEFINE_string("runs", None, "The runner's lines: <model> <wall s> <record> [args].")
  flags.DEFINE_string("out", None, "Output prefix: <out>.md, <out>.json, <out>.png.")
  flags.mark_flags_as_required(["runs", "out"])
  app.run(main)
