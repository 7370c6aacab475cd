"""The 2-D toy reproduction (the paper's first figure): train each regime, sample, report.

    python -m msgm_jax.main --config=configs/toy2d.py --workdir=runs/toy2d

Rows (msgm_jax/experiments/regimes.py): trained, fine-tuned and training-free rows, plus the exact
scores of the full and the SFG-only mixture (exact_standard, exact_sfg). Each trained row is an
ordinary training run in <workdir>/<row>/ (rerunning resumes or skips it). Every row draws
experiment.num_samples samples and is measured against the known mixture
(msgm_jax/experiments/toy_metrics.py). Writes report.json, report.md and report.png into the workdir and
prints the table.
"""

import time
from typing import Dict

import jax
import numpy as np
from absl import logging

from msgm_jax.config import builders
from msgm_jax.diffusion import exact
from msgm_jax.experiments import regimes as experiment
from msgm_jax.runtime import parallel
from msgm_jax.training import loop as train
from msgm_jax.config import validate
from msgm_jax.evaluation import sample_mode as sample_lib
from msgm_jax.data import DataSpec
from msgm_jax.experiments.toy_metrics import toy_metrics

# The exact scores of the full / SFG-only mixture (no training).
EXACT = ("exact_standard", "exact_sfg")
experiment.EXTRA_ROWS.update(EXACT)
experiment.RULES.update({"num_samples": validate.POSITIVE, "seed": validate.integer(lo=0),
                         "disc_radius": validate.POSITIVE_NUMBER})


def _sample_trained(row_cfg, ema, n: int, key, adjust_fn=None) -> np.ndarray:
  """n samples from a trained row's EMA model, optionally with a score adjustment."""
  run = train.build_run(row_cfg, "")
  sampler = train.make_sampler(run, adjust_fn)
  return sample_lib.draw(sampler, parallel.replicate(ema, run.devices), key, n)


def _nsfg_references(exp_cfg, mix, nsfg, n: int) -> np.ndarray:
  """n NSFG reference points for the training-free rows, drawn from the NSFG components."""
  return mix.restrict(nsfg).sample(np.random.default_rng(exp_cfg.seed + 1), n)[0]


def _sample_exact(config, mix, components, n: int, key) -> np.ndarray:
  sde = builders.sde_from_config(config.training, config.model)
  part = mix.restrict(components)
  score_fn = exact.mixture_score_fn(sde, exact.make_mixture(part.means, part.stds, part.weights))
  spec = builders.SamplerSpec.from_config(config.sampling)
  return np.asarray(jax.jit(lambda k: spec.sample(k, sde, score_fn, (n, mix.dim))[0])(key))


def run_experiment(config, workdir: str) -> Dict[str, Dict]:
  """Trains, samples and measures every row of config.experiment.rows; writes the report."""
  exp = config.experiment
  names = experiment.names(exp)
  spec = DataSpec.from_config(config.data)
  mix, nsfg = spec.toy_mixture(), spec.nsfg_criterion()[0]
  trained = experiment.train_rows(config, workdir, names)
  refs = _nsfg_references(exp, mix, nsfg, config.adjust.num_refs)
  samples = {}
  key = jax.random.key(exp.seed)
  for name in names:
    t0 = time.time()
    if name in EXACT:
      comps = range(mix.num_components) if name == "exact_standard" else \
          np.setdiff1d(np.arange(mix.num_components), nsfg)
      samples[name] = _sample_exact(config, mix, comps, exp.num_samples, key)
    else:
      row_cfg = experiment.row_config(config, name, workdir)
      sde = builders.sde_from_config(row_cfg.training, row_cfg.model)
      adjust_fn = builders.score_adjustment(row_cfg.adjust, sde, refs)
      ema = trained[experiment.row(name).trained]["ema"]
      samples[name] = _sample_trained(row_cfg, ema, exp.num_samples, key, adjust_fn)
    logging.info("toy2d: sampled %s in %.1fs", name, time.time() - t0)
  results = {n: toy_metrics(samples[n], mix, nsfg, radius=exp.disc_radius) for n in names}
  write_report(workdir, results, samples, mix, nsfg, exp.disc_radius, config)
  return results


