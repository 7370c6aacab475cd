"""Reports of every regime on the digits datasets (the 8x8 digits, grey or coloured), judged by
a classifier: the digits reproduction and the compositional report.

    python -m msgm_jax.main --config=configs/digits_report.py --workdir=runs/digits_report
    python -m msgm_jax.main --config=configs/compositional_report.py --workdir=runs/compositional

Trains the classifier experiment.classifier names (classifier/presets.py BY_NAME: the digits
classifier, under a minute; the colour digits' 70-combination one) into <workdir>/classifier
unless eval.classifier_weights names one; with eval.nsfg_detector=factored (colour digits:
msgm_jax/evaluation/classifier/factors.py) also the detector's digits classifier into <workdir>/detector
unless eval.detector_weights names one. Then every row's run
(msgm_jax/experiments/regimes.py; rerunning resumes or skips), then evaluates each row with eval mode
(msgm_jax/evaluation/eval_mode.py, EMA weights of the last checkpoint: eval.num_samples samples with the
configured sampler, their nsfg_rate with a Wilson 95% interval and fd_classifier, bpd on the
SFG and NSFG test images, and the classifier's floor and recall), and writes report.json,
report.md and report.png (a grid of samples per row; experiment.report names them) into the
workdir. A reference row,
`data`, measures the first eval.num_samples real SFG training images the same way (the
fd_classifier a perfect SFG generator gets; their NSFG rate is biased low, the classifier
learnt them). With experiment.zero_shot (e.g. 'inpaint,reconstruct'), each row also runs
inpaint and / or reconstruct mode (msgm_jax/zero_shot/inpaint.py, reconstruct.py: the inpaint and
reconstruct sections' settings) and the report gets a second table: the NSFG rate and class
agreement of the completions / reconstructions of NSFG inputs vs SFG inputs. Wall times per
row (train, eval, zero_shot) add up over the invocations that did the work (timings.json).
"""

import json
import os
import re
import time
from typing import Dict, List

import jax
import numpy as np
from absl import logging

from msgm_jax import data
from msgm_jax.experiments import colour_rates as compositional_rates
from msgm_jax.evaluation import samples as eval_samples
from msgm_jax.evaluation import eval_mode as evaluate
from msgm_jax.experiments import regimes as experiment
from msgm_jax.zero_shot import inpaint
from msgm_jax.runtime import parallel
from msgm_jax.zero_shot import reconstruct
from msgm_jax.evaluation import sample_mode as sample
from msgm_jax.evaluation import sample_metrics
from msgm_jax.config import validate
from msgm_jax.training import writer as writer_lib
from msgm_jax.evaluation.classifier import factors
from msgm_jax.evaluation.classifier import presets as classifier_presets
from msgm_jax.evaluation.classifier import train as classifier_train
from msgm_jax.data import compositional

ZERO_SHOT = {"inpaint": inpaint.inpaint, "reconstruct": reconstruct.reconstruct}


def _zero_shot_rule(value):
  """validate's rule for experiment.zero_shot: '' or a comma-separated list of ZERO_SHOT."""
  if isinstance(value, str) and all(m.strip() in ZERO_SHOT for m in value.split(",") if m):
    return None
  return f"'' (none) or a comma-separated list of {', '.join(ZERO_SHOT)}"


experiment.RULES.update({"grid": validate.POSITIVE, "zero_shot": _zero_shot_rule,
                         "reference": validate.text,
                         "title": validate.text,
                         "classifier": validate.one_of(classifier_presets.BY_NAME)})
GRID_COLUMNS = 8
# The columns of a zero-shot record kept in the report (per subset).
_ZERO_SHOT_KEYS = ("num_images", "nsfg_rate", "nsfg_rate_ci", "nsfg_rate_count",
                   "class_agreement", "class_agreement_ci", "input_nsfg_rate", "mse",
                   "nonfinite_rate")


def _trained_classifier(given: str, preset: str, path: str) -> str:
  """given (a classifier's workdir), or the classifier_presets.BY_NAME[preset] classifier
  trained (once) into path."""
  if given:
    return given
  if not os.path.exists(os.path.join(path, "classifier_eval.json")):
    logging.info("report: training the %s classifier into %s", preset, path)
    classifier_train.train_and_evaluate(classifier_presets.BY_NAME[preset](), path)
  return path


