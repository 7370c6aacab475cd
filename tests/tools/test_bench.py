"""Tests for msgm_jax/tools/bench.py and measure.py: the harness reports every key with plausible values
(not timings: speed targets live in the bench command itself)."""

import json
import os
import statistics
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from msgm_jax.tools import bench
from msgm_jax.tools import measure
from tests.helpers import ROOT, tiny_toy_config

STATS = {"median", "min", "max", "cpu_median", "wall_s", "cpu_s"}


def _check_stats(stats):
  assert set(stats) == STATS
  assert 0 < stats["min"] <= stats["median"] <= stats["max"] < 60
  assert stats["min"] == min(stats["wall_s"]) and len(stats["wall_s"]) == len(stats["cpu_s"])
  assert 0 <= stats["cpu_median"] < 60 * (os.cpu_count() or 1)


@pytest.fixture(scope="module")
def toy_result():
  config = tiny_toy_config(steps_per_call=2)
  with config.unlocked():
    config.training.regime = "msgm"  # the train step then also carries an NSFG batch
  return bench.run_bench(config, what="all", steps=2, warmup=1, sample_steps=5)


def test_device_and_model_keys(toy_result):
  r = toy_result
  assert r["backend"] == "cpu" and r["device_kind"] == "cpu"
  assert r["device_count"] == len(jax.local_devices()) == 8  # tests/conftest.py's fake devices
  assert r["dtype"] == "float32" and r["model"] == "mlp" and r["data_shape"] == [2]
  assert r["params"] > 1000
  assert r["peak_flops_per_device"] is None  # no published peak for a CPU
  assert r["cpu_count"] == os.cpu_count() and len(r["loadavg"]) == 3
  json.dumps(r)  # JSON-ready as it is


def test_train_numbers(toy_result):
  t = toy_result["train"]
  assert t["global_batch"] == 64 and t["steps_per_call"] == 2
  assert 0 < t["compile_s"] < 300
  _check_stats(t["step_time_s"])
  assert t["images_per_s"] == pytest.approx(64 / t["step_time_s"]["median"])
  # An MLP of p parameters costs at least 2 p FLOPs per example forward (x3 with gradients).
  assert t["flops_per_step"] > 6 * toy_result["params"] * 64
  assert t["flops_per_s"] == pytest.approx(t["flops_per_step"] / t["step_time_s"]["median"])
  assert t["mfu"] is None


def test_msgm_rows(toy_result):
  """An MSGM config is timed moderating every step, skipping it, and as the DSM step."""
  r = toy_result
  assert r["train"]["moderation"] == "every step"
  for row in ("train_skipped", "train_dsm"):
    _check_stats(r[row]["step_time_s"])
    assert r[row]["global_batch"] == 64
  # The moderating step evaluates the network on the NSFG batch too: more FLOPs.
  assert r["train"]["flops_per_step"] > 1.5 * r["train_dsm"]["flops_per_step"]
  assert r["msgm_over_dsm"] == pytest.approx(
      r["train"]["step_time_s"]["median"] / r["train_dsm"]["step_time_s"]["median"])
  assert r["msgm_over_dsm_cpu"] == pytest.approx(
      r["train"]["step_time_s"]["cpu_median"] / r["train_dsm"]["step_time_s"]["cpu_median"])
  # Two steps per call: every per-call time is halved, the lists with the medians.
  stats = r["train"]["step_time_s"]
  assert stats["median"] == pytest.approx(statistics.median(stats["wall_s"]))
  assert stats["cpu_median"] == pytest.approx(statistics.median(stats["cpu_s"]))


def test_sampler_numbers(toy_result):
  pc, ode = toy_result["sample"], toy_result["ode"]
  assert pc["steps_timed"] == 5 and pc["nfe"] == 10  # reverse diffusion + one Langevin step
  assert pc["seconds_per_1000_steps"] == pytest.approx(pc["seconds"]["median"] * 200)
  assert ode["rtol"] == ode["atol"] == 1e-5 and 10 <= ode["nfe"] < 2000
  for r in (pc, ode):
    _check_stats(r["seconds"])
    assert r["batch"] == 64 and r["compile_s"] > 0
    assert r["nfe_per_s"] == pytest.approx(r["nfe"] / r["seconds"]["median"])
    assert r["flops_per_nfe"] > 2 * toy_result["params"] * 64


def test_fast_sampler_rows_time_a_whole_sample_at_num_steps():
  """--what=fast: a row per fixed-grid sampler the SDE takes (the toy's VE: heun only)."""
  config = tiny_toy_config()
  with config.unlocked():
    config.sampling.num_steps = 4
  r = bench.run_bench(config, what="fast", steps=2, warmup=1)
  assert "heun" in r and "ddim" not in r and "dpm_solver" not in r and "sample" not in r
  heun = r["heun"]
  assert heun["num_steps"] == 4 and heun["nfe"] == 9  # 2 per step + the final noise removal
  _check_stats(heun["seconds"])
  assert heun["nfe_per_s"] == pytest.approx(heun["nfe"] / heun["seconds"]["median"])


