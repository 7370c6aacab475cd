"""Two processes x 4 fake CPU devices through the real entrypoint equal one process x 8 devices.

The processes talk over localhost (jax.distributed, gloo collectives) exactly as on a cluster.
Both runs see the same global batches, so they take the same steps; they differ only in how
the gradient all-reduce sums (in memory vs gloo), which moves parameters by ~1e-8 after a
few steps (measured), while gradients averaged over one process's devices only would move
them by ~1e-5: the tolerances below tell the two apart. Eval and sample are compared on the
same checkpoint (bit-identical parameters): the adaptive RK45 of the likelihood amplifies
parameter differences of 1e-8 to ~2e-3 bits/dim (measured; 5e-4 on the same checkpoint),
so comparing the same checkpoint lets the tolerances be tighter. Each run starts fresh processes; a persistent
compilation cache shared by the module compiles each program once per layout.
"""

import glob
import json
import os
import shutil
import signal
import socket
import time

import chex
import jax
import numpy as np
import pytest

from msgm_jax.training import checkpoint
from msgm_jax.training import loop as train
from tests.helpers import load_config, run_cli

# The digits MSGM config, smaller still: one resolution, 8 channels, a 20-step sampler, every
# step moderating (one compiled step; the period's bookkeeping is tested in one process).
SMALL = {"model.nf": 8, "model.ch_mult": (1,), "model.num_scales": 20, "msgm.period": 1}
RUN = ["--config=configs/msgm/digits_ddpm.py", "--config.model.nf=8",
       "--config.model.ch_mult=(1,)", "--config.model.num_scales=20",
       "--config.msgm.period=1", "--config.training.steps_per_call=1",
       "--config.training.snapshot_freq=4", "--config.training.snapshot_freq_for_preemption=4",
       "--config.training.log_freq=2", "--config.training.eval_freq=0",
       "--config.training.snapshot_sampling=False", "--config.training.keep_every=0"]
STEPS = 32  # the kill lands after the first checkpoint (step 4), well before
TRAIN = [*RUN, f"--config.training.n_iters={STEPS}"]
EVAL = [*RUN, "--mode=eval", "--config.eval.batch_size=16", "--config.eval.num_batches=1",
        "--config.eval.bpd_num_examples=16"]
SAMPLE = [*RUN, "--mode=sample", "--config.eval.num_samples=24",
          "--config.sampling.batch_size=16"]
# A fast sampler across processes: DPM-Solver++ in 5 steps (sample mode's other code path,
# the fixed-grid samplers of msgm_jax/diffusion/fast_sampling.py).
FAST_SAMPLE = [*SAMPLE, "--config.sampling.method=dpm_solver", "--config.sampling.num_steps=5"]
DEADLINE = 900  # seconds for one run of the processes (a loaded 2-core machine)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax_cache")),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
          "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


class Processes:
  """Starts `python -m msgm_jax.main` as processes 0..n-1 of one job on localhost; every one
  is the leader of its own process group, killed at teardown if still running."""

  def __init__(self, logdir):
    self.logdir, self.started, self.runs = logdir, [], 0

  def start(self, args, env, n=2, devices=4, extra=None):
    with socket.socket() as s:  # a free port for the coordinator
      s.bind(("localhost", 0))
      port = s.getsockname()[1]
    self.runs += 1
    procs = []
    for i in range(n):
      flags = [f"--coordinator_address=localhost:{port}", f"--num_processes={n}",
               f"--process_id={i}", "--heartbeat_timeout=15"] if n > 1 else []
      logs = os.path.join(self.logdir, f"run{self.runs}.p{i}")
      procs.append(run_cli(*args, *flags, *(extra or {}).get(i, ()), wait=False, logs=logs,
                           env={**env, "XLA_FLAGS":
                                f"--xla_force_host_platform_device_count={devices}"}))
      procs[-1].logs = logs
    self.started += procs
    return procs

  def run(self, args, env, **kwargs):
    """Starts the processes and waits; returns [(returncode, stdout, stderr)]."""
    return [finish(p) for p in self.start(args, env, **kwargs)]

  def kill_all(self):
    for p in self.started:
      if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def finish(proc, timeout=DEADLINE):
  """(returncode, stdout without gloo's connection lines, stderr) of a started process."""
  proc.wait(timeout=timeout)
  with open(f"{proc.logs}.out") as out, open(f"{proc.logs}.err") as err:
    # Gloo prints its connections from several threads: a line may start mid-message.
    stdout = "".join(l for l in out if "[Gloo]" not in l and "peer ranks" not in l)
    return proc.returncode, stdout, err.read()


