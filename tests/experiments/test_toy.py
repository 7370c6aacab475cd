"""The toy reproduction end to end: a short version in CI, the full one marked slow."""

import json
import os

import numpy as np
import pytest

from msgm_jax.experiments import regimes as experiment
from msgm_jax.experiments import toy as toy2d
from msgm_jax.data import DataSpec
from msgm_jax.experiments.toy_metrics import toy_metrics
from tests.helpers import load_config


def _short_config():
  config = load_config("configs/toy2d.py")
  config.experiment.rows = ("exact_sfg,standard,unseen,obtuse_repel_hinge,"
                            "finetuned_obtuse_repel_hinge,unseen+free_obtuse")
  config.experiment.finetune_steps = 500
  config.experiment.num_samples = 2000
  config.model.hidden = 64
  config.model.num_scales = 300
  config.training.n_iters = 1500
  config.training.snapshot_freq = 1500
  config.training.snapshot_freq_for_preemption = 1500
  config.training.eval_freq = 0
  config.training.log_freq = 500
  config.training.steps_per_call = 1
  return config


def test_short_toy_experiment_orders_the_regimes(tmp_path, capsys):
  results = toy2d.run_experiment(_short_config(), str(tmp_path))
  for name in ("report.json", "report.md", "report.png"):
    assert os.path.getsize(tmp_path / name) > 0
  # The job's last line says where its report went.
  out = capsys.readouterr().out.strip().splitlines()
  assert out[-1] == f"report: {tmp_path / 'report'}.{{json,md,png}}"
  saved = json.loads((tmp_path / "report.json").read_text())
  assert set(saved) == {"exact_sfg", "standard", "unseen", "obtuse_repel_hinge",
                        "finetuned_obtuse_repel_hinge", "unseen+free_obtuse"}
  rate = {k: v["nsfg_rate"] for k, v in results.items()}
  # Standard generates the NSFG blob (a third of its data); removing it from training does
  # most of the work; the exact SFG-only score is the floor (its own tails).
  assert rate["standard"] > 0.2
  assert rate["unseen"] < rate["standard"] / 3
  assert rate["exact_sfg"] < 0.01
  assert rate["unseen+free_obtuse"] <= rate["unseen"]
  # The default MSGM term (hinged, repelling Obtuse) removes what Unseen still generates and
  # keeps the SFG modes: samples stay on the data and both modes keep about half each.
  assert rate["obtuse_repel_hinge"] < rate["unseen"] / 3
  msgm = results["obtuse_repel_hinge"]
  assert msgm["offmanifold"] < 0.01
  assert all(0.4 < s < 0.6 for s in msgm["mode_shares"])
  # Fine-tuning the Standard model with it removes most of what Standard generates.
  assert rate["finetuned_obtuse_repel_hinge"] < min(rate["standard"] / 10, rate["unseen"])


def test_rows_and_unknown_rows():
  with pytest.raises(ValueError, match="unknown row 'obtuse_away'.*valid: "):
    experiment.row("obtuse_away")
  assert experiment.row("obtuse_repel@a0.1p1").overrides["msgm.alpha"] == 0.1
  tuned = experiment.row("finetuned_obtuse_repel_hinge@a0.1p4")
  assert tuned.source == "standard" and tuned.overrides["msgm.period"] == 4
  free = experiment.row("unseen+free_obtuse")
  assert free.trained == "unseen" and free.overrides["adjust.method"] == "obtuse"
  with pytest.raises(ValueError, match="unknown score adjustment 'away'"):
    experiment.row("unseen+free_away")
  windowed = experiment.row("unseen_finetuned_redirect@a0.2p1w0.3_0.9rall")
  assert windowed.source == "unseen" and windowed.overrides == {
      "training.regime": "msgm", "msgm.variant": "redirect", "msgm.alpha": 0.2,
      "msgm.period": 1, "msgm.std_min": 0.3, "msgm.std_max": 0.9, "msgm.num_refs": -1}
  assert experiment.row("redirect@a0.5p1w0.1r64").overrides["msgm.num_refs"] == 64


@pytest.mark.slow
def test_full_toy_experiment(tmp_path):
  """The README's main job as configured; the numbers are reported in docs/toy2d_report.md."""
  results = toy2d.run_experiment(load_config("configs/toy2d.py"), str(tmp_path))
  rate = {k: v["nsfg_rate"] for k, v in results.items()}
  assert rate["standard"] > 0.2
  assert rate["exact_sfg"] < 0.01 < rate["unseen"] < rate["standard"]
  # The claim: one MSGM variant cuts the NSFG rate 10x versus Unseen, SFG quality kept.
  assert rate["obtuse_repel_hinge"] < rate["unseen"] / 10
  assert results["obtuse_repel_hinge"]["sliced_w1"] < 2 * results["unseen"]["sliced_w1"]


def test_report_panels_say_why_they_are_empty_and_the_table_has_a_legend(tmp_path, capsys):
  """Fake samples: a row whose sampler diverged (all NaN), one partly and one fine."""
  config = load_config("configs/toy2d.py")
  spec = DataSpec.from_config(config.data)
  mix, nsfg = spec.toy_mixture(), spec.nsfg_criterion()[0]
  good = mix.sample(np.random.default_rng(0), 200)[0]
  partly = good.copy()
  partly[:5] = np.inf
  samples = {"standard": good, "unseen": np.full((200, 2), np.nan), "msgm": partly}
  results = {k: toy_metrics(x, mix, nsfg) for k, x in samples.items()}
  assert results["unseen"]["offmanifold"] == 1.0 and results["unseen"]["sliced_w1"] is None
  fig = toy2d.figure(results, samples, mix, nsfg, 1.0)
  notes = [[t.get_text() for t in ax.texts] for ax in fig.axes[:3]]
  assert notes == [[], ["no samples: all 200 non-finite\n(the sampler diverged)"],
                   ["5 of 200 samples non-finite"]]
  config.training.n_iters = 7
  toy2d.write_report(str(tmp_path), results, samples, mix, nsfg, 1.0, config)
  out = capsys.readouterr().out.strip().splitlines()
  assert out[-2] == toy2d.LEGEND and out[-3].startswith("| msgm |")
  assert all(c[1] in toy2d.LEGEND for c in toy2d.COLUMNS) and "SFG mode shares" in toy2d.LEGEND
  assert toy2d.LEGEND in (tmp_path / "report.md").read_text()
  assert "| unseen | 0.0000 | 0.00 | 1.0000 | n/a |" in (tmp_path / "report.md").read_text()
