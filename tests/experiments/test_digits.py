"""The digits reproduction: a shortened pipeline check in CI, the full one marked slow."""

import json
import os

import numpy as np
import pytest

from msgm_jax.experiments import digits as digits_report
from msgm_jax.experiments import regimes as experiment
from tests.helpers import ROOT, check_report_rows, load_config

SHORT_ROWS = "standard,finetuned_obtuse_repel_hinge,standard+free_obtuse"


def _short_config(classifier_dir):
  config = load_config("configs/digits_report.py")
  config.experiment.rows = SHORT_ROWS
  config.experiment.finetune_steps = 2
  config.experiment.grid = 8
  config.training.update(dict(n_iters=2, snapshot_freq=2, snapshot_freq_for_preemption=2,
                              log_freq=1, num_devices=2))
  # One resolution level (no attention): a small graph that compiles fast; 4 sampler steps.
  config.model.update(dict(nf=8, ch_mult=(1,), num_scales=4))
  config.eval.update(dict(classifier_weights=classifier_dir, num_samples=16, num_batches=1,
                          batch_size=16, bpd_num_examples=8))
  config.sampling.batch_size = 8
  config.adjust.num_refs = 4
  config.experiment.zero_shot = "inpaint"  # reconstruct: test_zero_shot_table_of_both_tasks
  config.inpaint.num_images = 8
  return config


def test_short_pipeline_writes_every_column_and_reuses_finished_work(tiny_classifier, tmp_path):
  config = _short_config(tiny_classifier[0])
  results = digits_report.run_experiment(config, str(tmp_path))
  for name in ("report.json", "report.md", "report.png", "timings.json"):
    assert os.path.getsize(tmp_path / name) > 0
  saved = check_report_rows(tmp_path, SHORT_ROWS, num_samples=16, step=2)
  for name in SHORT_ROWS.split(","):  # one classifier, one test set
    assert saved[name]["floor"] == saved["standard"]["floor"]
  # The free row uses the Standard run (no training of its own) under the adjusted score.
  assert "train" not in saved["standard+free_obtuse"]["wall_s"]
  assert saved["standard+free_obtuse"]["bpd_sfg"] != saved["standard"]["bpd_sfg"]
  assert saved["data"]["num_samples"] == 16 and saved["data"]["fd_classifier"] >= 0
  text = (tmp_path / "report.md").read_text()
  assert all(f"| {name} |" in text for name in saved)
  # The zero-shot table: every row's completions of NSFG and SFG inputs.
  for name in SHORT_ROWS.split(","):
    z = saved[name]["zero_shot"]["inpaint"]
    assert z["step"] == 2 and z["sfg"]["num_images"] == z["nsfg"]["num_images"] == 8
    for part in (z["sfg"], z["nsfg"]):
      assert 0 <= part["nsfg_rate_ci"][0] <= part["nsfg_rate"] <= part["nsfg_rate_ci"][1]
      assert 0 <= part["class_agreement"] <= 1 and np.isfinite(part["mse"])
      assert "per_image" not in part
    assert f"| {name} | inpaint right_half |" in text
  # A rerun finds every run trained and every row evaluated: the same numbers.
  again = digits_report.run_experiment(config, str(tmp_path))
  for name in SHORT_ROWS.split(","):
    assert {k: v for k, v in again[name].items() if k != "wall_s"} == \
        {k: v for k, v in results[name].items() if k != "wall_s"}


def test_zero_shot_table_of_both_tasks():
  def part(k, n):
    return {"num_images": n, "nsfg_rate": k / n, "nsfg_rate_ci": [0.0, 1.0],
            "class_agreement": 0.5, "class_agreement_ci": [0.1, 0.9], "mse": 0.01}

  record = {"step": 7, "split": "test", "sfg": part(1, 64), "nsfg": part(20, 32)}
  results = {"unseen": {"zero_shot": {"inpaint": {**record, "mask": "top_half"},
                                      "reconstruct": {**record, "perturb_t": 0.02}}},
             "data": {}}
  config = load_config("configs/digits_report.py")
  config.experiment.zero_shot = "inpaint,reconstruct"
  text = digits_report.zero_shot_text(results, config)
  assert "| unseen | inpaint top_half | 0.625 [0.000, 1.000] | 0.016 [0.000, 1.000] |" in text
  assert "| unseen | reconstruct t=0.02 |" in text
  assert "first 32 NSFG and 64 SFG images of the test split" in text
  config.experiment.zero_shot = ""
  assert digits_report.zero_shot_text(results, config) == ""