def ours(stdout: str) -> list:
  """The lines of stdout that the package printed. Gloo's connection messages ("[Gloo] Rank 1
  is connected to 7 peer ranks. Expected number of connected peer ranks is : 7") come from
  several threads and interleave, leaving fragments such as a lone "7" that no line filter
  catches; none of their words is one of ours, so we look for ours instead."""
  return [line for line in stdout.splitlines()
          if any(word in line for word in ("train", "eval", "sample", "step", "error", "msgm"))]


@pytest.fixture(scope="module")
def procs(tmp_path_factory):
  p = Processes(str(tmp_path_factory.mktemp("logs")))
  yield p
  p.kill_all()


def _ok(results):
  for code, _, err in results:
    assert code == 0, err[-3000:]
  return results


@pytest.fixture(scope="module")
def one(tmp_path_factory, procs, cache):
  """One process x 8 devices: train."""
  workdir = str(tmp_path_factory.mktemp("one") / "run")
  _ok(procs.run([*TRAIN, f"--workdir={workdir}"], cache, n=1, devices=8))
  return workdir


@pytest.fixture(scope="module")
def two(tmp_path_factory, procs, cache):
  """Two processes x 4 devices: train until the first checkpoint, kill process 1 (process 0
  must stop by itself), rerun to resume and finish, then eval and sample."""
  workdir = str(tmp_path_factory.mktemp("two") / "run")
  p0, p1 = procs.start([*RUN, "--config.training.n_iters=100000", f"--workdir={workdir}"],
                       cache)
  ckpts, deadline = os.path.join(workdir, "checkpoints"), time.time() + DEADLINE
  while not (os.path.isdir(ckpts) and any(s.isdigit() for s in os.listdir(ckpts))):
    assert p0.poll() is None and time.time() < deadline, finish(p0)[2][-3000:]
    time.sleep(0.1)
  os.killpg(p1.pid, signal.SIGKILL)
  killed_at = time.time()
  code, _, err = finish(p0, timeout=120)  # no hang: its next collective fails at once
  stopped = {"seconds": time.time() - killed_at, "code": code, "err": err}
  kept = max(int(s) for s in os.listdir(ckpts) if s.isdigit())
  assert kept < STEPS, "the kill came too late to test a resume"
  resumed = _ok(procs.run([*TRAIN, f"--workdir={workdir}"], cache))
  evaluated = _ok(procs.run([*EVAL, f"--workdir={workdir}"], cache))
  sampled = _ok(procs.run([*SAMPLE, f"--workdir={workdir}"], cache))
  fast = _ok(procs.run([*FAST_SAMPLE, f"--workdir={workdir}"], cache))
  return {"workdir": workdir, "stopped": stopped, "kept": kept, "resumed": resumed,
          "eval": evaluated, "sample": sampled, "fast": fast}


@pytest.fixture(scope="module")
def one_on_two(tmp_path_factory, procs, cache, two):
  """One process x 8 devices evaluating and sampling a copy of the checkpoints that two
  processes trained: the same parameters bit for bit, only the layout differs."""
  workdir = str(tmp_path_factory.mktemp("one_on_two") / "run")
  shutil.copytree(os.path.join(two["workdir"], "checkpoints"),
                  os.path.join(workdir, "checkpoints"))
  for args in (EVAL, SAMPLE, FAST_SAMPLE):
    _ok(procs.run([*args, f"--workdir={workdir}"], cache, n=1, devices=8))
  return workdir