def classifier_dirs(config, workdir: str) -> Dict[str, str]:
  """The eval fields naming the classifiers (classifier_weights; with the factored NSFG
  detector also detector_weights) -> their workdirs, trained into the workdir when not set."""
  out = {"classifier_weights": _trained_classifier(
      config.eval.classifier_weights, config.experiment.classifier,
      os.path.join(workdir, "classifier"))}
  if config.eval.nsfg_detector == "factored":
    out["detector_weights"] = _trained_classifier(
        config.eval.detector_weights, "digits", os.path.join(workdir, "detector"))
  return out


def _timed(timings: Dict, name: str, phase: str, fn):
  start = time.time()
  out = fn()
  entry = timings.setdefault(name, {})
  entry[phase] = entry.get(phase, 0.0) + time.time() - start
  return out


def _stored_images(row_cfg, run_dir: str, step: int, n: int) -> np.ndarray:
  """The first n samples eval drew for a row, as [n, H, W, C] floats in [0, 1]."""
  store = sample.store_dir(os.path.join(run_dir, "eval", "samples"), row_cfg, step,
                           row_cfg.training.num_devices or jax.local_device_count())
  x = sample.read_store(store, n)
  spec = data.DataSpec.from_config(row_cfg.data)
  return sample.to_uint8(data.get_inverse_scaler(spec)(np.nan_to_num(x))) / 255.0


def _row_eval_config(config, name: str, workdir: str, clf_dirs: Dict[str, str]):
  """A row's config for its evaluations, judged by the classifiers of clf_dirs
  (classifier_dirs)."""
  row_cfg = experiment.row_config(config, name, workdir)
  row_cfg.eval.update(dict(nsfg_rate="on", fd_classifier="on", **clf_dirs))
  return row_cfg


def zero_shot_modes(config) -> List[str]:
  """The zero-shot modes of experiment.zero_shot ('' or e.g. 'inpaint,reconstruct')."""
  return [m.strip() for m in config.experiment.get("zero_shot", "").split(",") if m.strip()]


def zero_shot_columns(record: Dict) -> Dict:
  """The report's part of a zero-shot record (msgm_jax/zero_shot/common.py): the step, the mask or
  perturbation, and per subset the rates and errors (no per-image lists)."""
  out = {k: v for k, v in record.items() if k not in ("sfg", "nsfg")}
  for subset in ("sfg", "nsfg"):
    out[subset] = {k: record[subset][k] for k in _ZERO_SHOT_KEYS if k in record[subset]}
  return out


def row_result(record: Dict) -> Dict:
  """The report's columns from an eval record."""
  s, sfg, nsfg = record["samples"], record["sfg"], record["nsfg"]
  out = {"step": record["step"], "num_samples": s["num_samples"]}
  for key in ("nsfg_rate", "nsfg_rate_ci", "nsfg_rate_count", "nonfinite_rate",
              "fd_classifier", "fd_classifier_nsfg", "fd_classifier_no_mean"):
    out[key] = s.get(key)
  for name, part in (("sfg", sfg), ("nsfg", nsfg)):
    out[f"bpd_{name}"], out[f"bpd_{name}_stderr"] = part.get("bpd"), part.get("bpd_stderr")
  out.update(floor=sfg["nsfg_rate"], floor_ci=sfg["nsfg_rate_ci"], recall=nsfg["nsfg_rate"])
  return out


def factored_analysis(config, results: Dict[str, Dict], stores: Dict, detector_dir: str) -> None:
  """The colour digits' per-sample analysis of every row (msgm_jax/experiments/colour_rates.py),
  into results[row]['detector'] (three classes: NSFG, SFG, unreadable; the rate among clearly
  drawn samples; per combination) and, against experiment.reference (drawn with the same
  sampler keys), results[row]['paired'] (McNemar's exact test; where the reference's NSFG
  samples go)."""
  detect = factors.load_detector(detector_dir)
  combos = data.DataSpec.from_config(config.data).nsfg_criterion()[0]
  readings = {}
  for name, (row_cfg, run_dir, step) in stores.items():
    images = _stored_images(row_cfg, run_dir, step, int(config.eval.num_samples))
    readings[name] = {k: np.asarray(v) for k, v in detect(images, combos).items()}
    results[name]["detector"] = compositional_rates.summarize(readings[name], combos)
  ref = config.experiment.get("reference", "unseen")
  if ref in readings:
    for name in readings:
      if name != ref:
        results[name]["paired"] = {"reference": ref, **compositional_rates.paired(
            readings[ref], readings[name], combos)}


