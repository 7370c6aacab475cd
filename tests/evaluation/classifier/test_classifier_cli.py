"""The classifier through the CLI, as a user runs it (subprocesses, one CPU device)."""

import json

from tests.helpers import run_cli as _cli

TINY = ["--config=configs/classifier/digits.py", "--config.classifier.width=16",
        "--config.classifier.lr=3e-3", "--config.classifier.n_iters=60",
        "--config.classifier.snapshot_freq=60", "--config.classifier.log_freq=30"]


def test_train_then_eval_write_the_json_and_print_one_line(tmp_path):
  out = _cli(*TINY, f"--workdir={tmp_path}")
  assert out.returncode == 0, out.stderr[-2000:]
  assert "classifier:" in out.stderr  # the progress bar
  line = out.stdout.strip().splitlines()[-1]
  assert line.startswith("classifier step 60 (digits 8x8x1, 10 classes, test, 297 images): "
                         "accuracy ")
  record = json.loads((tmp_path / "classifier_eval.json").read_text())
  assert record["step"] == 60 and len(record["per_class_recall"]) == 10
  out = _cli(*TINY, f"--workdir={tmp_path}", "--mode=eval")
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().splitlines()[-1] == line
  out = _cli(*TINY, f"--workdir={tmp_path}", "--mode=eval", "--config.data.image_size=16")
  errors = [l for l in out.stderr.splitlines() if l.startswith("msgm_jax: error:")]
  assert out.returncode == 2 and len(errors) == 1 and "--config.data.image_size=16" in errors[0]


def test_bad_classifier_settings_are_one_line(tmp_path):
  out = _cli(*TINY, f"--workdir={tmp_path}", "--config.classifier.optimizer=lamb")
  assert out.returncode == 2
  assert ("msgm_jax: error: config field classifier.optimizer='lamb' is invalid: it must be one "
          "of sgd, adam") in out.stderr
  out = _cli(*TINY, "--mode=summary")
  assert out.returncode == 2 and "--mode=summary is for score models" in out.stderr
