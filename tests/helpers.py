"""Shared test helpers: config loading, small configs that compile fast, the CLI."""

import importlib.util
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# CLI overrides that shrink configs/toy2d_single.py like tiny_toy_config (one step per call).
TOY_CLI = ["--config=configs/toy2d_single.py", "--config.model.hidden=32",
           "--config.model.n_layers=2", "--config.training.batch_size=64",
           "--config.training.snapshot_freq_for_preemption=10", "--config.training.log_freq=10",
           "--config.training.steps_per_call=1", "--config.training.snapshot_sampling=False",
           "--config.training.eval_freq=0", "--config.model.num_scales=50"]


def run_cli(*args, wait=True, timeout=600, env=None, logs=None):
  """`python -m msgm_jax.main *args` from the repository root, as a user runs it: one CPU
  device (unless env says otherwise), a fresh process. wait=False returns the Popen, the
  leader of a process group of its own (os.killpg ends it and anything it started); with
  logs=<path> its stdout and stderr go to <path>.out and <path>.err instead of pipes (a
  long run fills a pipe nobody reads and stops)."""
  full = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  full.pop("XLA_FLAGS", None)  # conftest's 8 fake devices are for the tests' own process
  full.update(env or {})
  cmd = [sys.executable, "-m", "msgm_jax.main", *args]
  if not wait:
    # pylint: disable=consider-using-with  # the files stay open for the child's lifetime
    out = open(f"{logs}.out", "w") if logs else subprocess.PIPE
    err = open(f"{logs}.err", "w") if logs else subprocess.PIPE
    return subprocess.Popen(cmd, env=full, cwd=ROOT, stdout=out, stderr=err, text=True,
                            start_new_session=True)
  return subprocess.run(cmd, env=full, cwd=ROOT, capture_output=True, text=True,
                        timeout=timeout)


def load_config(relpath: str):
  """Loads configs/<relpath> the way config_flags does (a file path, not an import)."""
  path = os.path.join(ROOT, relpath)
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def tiny_toy_config(**training):
  """The toy2d config shrunk to a 32-unit MLP, small batches and a few steps."""
  config = load_config("configs/toy2d_single.py")
  config.model.hidden = 32
  config.model.n_layers = 2
  config.training.batch_size = 64
  config.training.n_iters = 20
  config.training.steps_per_call = 5
  config.training.snapshot_freq = 20
  config.training.snapshot_freq_for_preemption = 10
  config.training.log_freq = 5
  config.training.snapshot_sampling = False
  config.model.num_scales = 50
  config.sampling.batch_size = 64
  for k, v in training.items():
    config.training[k] = v
  return config


def tiny_classifier_setup(steps: int = 120, width: int = 16):
  """(config, DataSpec, ClassifierInfo) of configs/classifier/digits.py shrunk to `steps`
  steps of a width-`width` CNN (about 0.8 test accuracy at 120 steps)."""
  # pylint: disable=import-outside-toplevel
  from msgm_jax import data
  from msgm_jax.evaluation.classifier import ClassifierInfo, ClassifierSettings
  config = load_config("configs/classifier/digits.py")
  config.classifier.update(dict(width=width, lr=3e-3, n_iters=steps, snapshot_freq=steps // 2,
                                log_freq=30))
  spec = data.DataSpec.from_config(config.data)
  return config, spec, ClassifierInfo.for_data(spec, ClassifierSettings.from_config(
      config.classifier))


def train_tiny_classifier(workdir: str, steps: int = 120, width: int = 16):
  """Trains and evaluates tiny_classifier_setup's classifier in workdir (classifier_eval.json);
  returns (spec, Classifier, evaluation record)."""
  # pylint: disable=import-outside-toplevel
  from msgm_jax.evaluation.classifier import evaluate
  from msgm_jax.evaluation.classifier import train as classifier_train
  config, spec, info = tiny_classifier_setup(steps, width)
  clf = classifier_train.train(spec, info, seed=config.seed, workdir=workdir)
  return spec, clf, evaluate.report(clf, spec, workdir, info.settings)


def check_report_rows(workdir, rows: str, num_samples: int, step: int) -> dict:
  """Reads a classifier-judged report's report.json (msgm_jax/experiments/digits.py) and checks
  that it has each of the comma-separated rows, then `data`, and that every row has its
  columns: the rate inside its interval, finite metrics. Returns the report."""
  # pylint: disable=import-outside-toplevel
  import json
  import os

  import numpy as np
  with open(os.path.join(workdir, "report.json"), encoding="utf-8") as f:
    saved = json.load(f)
  assert list(saved) == rows.split(",") + ["data"]
  for name in rows.split(","):
    r = saved[name]
    assert r["num_samples"] == num_samples and r["step"] == step
    assert 0 <= r["nsfg_rate_ci"][0] <= r["nsfg_rate"] <= r["nsfg_rate_ci"][1] <= 1
    for key in ("fd_classifier", "bpd_sfg", "bpd_nsfg", "floor", "recall"):
      assert np.isfinite(r[key]), (name, key)
  return saved