def paired_table(results: Dict[str, Dict]) -> str:
  """The factored detector's table: per row the three classes, the rate among clearly drawn
  samples, and against the reference McNemar's test and where its NSFG samples go."""
  lines = ["| row | NSFG rate [95% CI] | unreadable | clear | NSFG among clear [95% CI] | "
           "vs reference: ref-only / row-only NSFG, McNemar p (clear pairs' p) | reference's "
           "NSFG samples: kept / other NSFG / SFG same digit / same colour / both changed / "
           "unreadable |", "|---|---|---|---|---|---|---|"]
  for name, r in results.items():
    d = r.get("detector")
    if d is None:
      continue
    cc = d["nsfg_rate_clear_ci95"] or (float("nan"), float("nan"))
    line = (f"| {name} | {d['nsfg_rate']:.4f} [{d['nsfg_ci95'][0]:.4f}, {d['nsfg_ci95'][1]:.4f}]"
            f" | {d['unreadable_share']:.3f} | {d['clear_share']:.3f} | {d['nsfg_rate_clear']:.4f}"
            f" [{cc[0]:.4f}, {cc[1]:.4f}] |")
    p = r.get("paired")
    if p is None:
      line += " (reference) | |"
    else:
      m, mc, g = p["mcnemar"], p["mcnemar_clear"], p["ref_nsfg_goes_to"]
      line += (f" {m['a_only']} / {m['b_only']}, p = {m['p_value']:.2g} ({mc['p_value']:.2g}) |"
               f" {g['same_combination']} / {g['other_nsfg']} / {g['sfg_same_digit']} / "
               f"{g['sfg_same_colour']} / {g['sfg_both_changed']} / {g['unreadable']} "
               f"(of {g['n']}) |")
    lines.append(line)
  return "\n".join(lines)


def _data_row(config, metrics: sample_metrics.SampleMetrics, n: int) -> Dict:
  """The reference row: real SFG training images through the samples' path."""
  source = data.make_eval_source(data.DataSpec.from_config(config.data), "train", "sfg")
  images = np.stack([source[i]["image"] for i in range(min(n, len(source)))])
  return {"num_samples": len(images), **metrics(images)}, images / 255.0


def run_experiment(config, workdir: str) -> Dict[str, Dict]:
  """Trains and evaluates every row of config.experiment.rows; writes the report."""
  names = experiment.names(config.experiment)
  timings_path, timings = os.path.join(workdir, "timings.json"), {}
  if os.path.exists(timings_path):
    with open(timings_path, encoding="utf-8") as f:
      timings = json.load(f)
  clf_dirs = _timed(timings, "classifier", "train", lambda: classifier_dirs(config, workdir))
  for name, info in experiment.train_rows(config, workdir, names).items():
    entry = timings.setdefault(name, {})
    entry["train"] = entry.get("train", 0.0) + info["train_s"]
  results, grids, cache, stores = {}, {}, {}, {}
  for name in names:
    row_cfg = _row_eval_config(config, name, workdir, clf_dirs)
    run_dir = experiment.row_workdir(workdir, name)
    records = _timed(timings, name, "eval",
                     lambda: evaluate.evaluate(row_cfg, run_dir, cache=cache))
    step = max(records)
    results[name] = row_result(records[step])
    grids[name] = _stored_images(row_cfg, run_dir, step, config.experiment.grid)
    stores[name] = (row_cfg, run_dir, step)
  if config.eval.nsfg_detector == "factored":
    factored_analysis(config, results, stores, clf_dirs["detector_weights"])
  with open(timings_path, "w", encoding="utf-8") as f:
    json.dump(timings, f, indent=2)
  for name in names:  # a training-free row trains nothing (it uses its base row's run)
    results[name]["wall_s"] = {k: round(v, 1) for k, v in timings[name].items()}
  # Every row has the same metric settings: the rows' compiled extractors measure real data.
  metrics = eval_samples.metrics_for(row_cfg.eval, data.DataSpec.from_config(row_cfg.data),
                                     parallel.local_devices(row_cfg.training.num_devices or None),
                                     cache)
  results["data"], images = _data_row(config, metrics, int(config.eval.num_samples))
  grids["data"] = images[:config.experiment.grid]  # as many as the rows' grids show
  results["data"]["floor"] = results[names[0]]["floor"]
  modes = zero_shot_modes(config)
  if modes:
    for name in names:
      row_cfg = _row_eval_config(config, name, workdir, clf_dirs)
      run_dir = experiment.row_workdir(workdir, name)
      results[name]["zero_shot"] = _timed(timings, name, "zero_shot", lambda: {
          mode: zero_shot_columns(ZERO_SHOT[mode](row_cfg, run_dir, cache=cache))
          for mode in modes})
      results[name]["wall_s"]["zero_shot"] = round(timings[name]["zero_shot"], 1)
    with open(timings_path, "w", encoding="utf-8") as f:
      json.dump(timings, f, indent=2)
  where = experiment.write_report(workdir, results, report_text(results, config),
                                  lambda path: _figure(path, results, grids),
                                  config.experiment.report)
  print(table(results))
  print(where)
  return results


