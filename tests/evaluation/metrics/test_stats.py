"""The statistics command as a user runs it (subprocesses, one CPU device), and run() itself."""

import os
import subprocess
import sys

import jax
import numpy as np

from msgm_jax.evaluation import metrics
from msgm_jax.data import datasets
from msgm_jax.evaluation.metrics import stats as stats_cli
from tests.helpers import ROOT, load_config
from tests.evaluation.metrics import projection

DIGITS = ["--config=configs/msgm/digits_ddpm.py"]  # NSFG digit 0


def _cli(*args):
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  return subprocess.run([sys.executable, "-m", "msgm_jax.evaluation.metrics.stats", *args], env=env,
                        cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_computes_caches_and_reuses_sfg_and_nsfg_statistics_of_the_digits(tmp_path):
  args = [*DIGITS, "--extractor=pixels", f"--config.eval.stats_dir={tmp_path}"]
  first = _cli(*args)
  assert first.returncode == 0, first.stderr[-2000:]
  lines = first.stdout.strip().splitlines()
  assert [line.split(":")[0] for line in lines] == ["sfg", "nsfg"]
  assert all("computed in" in line for line in lines)
  # Independent truth: the raw train digits, split by label, as pixels in [0, 1].
  raw = datasets.load_digits("train")
  for subset, keep in (("sfg", raw.labels() != 0), ("nsfg", raw.labels() == 0)):
    path = tmp_path / f"digits-8x8x1_train_{subset}-nsfg0_all_pixels-none.npz"
    pixels = raw.images[keep].reshape(int(keep.sum()), -1).astype(np.float64) / 255.0
    stats = metrics.load_stats(str(path))
    assert stats.n == len(pixels)
    np.testing.assert_allclose(stats.mu, pixels.mean(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(stats.sigma, np.cov(pixels, rowvar=False), rtol=1e-5, atol=1e-7)
  again = _cli(*args, "--subsets=nsfg")
  assert again.returncode == 0 and "cached" in again.stdout


def test_user_errors_are_one_line_naming_the_fix(tmp_path):
  out = _cli(*DIGITS, f"--config.eval.stats_dir={tmp_path}")  # inception, no weights given
  assert out.returncode == 2
  assert out.stderr.strip().splitlines()[-1].startswith(
      "msgm_jax.evaluation.metrics.stats: error: no Inception weights given: pass pytorch-fid's "
      "pt_inception-2015-12-05-6726825d.pth")
  out = _cli(*DIGITS, "--extractor=nope")
  assert out.returncode == 2 and "valid names: classifier, inception, pixels" in out.stderr
  assert not os.listdir(tmp_path)


def test_run_uses_a_registered_extractor_and_the_test_split(tmp_path):
  config = load_config("configs/msgm/digits_ddpm.py")
  config.eval.stats_dir = str(tmp_path)
  paths = stats_cli.run(config, projection.NAME, "test", ["sfg", "nsfg"], num_examples=0,
                        batch_size=16, overwrite=False, devices=jax.local_devices())
  labels = datasets.load_digits("test").labels()
  for path, count in zip(paths, ((labels != 0).sum(), (labels == 0).sum())):
    stats = metrics.load_stats(path)
    assert stats.n == count and stats.dim == projection.DIM
    assert os.path.basename(path).startswith("digits-8x8x1_test_")
