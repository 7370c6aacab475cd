"""The samplers' trade-off report (msgm_jax/experiments/sampler_tradeoff.py) from eval records."""

import json
import os

import jax
import pytest

from msgm_jax.diffusion import fast_sampling
from msgm_jax.diffusion import sde as sde_lib
from msgm_jax.experiments import sampler_tradeoff


def _record(workdir, tag, rate, fd):
  path = os.path.join(workdir, "eval", tag, "ckpt_2000.json")
  os.makedirs(os.path.dirname(path))
  with open(path, "w") as f:
    json.dump({"step": 2000, "samples": {"num_samples": 2000, "nsfg_rate": rate,
                                         "nsfg_rate_ci": [rate - 0.01, rate + 0.01],
                                         "fd_classifier": fd}}, f)
  return path


@pytest.fixture
def lines(tmp_path):
  workdir = str(tmp_path / "unseen")
  os.makedirs(workdir)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump({"model": {"num_scales": 500}}, f)
  pc, dpm, heun, ode, pc1000 = (_record(workdir, t, r, d) for t, r, d in (
      ("a", 0.07, 41.7), ("b", 0.05, 44.0), ("c", 0.06, 50.0), ("d", 0.05, 43.0),
      ("e", 0.068, 41.0)))
  return [f"unseen 7.5 {pc}",
          f"unseen 18.6 {dpm} --config.sampling.method=dpm_solver --config.sampling.num_steps=20",
          f"unseen 20.8 {heun} --config.sampling.method=heun --config.sampling.num_steps=10",
          "# a comment, then a blank line", "",
          f"unseen 95.0 {ode} --config.sampling.method=ode",
          f"unseen 250.0 {pc1000} --config.model.num_scales=1000",
          f"unseen 130.0 {pc}",  # the PC row again, timed on a fresh copy: replaces the first
          # DDIM with and without noise: two rows
          f"unseen 21.0 {heun} --config.sampling.method=ddim --config.sampling.ddim_eta=1.0 "
          "--config.sampling.num_steps=20",
          f"unseen 19.0 {dpm} --config.sampling.method=ddim --config.sampling.num_steps=20"]


def test_rows_name_each_sampler_with_its_nfe_and_the_last_timing(lines):
  rows = sampler_tradeoff.collect(lines)
  got = [(r["sampler"], r["steps"], r["nfe"], r["wall_s"], r["nsfg_rate"], r["reference"])
         for r in rows]
  assert got == [("pc", 500, 500, 130.0, 0.07, True), ("dpm_solver", 20, 21, 18.6, 0.05, False),
                 ("heun", 10, 21, 20.8, 0.06, False), ("ode", None, None, 95.0, 0.05, False),
                 ("pc", 1000, 1000, 250.0, 0.068, False),
                 ("ddim eta=1", 20, 21, 21.0, 0.06, False),
                 ("ddim", 20, 21, 19.0, 0.05, False)]


def test_the_table_and_the_figure(lines, tmp_path):
  rows = sampler_tradeoff.collect(lines)
  text = sampler_tradeoff.table(rows)
  assert "| dpm_solver | 20 | 21 | 0.0500 [0.0400, 0.0600] | 44.00 | 19 |" in text
  assert "| ode (RK45) | adaptive | adaptive | 0.0500 [0.0400, 0.0600] | 43.00 | 95 |" in text
  assert "| **pc (Euler-Maruyama), the reference** | 500 | 500 |" in text
  assert "| pc (Euler-Maruyama) | 1000 | 1000 |" in text
  assert "| ddim eta=1 | 20 | 21 |" in text
  path = str(tmp_path / "tradeoff.png")
  sampler_tradeoff.figure(rows, path)
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("method", sampler_tradeoff.FIXED_GRID)
@pytest.mark.parametrize("denoise", [True, False])
def test_nfe_is_what_the_samplers_count(method, denoise):
  """Against the count each fixed-grid sampler returns (msgm_jax/diffusion/fast_sampling.py)."""
  fn = fast_sampling.FAST_SAMPLERS.get(method).fn
  sde = sde_lib.VPSDE()
  _, count = fn(jax.random.key(0), sde, lambda x, t: -x, (2, 2), num_steps=3, denoise=denoise)
  assert sampler_tradeoff.nfe(method, 3, noise_removal=denoise) == int(count)


def test_nfe_of_pc_and_ode():
  assert sampler_tradeoff.nfe("pc", 1000) == 1000  # one predictor step per level, no corrector
  assert sampler_tradeoff.nfe("ode", 0) is None  # adaptive


def test_a_short_line_is_a_one_line_error():
  with pytest.raises(ValueError, match="needs '<model> <wall seconds> <record json>"):
    sampler_tradeoff.parse_line("unseen 7.5")