def _state(workdir, step=STEPS):
  config = load_config("configs/msgm/digits_ddpm.py")
  for name, value in SMALL.items():
    section, field = name.split(".")
    config[section][field] = value
  run = train.build_run(config, workdir)
  ckpt, _ = checkpoint.Checkpointer.for_reading(workdir)
  state, _ = ckpt.restore(step, jax.eval_shape(lambda: train.fresh_state(run)))
  ckpt.close()
  return state


def test_killed_process_stops_the_other_and_the_rerun_resumes_to_the_same_parameters(one, two):
  # Process 0 stops by itself: its collective fails (our one line), or JAX's coordination
  # service misses process 1's heartbeats (--heartbeat_timeout=15) and ends it.
  stopped = two["stopped"]
  assert stopped["code"] != 0 and stopped["seconds"] < 90, stopped
  assert (stopped["err"].count("msgm_jax: error:") == 1 or
          "JAX distributed service detected fatal errors" in stopped["err"]), \
      stopped["err"][-3000:]
  (_, _, err0), _ = two["resumed"]
  assert f"resumed from step {two['kept']}" in err0
  a, b = _state(one), _state(two["workdir"])
  assert int(a.step) == int(b.step) == STEPS
  for tree in ("params", "ema_params", "opt_state"):
    chex.assert_trees_all_close(getattr(a, tree), getattr(b, tree), atol=1e-6, rtol=0)
  # Only process 0 writes the logs: each step once, and the same losses to ~1e-7.
  records = [[json.loads(line) for line in open(os.path.join(w, "metrics.jsonl"))]
             for w in (one, two["workdir"])]
  assert [r["step"] for r in records[1]] == [r["step"] for r in records[0]] == \
      list(range(2, STEPS + 1, 2))
  np.testing.assert_allclose([r["loss"] for r in records[1]], [r["loss"] for r in records[0]],
                             rtol=1e-6)
  (_, out0, _), (_, out1, _) = two["resumed"]
  assert "train: done at step" in out0 and not ours(out1)


def test_eval_over_two_processes_equals_one(one_on_two, two):
  (_, out0, _), (_, out1, _) = two["eval"]
  assert f"eval step {STEPS}: SFG dsm" in out0 and not ours(out1)
  (a,), (b,) = (glob.glob(os.path.join(w, "eval", "*", f"ckpt_{STEPS}.json"))
                for w in (one_on_two, two["workdir"]))
  a, b = json.load(open(a)), json.load(open(b))
  for subset in ("sfg", "nsfg"):
    assert a[subset]["dsm_examples"] == b[subset]["dsm_examples"] == 16
    assert a[subset]["likelihood_examples"] == b[subset]["likelihood_examples"] == 16
    # The same examples, noise and Hutchinson probes on the same global devices; the programs
    # of the two layouts round differently in the last bits, which the adaptive RK45 turns
    # into 3.5e-5 (relative) of bits/dim (measured).
    np.testing.assert_allclose(b[subset]["dsm_loss"], a[subset]["dsm_loss"], rtol=1e-6)
    np.testing.assert_allclose(b[subset]["bpd"], a[subset]["bpd"], rtol=2e-4)


def _samples_path(out: str) -> str:
  """The npz that sample mode's `step N: K samples -> <path>` line names."""
  (line,) = [l for l in out.splitlines() if " samples -> " in l]
  return line.split(" samples -> ")[1].strip()


@pytest.mark.parametrize("run, rtol", [
    # Each global device draws its own stream (the key folded with its index) at any layout;
    # the two programs differ in the last bits only (4e-7 relative, measured).
    ("sample", 1e-5),
    # DPM-Solver++: the same latents at either layout, then a deterministic ODE solve.
    ("fast", 1e-5)])
