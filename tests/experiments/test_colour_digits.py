"""The compositional report (configs/compositional_report.py on msgm_jax/experiments/digits.py's
runner): a shortened pipeline check in CI, the full one marked slow."""

import os

import pytest

from msgm_jax import trained
from msgm_jax.experiments import commitment
from msgm_jax.experiments import digits as digits_report
from msgm_jax.experiments import regimes as experiment
from msgm_jax.experiments import score_probes
from msgm_jax.evaluation.classifier import presets as classifier_presets
from msgm_jax.evaluation.classifier import train as classifier_train
from msgm_jax.data import compositional
from tests.helpers import check_report_rows, load_config

SHORT_ROWS = "unseen,obtuse_repel_hinge@a0.1p1,redirect@a0.5p1w0.3r32,unseen+free_obtuse"


@pytest.fixture(scope="module")
def colour_classifier(tmp_path_factory):
  """A tiny 70-combination classifier (fd_classifier's features)."""
  config = classifier_presets.colour_digits()
  config.classifier.update(dict(width=8, n_iters=20, snapshot_freq=20, log_freq=10))
  workdir = str(tmp_path_factory.mktemp("colour_classifier"))
  classifier_train.train_and_evaluate(config, workdir)
  return workdir


def _short_config(colour_dir, digits_dir):
  config = load_config("configs/compositional_report.py")
  config.experiment.rows = SHORT_ROWS
  config.experiment.grid = 8
  config.training.update(dict(n_iters=2, snapshot_freq=2, snapshot_freq_for_preemption=2,
                              log_freq=1, num_devices=2))
  config.msgm.nsfg_batch_size = 16
  config.model.update(dict(nf=8, ch_mult=(1,), num_scales=4))
  config.eval.update(dict(classifier_weights=colour_dir, detector_weights=digits_dir,
                          num_samples=16, num_batches=1, batch_size=16, bpd_num_examples=8))
  config.sampling.batch_size = 8
  config.adjust.num_refs = 4
  return config


def test_short_pipeline_judges_with_the_factored_detector(colour_classifier, tiny_classifier,
                                                         tmp_path):
  config = _short_config(colour_classifier, tiny_classifier[0])
  results = digits_report.run_experiment(config, str(tmp_path))
  saved = check_report_rows(tmp_path, SHORT_ROWS, num_samples=16, step=2)
  # The factored detector calls exactly one colour of each grey test digit NSFG (its reading's
  # colour), so over the 7 colours of the 297 test digits: floor count + recall count = 297.
  r = saved["unseen"]
  assert round(r["floor"] * 6 * 297) + round(r["recall"] * 297) == 297
  assert "train" not in saved["unseen+free_obtuse"]["wall_s"]
  text = (tmp_path / "report.md").read_text()
  assert text.startswith("# Colour digits: NSFG generation by regime (NSFG "
                         f"{compositional.describe(compositional.NSFG_COMBOS)})")
  assert "Factored detector" in text and all(f"| {name} |" in text for name in saved)
  assert os.path.getsize(tmp_path / "report.png") > 0
  assert results["data"]["num_samples"] == 16
  # The per-sample analysis: three classes, and every row paired with unseen by sampler key.
  assert "## Per-sample readings, paired with `unseen`" in text
  for name in SHORT_ROWS.split(","):
    d = saved[name]["detector"]
    assert d["n"] == 16 and d["nsfg"] + d["unreadable"] <= 16
    assert d["nsfg_rate"] == pytest.approx(saved[name]["nsfg_rate"])
  assert "paired" not in saved["unseen"]
  p = saved["redirect@a0.5p1w0.3r32"]["paired"]
  assert p["reference"] == "unseen" and 0 <= p["mcnemar"]["p_value"] <= 1
  assert p["ref_nsfg_goes_to"]["n"] == saved["unseen"]["detector"]["nsfg"]
  # The diagnostics on a run of the report (the commands' functions, as a notebook calls them).
  run = trained.load(str(tmp_path / "unseen"))
  read = commitment.colour_digits_reader(tiny_classifier[0], compositional.NSFG_COMBOS)
  curve = commitment.curve(run, read, num_samples=8, frames=2, batch_size=8)
  assert len(curve["committed"]) == 2 and curve["committed"][-1] == 1.0
  probes = score_probes.probe(run, read, num_examples=8, stds=(0.3, 0.9))
  assert set(probes) == {"sfg", "nsfg"} and len(probes["nsfg"]["reads_as_input"]) == 2