def test_flops_mode_counts_one_step_at_the_global_batch_without_compiling(toy_result):
  """--what=flops: the train step's FLOPs on one device at the whole global batch, from
  abstract parameters; a skipped MSGM step costs a DSM step, a moderating one about two."""
  config = tiny_toy_config()
  with config.unlocked():
    config.training.regime = "msgm"
    config.msgm.period = 4
  f = bench.run_bench(config, what="flops")["train_flops"]
  p = toy_result["params"]
  assert f["params"] == p and f["grad_allreduce_bytes"] == 4 * p
  # Forward and backward of an MLP: at least 6 FLOPs per parameter and example (batch 64).
  assert f["dsm"] > 6 * p * 64
  assert f["skipped"] == pytest.approx(f["dsm"], rel=0.01)
  assert 1.8 < f["moderating"] / f["dsm"] < 3.5
  assert f["average"] == pytest.approx((f["moderating"] + 3 * f["skipped"]) / 4)


def test_forward_numbers():
  config = tiny_toy_config()
  r = bench.bench_forward(config, steps=2, warmup=1)
  _check_stats(r["seconds"])
  assert r["batch"] == 64 and r["compile_s"] > 0
  assert r["images_per_s"] == pytest.approx(64 / r["seconds"]["median"])
  assert r["flops"] > 0 and r["mfu"] is None


def test_profile_mode_times_the_moderating_step_per_category():
  config = tiny_toy_config()
  with config.unlocked():
    config.training.regime = "msgm"
  p = bench.run_bench(config, what="profile", steps=1, warmup=1)["profile"]
  assert p["calls"] == 1 and p["steps_per_call"] == config.training.steps_per_call
  # the MLP's layers are dots, forward and backward, on every device (summed over devices)
  assert p["ops_per_call"]["matmul forward"] > 0 and p["ops_per_call"]["matmul backward"] > 0
  assert p["op_ms_per_call"] > 0
  json.dumps(p)


def test_peak_table():
  assert measure.peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
  assert measure.peak_flops("NVIDIA H100 PCIe", "bfloat16") == 756e12
  assert measure.peak_flops("NVIDIA A100-SXM4-40GB", "float32") == 156e12
  assert measure.peak_flops("TPU v5 lite", "bfloat16") == 197e12
  assert measure.peak_flops("TPU v5p", "bfloat16") == 459e12
  assert measure.peak_flops("cpu", "float32") is None
  assert measure.throughput(1e12, 0.5, 2, 1e13) == {"flops_per_s": 4e12, "mfu": 0.2}
  assert measure.throughput(None, 0.5, 2, 1e13) == {"flops_per_s": None, "mfu": None}


def test_lowered_flops_counts_a_matmul():
  a = jnp.ones((32, 16))
  assert measure.lowered_flops(jax.jit(lambda x: x @ x.T), a) == pytest.approx(2 * 32 * 32 * 16)


def test_cli_conv_comparison_on_digits(tmp_path):
  """The CPU convolution choice through the command line, on a tiny digits U-Net."""
  out = tmp_path / "bench.json"
  cmd = [sys.executable, "-m", "msgm_jax.tools.bench", f"--config={ROOT}/configs/digits_ddpm.py",
         "--what=train", "--steps=1", "--warmup=0", "--conv=hybrid", f"--out={out}",
         "--config.model.nf=8", "--config.model.ch_mult=(1,)", "--config.model.num_res_blocks=1",
         "--config.model.attn_resolutions=()", "--config.training.batch_size=16"]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  result = json.loads(out.read_text())
  assert json.loads(proc.stdout) == result
  assert result["model"] == "ddpm" and result["data_shape"] == [8, 8, 1]
  assert set(result["conv"]) == {"hybrid"}
  for r in (result["train"], result["conv"]["hybrid"]):
    _check_stats(r["step_time_s"])
    assert r["flops_per_step"] > 0
  # Same network, another convolution program: XLA's FLOP counts stay of the same size.
  assert result["conv"]["hybrid"]["flops_per_step"] == pytest.approx(
      result["train"]["flops_per_step"], rel=0.5)


def test_cli_error_is_one_line(tmp_path):
  cmd = [sys.executable, "-m", "msgm_jax.tools.bench", f"--config={ROOT}/configs/toy2d_single.py",
         "--what=train", "--config.training.regime=nonsense"]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith("msgm_jax.tools.bench: error: training.regime")
