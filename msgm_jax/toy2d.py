"""The 2-D toy reproduction (the paper's first figure): train each regime, sample, report.

    python -m msgm_jax.main --config=configs/toy2d.py --workdir=runs/toy2d

Each trained row is an ordinary training run in <workdir>/<row>/ (rerunning resumes or skips
it); training-free rows reuse a trained row's model or the exact mixture score. Writes
report.json, report.md and report.png into the workdir and prints the table.
"""

import json
import os
import re
import time
from typing import Dict, Optional

import jax
import numpy as np
from absl import logging

from msgm_jax import adjust, builders, exact, parallel, train, validate
from msgm_jax import sample as sample_lib
from msgm_jax.data import DataSpec
from msgm_jax.toy_metrics import toy_metrics

# Trained rows: config overrides (flattened keys) on top of the experiment's config.
TRAINED = {
    "standard": {"training.regime": "standard"},
    "unseen": {"training.regime": "unseen"},
    "orthogonal_elementwise": {"training.regime": "msgm", "msgm.variant": "orthogonal",
                               "msgm.form": "elementwise"},
    "orthogonal_inner": {"training.regime": "msgm", "msgm.variant": "orthogonal",
                         "msgm.form": "inner"},
    "obtuse_release": {"training.regime": "msgm", "msgm.variant": "obtuse", "msgm.sign": "release",
                       "msgm.hinge": False},
    "obtuse_repel": {"training.regime": "msgm", "msgm.variant": "obtuse", "msgm.sign": "repel",
                     "msgm.hinge": False},
    # The project's default variant: repel, hinged, margin 1 (a strictly obtuse angle).
    "obtuse_repel_hinge": {"training.regime": "msgm", "msgm.variant": "obtuse",
                           "msgm.sign": "repel", "msgm.hinge": True, "msgm.margin": 1.0},
}
# Fine-tuned rows: a trained row's overrides, started from another row's final checkpoint
# (training.init_from; the step counter restarts) for experiment.finetune_steps steps.
FINETUNED = {"finetuned_obtuse_repel_hinge": ("standard", "obtuse_repel_hinge")}
# Training-free rows: the exact scores of the full / SFG-only mixture, and a trained row's
# model under a sampling-time score adjustment (msgm_jax/adjust.py).
EXACT = ("exact_standard", "exact_sfg")
FREE = {"unseen+free_orthogonal": ("unseen", "orthogonal"),
        "unseen+free_obtuse": ("unseen", "obtuse")}
_SWEEP = re.compile(
    r"^(?P<base>[a-z_]+)@a(?P<alpha>[0-9.e-]+)p(?P<period>\d+)(m(?P<margin>[0-9.e-]+))?$")


def _rows_rule(rows) -> Optional[str]:
  """validate's rule for experiment.rows: comma-separated row names, each known."""
  if not isinstance(rows, str) or not [r for r in rows.split(",") if r.strip()]:
    return "a comma-separated list of rows"
  for name in (r.strip() for r in rows.split(",") if r.strip()):
    if name not in EXACT and name not in FREE:
      try:
        row_overrides(name)
      except ValueError as e:
        return f"a comma-separated list of known rows ({e})"
  return None


validate.SECTIONS.add("experiment", {
    "name": validate.one_of(("toy2d",)), "rows": _rows_rule,
    "num_samples": validate.POSITIVE, "seed": validate.integer(lo=0),
    "disc_radius": validate.POSITIVE_NUMBER, "nsfg_refs": validate.POSITIVE,
    "free_strength": validate.number(lo=0.0),
    "free_bandwidth": validate.number(lo=0.0), "free_max_noise": validate.POSITIVE_NUMBER,
    "finetune_steps": validate.POSITIVE})


def _finetune_source(name: str):
  """The row a fine-tuned row (also with a sweep suffix) starts from; None for other rows."""
  match = _SWEEP.match(name)
  return FINETUNED.get(match["base"] if match else name, (None,))[0]


def row_overrides(name: str) -> Dict[str, object]:
  """Overrides of a trained row; 'base@a<alpha>p<period>[m<margin>]' sets msgm.alpha,
  msgm.period (and the hinge margin)."""
  match = _SWEEP.match(name)
  if match:
    out = dict(row_overrides(match["base"]))
    out.update({"msgm.alpha": float(match["alpha"]), "msgm.period": int(match["period"])})
    if match["margin"]:
      out["msgm.margin"] = float(match["margin"])
    return out
  if name in FINETUNED:
    return row_overrides(FINETUNED[name][1])
  if name not in TRAINED:
    valid = sorted(TRAINED) + sorted(FINETUNED) + list(EXACT) + sorted(FREE)
    raise ValueError(f"unknown toy row {name!r}; valid: {', '.join(valid)} (trained rows also "
                     "as <row>@a<alpha>p<period>, e.g. obtuse_repel@a0.1p1)")
  return TRAINED[name]


def _row_config(config, name: str):
  row = config.copy_and_resolve_references()
  with row.unlocked():
    row.update_from_flattened_dict(row_overrides(name))
    row.training.snapshot_sampling = False
  return row


def _sample_trained(row_cfg, ema, n: int, key, adjust_fn=None) -> np.ndarray:
  """n samples from a trained row's EMA model, optionally with a score adjustment."""
  run = train.build_run(row_cfg, "")
  sampler = train.make_sampler(run, adjust_fn)
  return sample_lib.draw(sampler, parallel.replicate(ema, run.devices), key, n)