def _fmt(value, fmt: str) -> str:
  return "n/a" if value is None else fmt.format(value)


def table(results: Dict[str, Dict]) -> str:
  """The markdown table: one line per row."""
  lines = ["| row | NSFG rate [95% CI] | count | fd_classifier | bpd SFG | bpd NSFG | "
           "train s | eval s |", "|---|---|---|---|---|---|---|---|"]
  for name, r in results.items():
    ci = r.get("nsfg_rate_ci")
    rate = "n/a" if r.get("nsfg_rate") is None else \
        f"{r['nsfg_rate']:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]"
    count = f"{r.get('nsfg_rate_count')}/{r['num_samples']}"
    bpd = [_fmt(r.get(k), "{:.3f}") + ("" if r.get(k + "_stderr") is None else
                                       f" ± {r[k + '_stderr']:.3f}")
           for k in ("bpd_sfg", "bpd_nsfg")]
    wall = r.get("wall_s", {})
    lines.append(f"| {name} | {rate} | {count} | {_fmt(r.get('fd_classifier'), '{:.2f}')} | "
                 f"{bpd[0]} | {bpd[1]} | {_fmt(wall.get('train'), '{:.0f}')} | "
                 f"{_fmt(wall.get('eval'), '{:.0f}')} |")
  return "\n".join(lines)


def _nsfg_text(config) -> str:
  spec = data.DataSpec.from_config(config.data)
  classes = spec.nsfg_criterion()[0]
  if spec.dataset == "colourdigits":
    return compositional.describe(classes)
  return f"digit {', '.join(map(str, classes))}"


def _sampler_text(config) -> str:
  """'pc, 1000 steps', 'dpm_solver, 20 steps' or 'ode, RK45 at tolerance 1e-05'."""
  method = config.sampling.method.lower()
  if method == "ode":
    return f"ode, RK45 at tolerance {config.sampling.ode_tol}"
  steps = config.model.num_scales if method == "pc" else config.sampling.num_steps
  return f"{method}, {steps} steps"


def report_text(results: Dict[str, Dict], config) -> str:
  first = next(iter(results.values()))
  floor_ci = first["floor_ci"]
  detector = ("Factored detector (colour by rule, shape by the digits classifier)"
              if config.eval.nsfg_detector == "factored" else "Classifier")
  return (f"# {config.experiment.title}: NSFG generation by regime (NSFG {_nsfg_text(config)})"
          f"\n\n{table(results)}\n\n"
          f"{detector} on the real test images: floor (SFG images taken for NSFG) "
          f"{first['floor']:.4f} [{floor_ci[0]:.4f}, {floor_ci[1]:.4f}], recall (NSFG images "
          f"found) {first['recall']:.4f}. {config.eval.num_samples} samples per row "
          f"({_sampler_text(config)}); bpd of the first "
          f"{config.eval.bpd_num_examples} test images of each subset; "
          f"{config.training.n_iters} training steps per trained row, "
          f"{config.experiment.finetune_steps} fine-tuning steps, seed {config.seed}. "
          "`data`: real SFG training images.\n" + paired_text(results, config)
          + zero_shot_text(results, config))


def paired_text(results: Dict[str, Dict], config) -> str:
  """The report's factored-detector section ('' without the factored detector)."""
  if not any("detector" in r for r in results.values()):
    return ""
  ref = config.experiment.get("reference", "unseen")
  return (f"\n## Per-sample readings, paired with `{ref}`\n\n{paired_table(results)}\n\n"
          "Three classes: NSFG, SFG and unreadable (black or noise, counted as neither). Clear: "
          "readable, digit confidence >= 0.9, colour leak < 0.25. Every row draws sample i from "
          "the same sampler key, so rows are compared pair by pair: McNemar's exact test of the "
          f"NSFG decisions against `{ref}` (two-sided p), and the row's reading of the samples "
          f"`{ref}` draws as NSFG.\n")