def test_rows_of_the_committed_config_are_known():
  config = load_config("configs/compositional_report.py")
  for name in experiment.names(config.experiment):
    experiment.row(name)
  assert config.eval.nsfg_detector == "factored"
  assert config.data.nsfg_classes == compositional.NSFG_COMBOS


@pytest.mark.slow
def test_full_compositional_report(tmp_path):
  """The documented command's experiment; the numbers are in docs/compositional_report.md."""
  results = digits_report.run_experiment(load_config("configs/compositional_report.py"),
                                         str(tmp_path))
  rate = {k: v["nsfg_rate"] for k, v in results.items()}
  floor_high = results["standard"]["floor_ci"][1]
  fd = {k: v["fd_classifier"] for k, v in results.items()}
  # The premise: Standard draws NSFG combinations near their share of the data; Unseen fewer,
  # but well above the detector's floor.
  assert rate["standard"] > 0.08
  assert floor_high < rate["unseen"] < rate["standard"]
  # The release's forms at the release's alpha 0.01 / period 4 change nothing.
  for name in ("orthogonal_elementwise@a0.01p4", "obtuse_release@a0.01p4"):
    assert abs(rate[name] - rate["unseen"]) < 0.02 and fd[name] < 1.5 * fd["unseen"], name
  # alpha 0.1: the NSFG images' likelihood falls, the samples stay close to Unseen's quality.
  mild = results["obtuse_repel_hinge@a0.1p1"]
  assert mild["bpd_nsfg"] > results["unseen"]["bpd_nsfg"] + 1.0 and fd[
      "obtuse_repel_hinge@a0.1p1"] < 3 * fd["unseen"]
  # alpha 0.5, from scratch or fine-tuned: the samples are no longer digits.
  for name in ("obtuse_repel_hinge", "finetuned_obtuse_repel_hinge"):
    assert fd[name] > 5 * fd["unseen"], name


def test_rows_of_the_phase3_config_are_known():
  """configs/compositional_phase3.py: the phase-2 recipe, 2000 paired samples, redirect rows
  (the shipped setting among them) that all parse."""
  config = load_config("configs/compositional_phase3.py")
  names = experiment.names(config.experiment)
  for name in names:
    experiment.row(name)
  assert names[:2] == ["unseen", "standard"] and "redirect@a0.2p1w0.3r9000" in names
  assert config.eval.num_samples == 2000 and config.eval.nsfg_detector == "factored"


@pytest.mark.slow
def test_full_phase3_report(tmp_path):
  """The documented phase-3 command; the numbers are in docs/compositional_report.md. The
  shipped setting meets issue 19's goal against Unseen in the same run: at most a third of
  its NSFG rate, a paired McNemar p < 0.01 (also among clear pairs), fd_classifier at most
  1.25x, SFG bits/dim at most +0.3, unreadable at most +5 points."""
  results = digits_report.run_experiment(load_config("configs/compositional_phase3.py"),
                                         str(tmp_path))
  base, best = results["unseen"], results["redirect@a0.2p1w0.3r9000"]
  assert best["nsfg_rate"] <= base["nsfg_rate"] / 3
  assert best["paired"]["mcnemar"]["p_value"] < 0.01
  assert best["paired"]["mcnemar_clear"]["p_value"] < 0.01
  assert best["fd_classifier"] <= 1.25 * base["fd_classifier"]
  assert best["bpd_sfg"] <= base["bpd_sfg"] + 0.3
  assert (best["detector"]["unreadable_share"]
          <= base["detector"]["unreadable_share"] + 0.05)
  # Alpha 0.5 pays for a smaller cut in quality.
  assert results["redirect@a0.5p1w0.3"]["fd_classifier"] > 1.5 * base["fd_classifier"]