experiment.EXPERIMENTS.add("toy2d", run_experiment)


COLUMNS = (("nsfg_rate", "NSFG rate", "{:.4f}"), ("disc_ratio", "disc / SFG tails", "{:.2f}"),
           ("offmanifold", "off-manifold", "{:.4f}"), ("sliced_w1", "SW1 to SFG", "{:.3f}"))
LEGEND = ("NSFG rate: share of samples nearest an NSFG component; disc / SFG tails: samples in "
          "the disc around the NSFG centre over the SFG-only mixture's mass there (1: its "
          "tails); off-manifold: share > 4 stds from every component or non-finite; SW1 to SFG: "
          "sliced Wasserstein-1 of the SFG samples to the SFG-only mixture (n/a: < 2 of them); "
          "SFG mode shares: the SFG samples' split over the SFG modes")


def table(results: Dict[str, Dict]) -> str:
  """The markdown table of the report (its columns: LEGEND)."""
  head = "| row | " + " | ".join(c[1] for c in COLUMNS) + " | SFG mode shares |"
  lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
  for name, m in results.items():
    cells = ["n/a" if m[key] is None else fmt.format(m[key]) for key, _, fmt in COLUMNS]
    shares = " / ".join(f"{s:.2f}" for s in m["mode_shares"])
    lines.append(f"| {name} | " + " | ".join(cells) + f" | {shares} |")
  return "\n".join(lines)


def panel_note(x: np.ndarray) -> str:
  """What a row's panel says about samples x [N, 2] it cannot draw ('': all are finite)."""
  bad = int(np.sum(~np.all(np.isfinite(x), axis=1)))
  if bad == len(x):
    return f"no samples: all {bad} non-finite\n(the sampler diverged)"
  return f"{bad} of {len(x)} samples non-finite" if bad else ""


def figure(results, samples, mix, nsfg, radius: float):
  """One scatter panel per row (the disc around the NSFG centre in red) -> a matplotlib
  figure; a panel with non-finite samples says how many."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  names = list(results)
  ncol = min(4, len(names))
  nrow = -(-len(names) // ncol)
  fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 3.2 * nrow), squeeze=False)
  center = mix.means[list(nsfg)].mean(0)
  for ax, name in zip(axes.flat, names):
    x = np.asarray(samples[name])
    ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.3)
    ax.add_patch(plt.Circle(center, radius, fill=False, color="red", lw=1))
    ax.set(xlim=(-4.5, 4.5), ylim=(-4.5, 4.5), aspect="equal", xticks=[], yticks=[])
    ax.set_title(f"{name}\nNSFG rate {results[name]['nsfg_rate']:.3f}", fontsize=9)
    note = panel_note(x)
    if note:
      ax.text(0.5, 0.5 if "no samples" in note else 0.05, note, transform=ax.transAxes,
              ha="center", va="center" if "no samples" in note else "bottom", fontsize=8,
              color="darkred", bbox={"facecolor": "white", "edgecolor": "none"})
  for ax in list(axes.flat)[len(names):]:
    ax.axis("off")
  fig.tight_layout()
  return fig


def _panels(path: str, results, samples, mix, nsfg, radius: float) -> None:
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig = figure(results, samples, mix, nsfg, radius)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write_report(workdir: str, results, samples, mix, nsfg, radius: float, config) -> None:
  """report.json (row -> metrics), report.md (the table) and report.png (one panel per row)."""
  text = table(results)
  exp = config.experiment
  where = experiment.write_report(
      workdir, results,
      f"# 2-D toy: NSFG generation by regime\n\n{text}\n\n{LEGEND}.\n\n"
      f"{exp.num_samples} samples per row; disc radius {radius} around the NSFG centre; "
      f"off-manifold: > 4 component stds from every component. "
      f"{config.training.n_iters} training steps per trained row, seed {config.seed}.\n",
      lambda path: _panels(path, results, samples, mix, nsfg, radius), exp.report)
  print(text)
  print(LEGEND)
  print(where)
