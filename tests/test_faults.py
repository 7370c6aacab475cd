"""Faults injected through the real entrypoint (issue 11's table), on one tiny trained toy run.

Each test copies the run, breaks something as a user or a crash would, runs
`python -m msgm_jax.main` and checks the outcome: the run goes on from the right step, or stops
with one `msgm_jax: error:` line (exit status 2) naming the fix, and nothing a user saved is
lost or overwritten. The subprocesses share a persistent compilation cache, so each distinct
program compiles once for the module.
"""

import glob
import json
import os
import shutil
import signal
import socket
import struct
import time

import chex
import jax
import numpy as np
import pytest

from msgm_jax.training import checkpoint
from msgm_jax.training import loop as train
from tests.helpers import TOY_CLI, run_cli, tiny_toy_config

RUN = [*TOY_CLI, "--config.training.log_freq=5", "--config.training.eval_freq=10",
       "--config.training.n_iters=20", "--config.training.snapshot_freq=20"]
TINY_EVAL = ["--config.eval.batch_size=32", "--config.eval.num_batches=1",
             "--config.eval.bpd_num_examples=32", "--config.eval.num_samples=64",
             "--config.sampling.batch_size=64"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax_cache")),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
          "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cache):
  """20 steps; checkpoints at 10 and 20, logs every 5, eval_loss every 10."""
  workdir = str(tmp_path_factory.mktemp("trained") / "run")
  out = run_cli(*RUN, f"--workdir={workdir}", env=cache)
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir


@pytest.fixture
def run(trained, tmp_path):
  """A copy of the trained run for one test to break."""
  workdir = str(tmp_path / "run")
  shutil.copytree(trained, workdir)
  return workdir


def _error_line(out) -> str:
  """The one error line of a run that must stop with exit status 2."""
  assert out.returncode == 2, out.stderr[-3000:]
  lines = [l for l in out.stderr.splitlines() if l.startswith("msgm_jax: error:")]
  assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-3000:]
  return lines[0]


def _moved_line(out, workdir: str, step: int) -> str:
  assert "Event loop is closed" not in out.stderr and "Traceback" not in out.stderr, \
      out.stderr[-3000:]  # Orbax's abandoned reads stay quiet
  lines = [l for l in out.stderr.splitlines() if f"checkpoints/{step} cannot be read" in l]
  assert len(lines) == 1 and f"checkpoints/{step}.corrupt" in lines[0], out.stderr[-3000:]
  assert os.path.isdir(os.path.join(workdir, "checkpoints", f"{step}.corrupt"))
  return lines[0]


def _state(workdir: str, step: int):
  run_ = train.build_run(tiny_toy_config(), workdir)
  ckpt, _ = checkpoint.Checkpointer.for_reading(workdir)
  state, _ = ckpt.restore(step, jax.eval_shape(lambda: train.fresh_state(run_)))
  ckpt.close()
  return state


def _metric_steps(workdir: str, key: str = "loss"):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r["step"] for r in map(json.loads, f) if key in r]


def _event_steps(workdir: str, tag: str = "loss"):
  """Steps of scalar `tag` over every event file of the run, read without the project's code."""
  from tensorboardX.proto import event_pb2
  steps = []
  for path in glob.glob(os.path.join(workdir, "tensorboard", "events.*")):
    with open(path, "rb") as f:
      data = f.read()
    pos = 0
    while pos + 12 <= len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      if pos + 16 + length > len(data):
        break  # a record cut short by a kill
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      steps += [event.step for v in event.summary.value if v.tag == tag]
      pos += 16 + length
  return sorted(steps)


# ------------------------------------------------------------------- damaged checkpoints