def test_sample_over_two_processes_equals_one(one_on_two, two, run, rtol):
  (_, out0, _), (_, out1, _) = two[run]
  assert "24 samples" in out0 and not ours(out1)
  b = _samples_path(out0)
  a = os.path.join(one_on_two, "samples", os.path.basename(b))  # the same settings' name
  assert os.path.dirname(b) == os.path.join(two["workdir"], "samples")
  with np.load(a) as a, np.load(b) as b:
    assert a["samples"].shape == b["samples"].shape == (24, 8, 8, 1)
    np.testing.assert_allclose(b["samples"], a["samples"], rtol=rtol, atol=1e-5)
    assert np.mean(a["images"] == b["images"]) > 0.99


def test_the_fast_sampler_ran_in_both_layouts(one_on_two, two):
  """The fast sampler's npz is its own (another name than the PC sampler's), written by the
  run that asked for it."""
  paths = {run: _samples_path(two[run][0][1]) for run in ("sample", "fast")}
  assert paths["sample"] != paths["fast"]
  assert sorted(glob.glob(os.path.join(one_on_two, "samples", "eval_*.npz"))) == sorted(
      os.path.join(one_on_two, "samples", os.path.basename(p)) for p in paths.values())


def test_an_error_in_one_process_stops_both_with_its_message(tmp_path, procs, cache):
  a_file = tmp_path / "file"
  a_file.write_text("not a directory")
  workdir = str(tmp_path / "run")
  start = time.time()
  # Process 1 alone is given a workdir that is a file: it fails at start-up, process 0 is
  # already on its way to training and must not wait for it.
  results = procs.run([*TRAIN, f"--workdir={workdir}"], cache,
                      extra={1: [f"--workdir={a_file}"]})
  (code0, _, err0), (code1, _, err1) = results
  assert code0 == code1 == 2 and time.time() - start < 300, (err0[-3000:], err1[-3000:])
  line1 = [l for l in err1.splitlines() if l.startswith("msgm_jax: error:")]
  line0 = [l for l in err0.splitlines() if l.startswith("msgm_jax: error:")]
  assert len(line1) == 1 and "is a file, not a directory" in line1[0]
  assert len(line0) == 1 and "process 1 of 2 stopped:" in line0[0]
  assert "is a file, not a directory" in line0[0]


SUMMARY = ["--config=configs/toy2d_single.py", "--config.model.hidden=32",
           "--config.model.n_layers=2", "--mode=summary"]


def test_start_up_prints_the_topology_once_and_the_other_process_says_it_is_done(procs, cache):
  (code0, out0, err0), (code1, _, err1) = procs.run(SUMMARY, cache, devices=2)
  assert code0 == code1 == 0, (err0[-3000:], err1[-3000:])
  assert err0.count("msgm_jax: 2 processes x 2 cpu devices (4 in all)") == 1, err0[-3000:]
  assert "processes x" not in err1 and "msgm_jax: process 1 of 2 done" in err1
  assert out0.strip().splitlines()[-1].startswith("params: ")


def test_a_missing_process_ends_the_start_up_with_one_line_naming_it(tmp_path, procs, cache):
  start = time.time()
  (code, _, err), = procs.run([*SUMMARY, "--init_timeout=5"], cache, n=1, devices=2,
                              extra={0: ["--coordinator_address=localhost:%d" % _free_port(),
                                         "--num_processes=2", "--process_id=0"]})
  lines = [l for l in err.splitlines() if l.startswith("msgm_jax: error:")]
  assert code == 2 and time.time() - start < 60, err[-3000:]  # never SIGABRT (134)
  assert lines == [l for l in err.splitlines() if "msgm_jax" in l or "Fatal" in l], err[-3000:]
  assert len(lines) == 1 and "process 0 of 2: process 1 did not connect to the coordinator " \
      "at localhost:" in lines[0] and "within 5 s (--init_timeout)" in lines[0]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]
