"""Preemption through the entrypoint (msgm_jax/runtime/preemption.py): SIGTERM during training saves
one checkpoint at the next step, ends with one line and exit status 75, and the rerun of the
same command reaches the final step with parameters bit-identical to an uninterrupted run."""

import json
import os
import signal
import time

import chex

from msgm_jax.runtime import preemption
from msgm_jax.runtime import workdir_lock
from tests.helpers import TOY_CLI, run_cli
from tests import test_multihost as multihost
from tests.test_faults import _state
from tests.test_multihost import cache  # pylint: disable=unused-import  # a fixture

N = 300
RUN = [*TOY_CLI, "--config.training.log_freq=5", "--config.training.snapshot_freq=1000",
       "--config.training.snapshot_freq_for_preemption=1000", f"--config.training.n_iters={N}"]


def _steps(workdir):
  ckpts = os.path.join(workdir, "checkpoints")
  return sorted(int(s) for s in os.listdir(ckpts) if s.isdigit()) if os.path.isdir(ckpts) else []


def test_sigterm_saves_the_next_step_and_the_rerun_is_bit_exact(tmp_path):
  workdir = str(tmp_path / "run")
  args = [*RUN, f"--workdir={workdir}"]
  logs = str(tmp_path / "p")
  proc = run_cli(*args, wait=False, logs=logs)
  try:
    deadline = time.time() + 300
    metrics = os.path.join(workdir, "metrics.jsonl")
    while not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
      assert proc.poll() is None and time.time() < deadline, "no step was logged"
      time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=300)
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
  err = open(f"{logs}.err").read()
  (step,) = _steps(workdir)
  assert 0 < step < N, (step, err[-3000:])
  ours = [l for l in err.splitlines() if l.startswith("msgm_jax:")]
  assert proc.returncode == preemption.EXIT_STATUS and "Traceback" not in err, err[-3000:]
  assert ours == [f"msgm_jax: preempted at step {step}: checkpoint saved at "
                  f"{workdir}/checkpoints/{step}; rerun the same command to resume"], err[-3000:]
  assert not os.path.exists(os.path.join(workdir, workdir_lock.LOCK_NAME))
  resumed = run_cli(*args)
  assert resumed.returncode == 0 and f"resumed from step {step}" in resumed.stderr, \
      resumed.stderr[-3000:]
  straight = str(tmp_path / "straight")
  out = run_cli(*RUN, f"--workdir={straight}")
  assert out.returncode == 0, out.stderr[-3000:]
  chex.assert_trees_all_equal(_state(workdir, N), _state(straight, N))


def _last_logged(metrics):
  if not os.path.exists(metrics):
    return 0
  lines = [l for l in open(metrics).read().splitlines() if l.strip()]
  return json.loads(lines[-1])["step"] if lines else 0


def _train_until_logged_then_sigterm(procs, args, cache, workdir, after, signalled):
  """Starts the 2 processes, waits for a logged step past `after`, sends SIGTERM to the
  processes `signalled`; returns the saved step after checking both processes' exit."""
  p0, p1 = procs.start([*args, "--config.training.n_iters=100000"], cache)
  metrics, deadline = os.path.join(workdir, "metrics.jsonl"), time.time() + 300
  while _last_logged(metrics) <= after:
    assert p0.poll() is None and time.time() < deadline, multihost.finish(p0)[2][-3000:]
    time.sleep(0.1)
  for i in signalled:
    (p0, p1)[i].send_signal(signal.SIGTERM)
  results = [multihost.finish(p, timeout=120) for p in (p0, p1)]
  step = _steps(workdir)[-1]
  assert step > after, (step, after)
  line = (f"msgm_jax: preempted at step {step}: checkpoint saved at {workdir}/checkpoints/"
          f"{step}; rerun the same command to resume")
  for code, _, err in results:
    assert code == preemption.EXIT_STATUS and line in err.splitlines(), err[-3000:]
  return step


def test_sigterm_to_one_or_both_of_two_processes_saves_the_same_step_on_both(tmp_path, cache):
  """2 processes x 4 CPU devices: SIGTERM to process 1 only, then (in the rerun) to both; each
  time both save the same step and leave with the line; the rerun to N + 4 equals an
  uninterrupted run to N + 4 bit for bit."""
  procs = multihost.Processes(str(tmp_path))
  workdir = str(tmp_path / "run")
  args = [*multihost.RUN, "--config.training.snapshot_freq=1000",
          "--config.training.snapshot_freq_for_preemption=1000", f"--workdir={workdir}"]
  try:
    first = _train_until_logged_then_sigterm(procs, args, cache, workdir, 0, signalled=(1,))
    assert _steps(workdir) == [first]
    step = _train_until_logged_then_sigterm(procs, args, cache, workdir, first,
                                            signalled=(0, 1))
    assert _steps(workdir) == [first, step]
    final = [f"--config.training.n_iters={step + 4}"]
    for code, _, err in procs.run([*args, *final], cache):
      assert code == 0, err[-3000:]
    straight = str(tmp_path / "straight")
    for code, _, err in procs.run([*args, *final, f"--workdir={straight}"], cache):
      assert code == 0, err[-3000:]
  finally:
    procs.kill_all()
  a, b = (multihost._state(w, step + 4) for w in (workdir, straight))
  chex.assert_trees_all_equal(a, b)
