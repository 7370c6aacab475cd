"""The workdir lock and Ctrl-C across the processes of one multi-process run (2 processes x 2
fake CPU devices on localhost, through the entrypoint; msgm_jax/runtime/workdir_lock.py, main.py).

Only process 0 of a run takes <workdir>/.lock (the others wait at a barrier until it has), so
the processes of one run share it and a second run on the same workdir is refused on every
process with one line naming the holder. Ctrl-C reaches process 0 only (a launcher's
terminal) or every process (a process group): either way each process ends with the two
lines of a stop (what happened and the last checkpoint, then the command that resumes), no
traceback, exit status 130, and the lock is gone.
"""

import os
import signal
import socket
import time

import pytest

from msgm_jax.runtime import workdir_lock
from tests.helpers import TOY_CLI
from tests.test_multihost import Processes, finish
from tests.runtime.test_workdir_lock import _last_step, _sigint_default

RUN = [*TOY_CLI, "--config.training.log_freq=5", "--config.training.snapshot_freq=10",
       "--config.training.n_iters=100000"]
DEADLINE = 300


@pytest.fixture(scope="module")
def procs(tmp_path_factory):
  p = Processes(str(tmp_path_factory.mktemp("logs")))
  yield p
  p.kill_all()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  """A compilation cache shared by the runs: the resumed run compiles nothing again."""
  return {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax_cache")),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
          "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def _start(procs, workdir, env):
  with _sigint_default():
    return procs.start([*RUN, f"--workdir={workdir}"], env, devices=2)


def _wait_for_a_checkpoint(workdir, running, after=None):
  deadline = time.time() + DEADLINE
  while _last_step(workdir) in (None, after):
    assert all(p.poll() is None for p in running) and time.time() < deadline, \
        [finish(p)[2][-2000:] for p in running]
    time.sleep(0.2)


def _stop_lines(err):
  """The package's lines of stderr, less the start-up's topology line."""
  return [line for line in err.splitlines()
          if line.startswith("msgm_jax:") and " processes x " not in line]


def _check_stopped(results, workdir, signalled):
  """Every process: exit 130, no traceback, two lines naming the last checkpoint and the
  command that resumes (process 1's name process 0's stop when only process 0 got it)."""
  last = _last_step(workdir)
  where = f"the last checkpoint is step {last}: {workdir}/checkpoints/{last}"
  for i, (code, _, err) in enumerate(results):
    lines = _stop_lines(err)
    assert code == 130 and "Traceback" not in err, (i, err[-3000:])
    assert len(lines) == 2, (i, lines)
    # A process Ctrl-C reached says so, unless the other's stop reached it first.
    own = "msgm_jax: interrupted by SIGINT (Ctrl-C); "
    peer = f"msgm_jax: process {1 - i} of 2 stopped: interrupted by SIGINT (Ctrl-C); "
    allowed = [peer] if i not in signalled else [own, peer] if len(signalled) > 1 else [own]
    assert lines[0] in [a + where for a in allowed], (i, lines)
    assert lines[1].startswith("msgm_jax: to resume from it, rerun: python -m msgm_jax.main ")
    assert f"--workdir={workdir}" in lines[1] and f"--process_id={i} " in lines[1], (i, lines)
  assert not os.path.exists(os.path.join(workdir, workdir_lock.LOCK_NAME))


def test_one_lock_per_run_a_second_run_refused_and_ctrl_c_on_each_process(tmp_path, procs, env):
  workdir = str(tmp_path / "run")
  first = _start(procs, workdir, env)
  _wait_for_a_checkpoint(workdir, first)
  # The run's processes share one lock: process 0's.
  assert [n for n in os.listdir(workdir) if n.startswith(workdir_lock.LOCK_NAME)] == [".lock"]
  holder = workdir_lock._parse(open(os.path.join(workdir, ".lock"), "rb").read())  # pylint: disable=protected-access
  assert holder["pid"] == first[0].pid and holder["host"] == socket.gethostname()
  # A second multi-process run on the workdir: refused on each process with one line.
  second = [finish(p, DEADLINE) for p in _start(procs, workdir, env)]
  named = f"is in use by host {socket.gethostname()} pid {first[0].pid} since "
  for i, (code, _, err) in enumerate(second):
    lines = [line for line in err.splitlines() if line.startswith("msgm_jax: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (i, err[-3000:])
    assert named in lines[0], (i, lines)
  assert "process 0 of 2 stopped:" in _stop_lines(second[1][2])[0]
  assert all(p.poll() is None for p in first)  # the holder trains on
  # Ctrl-C in process 0's terminal: process 0 only.
  first[0].send_signal(signal.SIGINT)
  _check_stopped([finish(p, DEADLINE) for p in first], workdir, signalled={0})
  # The rerun resumes (the lock was released, not stale); Ctrl-C to the whole job.
  resumed = _start(procs, workdir, env)
  _wait_for_a_checkpoint(workdir, resumed, after=_last_step(workdir))
  for p in resumed:
    p.send_signal(signal.SIGINT)
  results = [finish(p, DEADLINE) for p in resumed]
  assert "took the lock over" not in results[0][2]
  _check_stopped(results, workdir, signalled={0, 1})
