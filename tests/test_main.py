"""The CLI as a user runs it (subprocesses: one CPU device, a fresh process each time)."""

import contextlib
import glob
import json
import os
import signal
import time

import chex
import numpy as np

from msgm_jax.training import checkpoint
from msgm_jax.training import loop as train
from tests.helpers import TOY_CLI, load_config, run_cli, tiny_toy_config


def _final_state(workdir, step):
  like = train.fresh_state(train.build_run(tiny_toy_config(), workdir))
  ckpt, _ = checkpoint.Checkpointer.for_reading(workdir)
  state, _ = ckpt.restore(step, like)
  ckpt.close()
  return state


def test_sigkill_then_rerun_ends_with_the_uninterrupted_parameters(tmp_path):
  args = [*TOY_CLI, "--config.training.n_iters=60",
          "--config.training.snapshot_freq=60"]
  straight = run_cli(*args, f"--workdir={tmp_path / 'a'}")
  assert straight.returncode == 0, straight.stderr[-2000:]
  victim = run_cli(*args, f"--workdir={tmp_path / 'b'}", wait=False)
  ckpts = tmp_path / "b" / "checkpoints"
  deadline = time.time() + 300
  while not (ckpts.exists() and any(p.name.isdigit() for p in ckpts.iterdir())):
    assert victim.poll() is None and time.time() < deadline, "no checkpoint appeared"
    time.sleep(0.2)
  time.sleep(0.3)  # somewhere in the middle of training (or of a save)
  victim.send_signal(signal.SIGKILL)
  victim.wait()
  resumed = run_cli(*args, f"--workdir={tmp_path / 'b'}")
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "resumed from step" in resumed.stderr
  a, b = _final_state(str(tmp_path / "a"), 60), _final_state(str(tmp_path / "b"), 60)
  chex.assert_trees_all_equal(a.params, b.params)
  chex.assert_trees_all_equal(a.ema_params, b.ema_params)


def test_digits_end_to_end_writes_checkpoints_events_and_samples(tmp_path):
  out = run_cli("--config=configs/digits_ddpm.py", f"--workdir={tmp_path}",
                "--config.training.n_iters=10", "--config.training.snapshot_freq=10",
                "--config.training.log_freq=5", "--config.training.eval_freq=0",
                "--config.model.num_scales=20", "--config.sampling.batch_size=16")
  assert out.returncode == 0, out.stderr[-2000:]
  assert os.listdir(tmp_path / "checkpoints") == ["10"]
  assert any(f.startswith("events.out") for f in os.listdir(tmp_path / "tensorboard"))
  assert os.path.getsize(tmp_path / "samples" / "samples_00000010.png") > 0
  assert "train:" in out.stderr  # the progress bar


def test_missing_dataset_is_one_fast_line(tmp_path):
  start = time.time()
  out = run_cli("--config=configs/vp/cifar10_ddpm_continuous.py", f"--workdir={tmp_path / 'w'}",
                f"--config.data.data_dir={tmp_path / 'empty'}", timeout=120)
  assert out.returncode == 2
  lines = [l for l in out.stderr.splitlines() if l.startswith("msgm_jax: error:")]
  assert len(lines) == 1 and "python -m msgm_jax.data.prepare" in lines[0]
  assert time.time() - start < 60  # no download attempt (that hangs for minutes)


def test_summary_and_bad_overrides():
  out = run_cli("--config=configs/digits_ddpm.py", "--mode=summary")
  assert out.returncode == 0 and out.stdout.strip().splitlines()[-1].startswith("params: ")
  out = run_cli("--config=configs/digits_ddpm.py", "--config.training.n_iterz=5",
                "--mode=summary")
  assert out.returncode == 2 and "n_iterz" in out.stderr
  out = run_cli("--config=configs/toy2d_single.py", "--workdir=/tmp/x",
                "--config.training.regime=forget")
  assert out.returncode == 2
  assert "training.regime='forget' is invalid: it must be one of standard" in out.stderr


def test_fast_samplers_in_sample_and_eval_mode(tmp_path, tiny_classifier):
  """--config.sampling.method=dpm_solver / heun (msgm_jax/diffusion/fast_sampling.py) through the
  entrypoint on a digits run (a checkpoint of the initial weights at step 10: the modes do not
  care how they were made); ddim on a VE SDE stops with one line naming heun."""
  workdir = str(tmp_path / "run")
  run = train.build_run(load_config("configs/digits_ddpm.py"), workdir)
  state = train.fresh_state(run)
  with contextlib.closing(checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))) as c:
    c.save(10, state, train.checkpoint_meta(run, state, 10))
  args = ["--config=configs/digits_ddpm.py", f"--workdir={workdir}",
          "--config.eval.num_samples=16", "--config.sampling.batch_size=16",
          "--config.sampling.num_steps=3"]
  out = run_cli(*args, "--mode=sample", "--config.sampling.method=dpm_solver")
  assert out.returncode == 0, out.stderr[-3000:]
  (npz,) = glob.glob(os.path.join(workdir, "samples", "eval_10_*.npz"))
  with np.load(npz) as f:
    assert f["samples"].shape == (16, 8, 8, 1) and np.all(np.isfinite(f["samples"]))
    assert json.loads(str(f["settings"]))["sampling.method"] == "dpm_solver"
  out = run_cli(*args, "--mode=eval", "--config.sampling.method=heun",
                f"--config.eval.classifier_weights={tiny_classifier[0]}",
                f"--config.eval.stats_dir={tmp_path / 'stats'}", "--config.eval.enable_bpd=False",
                "--config.eval.num_batches=1", "--config.eval.fid=off")
  assert out.returncode == 0, out.stderr[-3000:]
  (record,) = glob.glob(os.path.join(workdir, "eval", "*", "ckpt_10.json"))
  with open(record, encoding="utf-8") as f:
    samples = json.load(f)["samples"]
  assert samples["num_samples"] == 16 and 0 <= samples["nsfg_rate"] <= 1
  assert np.isfinite(samples["fd_classifier"])
  out = run_cli(*args, "--mode=sample", "--config.sampling.method=ddim",
                "--config.training.sde=vesde")
  lines = [l for l in out.stderr.splitlines() if l.startswith("msgm_jax: error:")]
  assert out.returncode == 2 and len(lines) == 1, out.stderr[-3000:]
  assert "takes the SDEs vpsde, subvpsde, not vesde; use --config.sampling.method=heun" in lines[0]


def test_library_noise_is_filtered_at_the_source():
  import logging as pylogging  # pylint: disable=import-outside-toplevel
  from msgm_jax import main  # pylint: disable=import-outside-toplevel

  def record(path, level, msg):
    return pylogging.LogRecord("x", level, path, 1, msg, None, None)

  tpu = "Unable to initialize backend 'tpu': INTERNAL: Failed to open libtpu.so"
  assert not main._library_noise_filter(record("/jax/_src/xla_bridge.py", pylogging.INFO, tpu))
  assert not main._library_noise_filter(record("/orbax/checkpoint/x.py", pylogging.INFO, "saved"))
  assert main._library_noise_filter(record("/jax/_src/xla_bridge.py", pylogging.WARNING, tpu))
  assert main._library_noise_filter(record("/msgm_jax/training/loop.py", pylogging.INFO, "step"))