def test_rows_of_the_committed_configs_are_known():
  for path in ("configs/digits_report.py", "configs/digits_sweep.py"):
    config = load_config(path)
    for name in experiment.names(config.experiment):
      experiment.row(name)
    assert config.data.nsfg_classes == (9,)


@pytest.mark.slow
def test_full_digits_report(tmp_path):
  """The documented commands (report, then the sweep in the same workdir); the headline numbers
  of docs/digits_report.md."""
  results = digits_report.run_experiment(load_config("configs/digits_report.py"), str(tmp_path))
  sweep = digits_report.run_experiment(load_config("configs/digits_sweep.py"), str(tmp_path))
  rate = {k: v["nsfg_rate"] for k, v in {**results, **sweep}.items()}
  unseen = results["unseen"]
  # Standard draws the NSFG digit near its 10% share; Unseen far less, but above the floor.
  assert rate["standard"] > 0.05
  assert rate["unseen"] < rate["standard"] / 3
  assert rate["unseen"] > results["standard"]["floor"]
  # Alpha 0.5 on every step (the toy's best) breaks the image model: noise-like samples.
  for name in ("obtuse_repel_hinge", "orthogonal_elementwise", "obtuse_release",
               "finetuned_obtuse_repel_hinge"):
    assert results[name]["fd_classifier"] > 5 * unseen["fd_classifier"], name
  # The release's alpha 0.01 / period 4 changes nothing; alpha 0.1 on every step makes the NSFG
  # digits much less likely at a small SFG cost and no loss of sample quality.
  for base in ("obtuse_repel_hinge", "finetuned_obtuse_repel_hinge"):
    r = sweep[f"{base}@a0.01p4"]
    assert abs(r["bpd_nsfg"] - unseen["bpd_nsfg"]) < 0.5, base
    r = sweep[f"{base}@a0.1p1"]
    assert r["bpd_nsfg"] - unseen["bpd_nsfg"] > 3.0, base
    assert r["bpd_sfg"] - unseen["bpd_sfg"] < 1.0, base
    assert r["fd_classifier"] < 2 * unseen["fd_classifier"], base


def test_report_figure_titles_overlap_nothing():
  """The phase-3 report's rows (docs/compositional_phase3.json's names, fake images): every
  title fits its panel's width and overlaps no other title and no panel's images."""
  with open(os.path.join(ROOT, "docs", "compositional_phase3.json"), encoding="utf-8") as f:
    names = list(json.load(f))
  assert len(names) > 10 and max(map(len, names)) > 40  # the long fine-tuned rows
  grids = {n: np.full((64, 8, 8, 3), 0.5) for n in names}
  fig = digits_report.figure({n: {"nsfg_rate": 0.05} for n in names}, grids)
  fig.canvas.draw()
  renderer = fig.canvas.get_renderer()
  axes = [ax for ax in fig.axes if ax.get_title()]
  titles = [ax.title.get_window_extent(renderer) for ax in axes]
  images = [ax.get_window_extent(renderer) for ax in axes]
  for i, t in enumerate(titles):
    assert t.width <= images[i].width * 1.05, axes[i].get_title()
    others = titles[:i] + titles[i + 1:] + images
    assert not [o for o in others if t.overlaps(o)], axes[i].get_title()
  assert digits_report.panel_title("unseen_finetuned_redirect@a0.2p1w0.3r9000", 0.025) == \
      "unseen_finetuned_\nredirect@a0.2p1w0.3r9000\nNSFG 0.025"
  assert digits_report.panel_title("data") == "data"