def test_truncated_state_file_then_train_resumes_from_the_intact_checkpoint(run, trained, cache):
  data_file = glob.glob(os.path.join(run, "checkpoints", "20", "state", "d", "*"))[0]
  os.truncate(data_file, os.path.getsize(data_file) // 2)
  out = run_cli(*RUN, f"--workdir={run}", env=cache)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "using step 10 instead" in _moved_line(out, run, 20)
  assert "resumed from step 10" in out.stderr
  chex.assert_trees_all_equal(_state(run, 20), _state(trained, 20))  # bit-identical again
  assert _metric_steps(run) == [5, 10, 15, 20] and _event_steps(run) == [5, 10, 15, 20]
  assert f"train: done at step 20; outputs in {run}" in out.stdout


def test_deleted_metadata_then_train_resumes_from_the_intact_checkpoint(run, cache):
  os.remove(os.path.join(run, "checkpoints", "20", "state", "_METADATA"))
  out = run_cli(*RUN, f"--workdir={run}", "--config.training.n_iters=30", env=cache)
  assert out.returncode == 0, out.stderr[-3000:]
  _moved_line(out, run, 20)
  assert _metric_steps(run) == [5, 10, 15, 20, 25, 30]
  assert _metric_steps(run, "eval_loss") == [10, 20, 30]


def test_deleted_process_files_then_sample_uses_the_intact_checkpoint(run, cache):
  shutil.rmtree(os.path.join(run, "checkpoints", "20", "state", "ocdbt.process_0"))
  out = run_cli(*RUN, *TINY_EVAL, f"--workdir={run}", "--mode=sample", env=cache)
  assert out.returncode == 0, out.stderr[-3000:]
  _moved_line(out, run, 20)
  (npz,) = glob.glob(os.path.join(run, "samples", "eval_10_*.npz"))
  with np.load(npz) as f:
    assert f["samples"].shape == (64, 2) and np.all(np.isfinite(f["samples"]))
  assert "sample step 10: 100%" in out.stderr  # the progress bar
  again = run_cli(*RUN, *TINY_EVAL, f"--workdir={run}", "--mode=sample", env=cache)
  assert again.returncode == 0, again.stderr[-3000:]  # as every mode's rerun (README)
  assert f"sample step 10: {npz}" in again.stdout
  assert "already stored with these settings; --overwrite does it again" in again.stdout
  assert "sample step 10: 100%" not in again.stderr  # nothing was drawn again


def test_garbled_array_then_eval_uses_the_intact_checkpoint_with_progress(run, cache):
  data_dir = os.path.join(run, "checkpoints", "20", "state", "ocdbt.process_0", "d")
  sizes = {f: os.path.getsize(os.path.join(data_dir, f)) for f in os.listdir(data_dir)}
  with open(os.path.join(data_dir, max(sizes, key=sizes.get)), "r+b") as f:
    f.seek(sizes[max(sizes, key=sizes.get)] // 3)
    f.write(b"\x5a" * 16)
  out = run_cli(*RUN, *TINY_EVAL, f"--workdir={run}", "--mode=eval", env=cache)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "checksum" in _moved_line(out, run, 20)
  for part in ("sfg dsm", "sfg likelihood", "nsfg dsm", "nsfg likelihood"):
    assert f"eval step 10: {part}: 100%" in out.stderr, part
  (record,) = glob.glob(os.path.join(run, "eval", "*", "ckpt_10.json"))
  assert "eval step 10: SFG dsm" in out.stdout and record in out.stdout
  again = run_cli(*RUN, *TINY_EVAL, f"--workdir={run}", "--mode=eval", env=cache)
  assert again.returncode == 0 and "already stored with these settings; --overwrite does it " \
      "again" in again.stdout
  assert "likelihood" not in again.stderr  # nothing was computed again


# ----------------------------------------------------------------------------- kill -9

def test_kill_loses_no_logged_step_before_the_checkpoint_and_duplicates_none(tmp_path, cache):
  workdir = str(tmp_path / "run")
  args = [*RUN, "--config.training.n_iters=100000", f"--workdir={workdir}"]
  victim = run_cli(*args, wait=False, env=cache)
  ckpts = os.path.join(workdir, "checkpoints")
  deadline = time.time() + 300
  while not (os.path.isdir(ckpts) and any(int(s) >= 20 for s in os.listdir(ckpts)
                                          if s.isdigit())):
    assert victim.poll() is None and time.time() < deadline, victim.stderr.read()[-3000:]
    time.sleep(0.1)
  victim.send_signal(signal.SIGKILL)
  victim.wait()
  last = max(int(s) for s in os.listdir(ckpts) if s.isdigit())
  logged = [s for s in range(5, last + 1, 5)]
  assert [s for s in _event_steps(workdir) if s <= last] == logged  # flushed at checkpoints
  resumed = run_cli(*args[:-2], f"--config.training.n_iters={last + 20}", f"--workdir={workdir}",
                    env=cache)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"resumed from step {last}" in resumed.stderr
  # The killed run's lock is stale (its pid is gone): taken over with one line.
  (took,) = [l for l in resumed.stderr.splitlines() if "took the lock over" in l]
  assert f"was locked by host {socket.gethostname()} pid {victim.pid} since " in took
  assert "which is no longer running" in took
  every = list(range(5, last + 21, 5))
  assert _metric_steps(workdir) == every and _event_steps(workdir) == every
  assert _metric_steps(workdir, "eval_loss") == list(range(10, last + 21, 10))


# ------------------------------------------------------------------------ config changes

def test_sample_with_another_sde_is_refused_and_earlier_outputs_are_kept(run, cache):
  earlier = os.path.join(run, "samples", "eval_20_earlier.npz")
  os.makedirs(os.path.dirname(earlier))
  np.savez(earlier, samples=np.ones((3, 2)))
  out = run_cli(*RUN, f"--workdir={run}", "--mode=sample", "--config.training.sde=vpsde",
                env=cache)
  line = _error_line(out)
  assert "training.sde='vpsde' (the run's: 'vesde')" in line and "--allow_config_change" in line
  assert os.listdir(os.path.join(run, "samples")) == ["eval_20_earlier.npz"]


def test_resume_with_another_sde_is_refused(run, cache):
  before = sorted(os.listdir(os.path.join(run, "checkpoints")))
  out = run_cli(*RUN, f"--workdir={run}", "--config.training.sde=vpsde",
                "--config.training.n_iters=30", env=cache)
  assert "training.sde='vpsde' (the run's: 'vesde')" in _error_line(out)
  assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == before


# ------------------------------------------------------------------- bad input, one line

def test_typo_and_missing_or_broken_config_file(tmp_path):
  line = _error_line(run_cli(*TOY_CLI, "--config.training.n_itres=5", f"--workdir={tmp_path}"))
  assert "no field training.n_itres; did you mean --config.training.n_iters?" in line
  line = _error_line(run_cli("--config=configs/nope.py", f"--workdir={tmp_path}"))
  assert "config file configs/nope.py does not exist" in line
  broken = tmp_path / "broken.py"
  broken.write_text("def get_config(:\n")
  line = _error_line(run_cli(f"--config={broken}", f"--workdir={tmp_path}"))
  assert "cannot be loaded: SyntaxError" in line
  traced = run_cli(*TOY_CLI, "--config.training.n_itres=5", "--traceback")
  assert traced.returncode != 0 and "Traceback (most recent call last)" in traced.stderr


@pytest.mark.parametrize("override,want", [
    ("sampling.batch_size=0", "sampling.batch_size=0 is invalid: it must be an integer >= 1"),
    ("training.snapshot_freq=0", "training.snapshot_freq=0 is invalid"),
    ("training.log_freq=0", "training.log_freq=0 is invalid"),
    ("eval.batch_size=0", "eval.batch_size=0 is invalid"),
    ("training.batch_size=-64", "training.batch_size=-64 is invalid"),
    ("optim.lr=-1", "optim.lr=-1.0 is invalid: it must be a number > 0.0"),
])
def test_bad_values_stop_before_anything_runs(tmp_path, override, want):
  line = _error_line(run_cli(*TOY_CLI, f"--config.{override}", f"--workdir={tmp_path / 'w'}"))
  assert want in line and f"--config.{override.split('=')[0]}=" in line
  assert not os.path.exists(tmp_path / "w" / "checkpoints")


@pytest.mark.parametrize("field", ["training.batch_size", "eval.batch_size"])
def test_batches_that_do_not_split_over_the_devices(tmp_path, field):
  out = run_cli(*TOY_CLI, f"--config.{field}=63", f"--workdir={tmp_path}",
                env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
  assert f"{field}=63 is not a multiple of 2 (it is split over 2 devices" in _error_line(out)


def test_workdir_that_is_a_file_or_not_writable(tmp_path):
  a_file = tmp_path / "file"
  a_file.write_text("mine")
  line = _error_line(run_cli(*TOY_CLI, f"--workdir={a_file}"))
  assert "is a file, not a directory" in line and a_file.read_text() == "mine"
  if os.geteuid() == 0:  # root writes anywhere but in /sys
    read_only = "/sys/kernel"
  else:
    read_only = str(tmp_path / "ro")
    os.mkdir(read_only, 0o555)
  line = _error_line(run_cli(*TOY_CLI, f"--workdir={read_only}/run"))
  assert "cannot be created" in line or "is not writable" in line


def test_msgm_config_with_an_unprepared_dataset_fails_before_building(tmp_path):
  start = time.time()
  out = run_cli("--config=configs/msgm/cifar10_vp_ddpmpp_continuous.py",
                f"--workdir={tmp_path / 'w'}", f"--config.data.data_dir={tmp_path / 'empty'}")
  assert "python -m msgm_jax.data.prepare" in _error_line(out)
  assert time.time() - start < 60  # the model (62M parameters) is never initialised