def _rate_ci(part: Dict, key: str) -> str:
  if part.get(key) is None:
    return "n/a"
  low, high = part[f"{key}_ci"]
  return f"{part[key]:.3f} [{low:.3f}, {high:.3f}]"


def zero_shot_table(results: Dict[str, Dict]) -> str:
  """One line per row and zero-shot mode: the NSFG rate and the class agreement of the
  outputs of NSFG inputs and of SFG inputs, and the pixel error."""
  lines = ["| row | task | NSFG rate, NSFG inputs | NSFG rate, SFG inputs | class agreement, "
           "NSFG inputs | class agreement, SFG inputs | mse NSFG / SFG |",
           "|---|---|---|---|---|---|---|"]
  for name, r in results.items():
    for mode, z in r.get("zero_shot", {}).items():
      task = f"inpaint {z['mask']}" if mode == "inpaint" else f"reconstruct t={z['perturb_t']}"
      nsfg, sfg = z["nsfg"], z["sfg"]
      lines.append(f"| {name} | {task} | {_rate_ci(nsfg, 'nsfg_rate')} | "
                   f"{_rate_ci(sfg, 'nsfg_rate')} | {_rate_ci(nsfg, 'class_agreement')} | "
                   f"{_rate_ci(sfg, 'class_agreement')} | {nsfg['mse']:.4f} / {sfg['mse']:.4f} |")
  return "\n".join(lines)


def zero_shot_text(results: Dict[str, Dict], config) -> str:
  """The report's zero-shot section ('' when experiment.zero_shot is off)."""
  if not zero_shot_modes(config):
    return ""
  some = next(r["zero_shot"] for r in results.values() if "zero_shot" in r)
  first = next(iter(some.values()))
  return (f"\n## Zero-shot inpainting and reconstruction\n\n{zero_shot_table(results)}\n\n"
          f"The first {first['nsfg']['num_images']} NSFG and {first['sfg']['num_images']} SFG "
          f"images of the {first['split']} split, each row's EMA weights at step "
          f"{first['step']}; inpainting with the sampler's predictor and corrector "
          f"({config.model.num_scales} steps), reconstruction with the probability-flow ODE "
          "(the latent perturbed as the marginal at t). NSFG rate: the share of outputs the "
          "classifier takes for NSFG (Wilson 95% intervals); class agreement: outputs classified "
          "as their input's digit; mse in [0, 1] pixels (inpainting: the completed pixels). "
          "A moderated model completes and reconstructs SFG inputs but not NSFG ones. Pictures: "
          "<row>/inpaint/<tag>/{sfg,nsfg}_<step>.png, <row>/reconstruct/<tag>/.\n")


def panel_title(name: str, rate=None, width: int = 24) -> str:
  """A row's panel title: its name broken after '_' or before '@' into lines of at most
  `width` characters (a longer piece stays whole), then its NSFG rate."""
  lines = [""]
  for piece in re.split(r"(?<=_)|(?=@)", name):
    if lines[-1] and len(lines[-1]) + len(piece) > width:
      lines.append("")
    lines[-1] += piece
  return "\n".join(lines + ([] if rate is None else [f"NSFG {rate:.3f}"]))


def figure(results: Dict[str, Dict], grids: Dict[str, np.ndarray]):
  """One panel per row (grids: row -> [N, H, W, C] images in [0, 1]) titled by panel_title,
  laid out so that no title runs into another or into the images -> a matplotlib figure."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  names = list(grids)
  ncol = min(5, len(names))
  nrow = -(-len(names) // ncol)
  fig, axes = plt.subplots(nrow, ncol, figsize=(2.4 * ncol, 2.9 * nrow), squeeze=False,
                           layout="constrained")
  for ax, name in zip(axes.flat, names):
    grid = writer_lib.image_grid(grids[name], ncol=GRID_COLUMNS, min_size=8)
    if grid.shape[-1] == 1:
      ax.imshow(grid[..., 0], cmap="gray", interpolation="nearest")
    else:
      ax.imshow(grid, interpolation="nearest")
    ax.set_title(panel_title(name, results[name].get("nsfg_rate")), fontsize=8)
    ax.axis("off")
  for ax in list(axes.flat)[len(names):]:
    ax.axis("off")
  return fig


def _figure(path: str, results: Dict[str, Dict], grids: Dict[str, np.ndarray]) -> None:
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig = figure(results, grids)
  fig.savefig(path, dpi=80)
  plt.close(fig)


experiment.EXPERIMENTS.add("digits", run_experiment)