def _nsfg_reference(exp_cfg, mix, nsfg) -> adjust.NSFGReference:
  refs = mix.restrict(nsfg).sample(np.random.default_rng(exp_cfg.seed + 1), exp_cfg.nsfg_refs)[0]
  return adjust.NSFGReference.build(refs, bandwidth=exp_cfg.free_bandwidth or None,
                                    max_noise=exp_cfg.free_max_noise)


def _sample_exact(config, mix, components, n: int, key) -> np.ndarray:
  sde = builders.sde_from_config(config.training, config.model)
  part = mix.restrict(components)
  score_fn = exact.mixture_score_fn(sde, exact.make_mixture(part.means, part.stds, part.weights))
  spec = builders.SamplerSpec.from_config(config.sampling)
  return np.asarray(jax.jit(lambda k: spec.sample(k, sde, score_fn, (n, mix.dim))[0])(key))


def run_experiment(config, workdir: str) -> Dict[str, Dict]:
  """Trains, samples and measures every row of config.experiment.rows; writes the report."""
  exp = config.experiment
  names = [r.strip() for r in exp.rows.split(",") if r.strip()]
  spec = DataSpec.from_config(config.data)
  mix, nsfg = spec.toy_mixture(), spec.nsfg_criterion()[0]
  trained = [n for n in names if n not in EXACT and n not in FREE]
  for n in names:  # the rows others start from or sample with, first
    source = FREE[n][0] if n in FREE else _finetune_source(n)
    if source is not None and source not in trained:
      trained.append(source)
  trained.sort(key=lambda n: _finetune_source(n) is not None)
  states, samples = {}, {}
  key = jax.random.key(exp.seed)
  for i, name in enumerate(trained):
    row_cfg = _row_config(config, name)
    if _finetune_source(name) is not None:
      with row_cfg.unlocked():
        row_cfg.training.init_from = os.path.join(workdir, _finetune_source(name))
        row_cfg.training.restart_step = True
        row_cfg.training.n_iters = exp.finetune_steps
    logging.info("toy2d: row %d/%d %s", i + 1, len(trained), name)
    state = train.train_and_evaluate(row_cfg, os.path.join(workdir, name))
    states[name] = (row_cfg, state.ema_params)
  free_ref = _nsfg_reference(exp, mix, nsfg)
  for name in names:
    t0 = time.time()
    if name in EXACT:
      comps = range(mix.num_components) if name == "exact_standard" else \
          np.setdiff1d(np.arange(mix.num_components), nsfg)
      samples[name] = _sample_exact(config, mix, comps, exp.num_samples, key)
    else:
      base, how = FREE.get(name, (name, None))
      row_cfg, ema = states[base]
      sde = builders.sde_from_config(row_cfg.training, row_cfg.model)
      adj = None if how is None else (
          lambda f, how=how, sde=sde: adjust.adjust(how, f, sde, free_ref,
                                                    strength=exp.free_strength))
      samples[name] = _sample_trained(row_cfg, ema, exp.num_samples, key, adj)
    logging.info("toy2d: sampled %s in %.1fs", name, time.time() - t0)
  results = {n: toy_metrics(samples[n], mix, nsfg, radius=exp.disc_radius) for n in names}
  write_report(workdir, results, samples, mix, nsfg, exp.disc_radius, config)
  return results


COLUMNS = (("nsfg_rate", "NSFG rate", "{:.4f}"), ("disc_ratio", "disc / SFG tails", "{:.2f}"),
           ("offmanifold", "off-manifold", "{:.4f}"), ("sliced_w1", "SW1 to SFG", "{:.3f}"))


def table(results: Dict[str, Dict]) -> str:
  """The markdown table of the report."""
  head = "| row | " + " | ".join(c[1] for c in COLUMNS) + " | SFG mode shares |"
  lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
  for name, m in results.items():
    cells = ["n/a" if m[key] is None else fmt.format(m[key]) for key, _, fmt in COLUMNS]
    shares = " / ".join(f"{s:.2f}" for s in m["mode_shares"])
    lines.append(f"| {name} | " + " | ".join(cells) + f" | {shares} |")
  return "\n".join(lines)


def _panels(path: str, results, samples, mix, nsfg, radius: float) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  names = list(results)
  ncol = min(4, len(names))
  nrow = -(-len(names) // ncol)
  fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 3.2 * nrow), squeeze=False)
  center = mix.means[list(nsfg)].mean(0)
  for ax, name in zip(axes.flat, names):
    x = samples[name]
    ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.3)
    ax.add_patch(plt.Circle(center, radius, fill=False, color="red", lw=1))
    ax.set(xlim=(-4.5, 4.5), ylim=(-4.5, 4.5), aspect="equal", xticks=[], yticks=[])
    ax.set_title(f"{name}\nNSFG rate {results[name]['nsfg_rate']:.3f}", fontsize=9)
  for ax in list(axes.flat)[len(names):]:
    ax.axis("off")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write_report(workdir: str, results, samples, mix, nsfg, radius: float, config) -> None:
  """report.json (row -> metrics), report.md (the table) and report.png (one panel per row)."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "report.json"), "w", encoding="utf-8") as f:
    json.dump(results, f, indent=2)
  text = table(results)
  exp = config.experiment
  with open(os.path.join(workdir, "report.md"), "w", encoding="utf-8") as f:
    f.write(f"# 2-D toy: NSFG generation by regime\n\n{text}\n\n"
            f"{exp.num_samples} samples per row; disc radius {radius} around the NSFG centre; "
            f"off-manifold: > 4 component stds from every component. "
            f"{config.training.n_iters} training steps per trained row, seed {config.seed}.\n")
  _panels(os.path.join(workdir, "report.png"), results, samples, mix, nsfg, radius)
  print(text)
