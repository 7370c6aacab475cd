"""The workdir lock (msgm_jax/runtime/workdir_lock.py): its rules in-process, then through the
entrypoint: two concurrent starts on one workdir (one runs, the other gets one line and exit
status 2, as a sample mode on the running workdir does), Ctrl-C of the holder (two lines
naming the last checkpoint and the command that resumes, exit status 130, the lock gone) and
the resume. kill -9 of a holder and the stale takeover: tests/test_faults.py's kill test."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from msgm_jax.runtime import workdir_lock
from tests.helpers import TOY_CLI, run_cli


def _write_lock(workdir, **holder):
  with open(os.path.join(workdir, workdir_lock.LOCK_NAME), "w") as f:
    json.dump({"host": socket.gethostname(), "started": "then", "command": "theirs", **holder},
              f)


def _dead_pid() -> int:
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def test_a_live_holder_is_named_and_its_lock_kept(tmp_path):
  mine = workdir_lock.take(str(tmp_path), "first")
  with pytest.raises(workdir_lock.WorkdirInUse, match=rf"{tmp_path} is in use by host "
                     rf"{socket.gethostname()} pid {os.getpid()} since .* UTC \(first\); wait "
                     rf"for it to finish or stop it \(kill {os.getpid()}\)"):
    workdir_lock.take(str(tmp_path), "second")
  workdir_lock.release(str(tmp_path), mine)
  assert os.listdir(tmp_path) == []
  workdir_lock.release(str(tmp_path), workdir_lock.take(str(tmp_path), "third"))


def test_a_dead_or_reused_pid_is_stale_and_taken_over_with_one_line(tmp_path, capsys):
  _write_lock(tmp_path, pid=_dead_pid())
  mine = workdir_lock.take(str(tmp_path), "mine")
  line = capsys.readouterr().err.strip()
  assert "which is no longer running; took the lock over" in line and "\n" not in line
  workdir_lock.release(str(tmp_path), mine)
  # A live pid that started at another time than the lock says: the pid was reused.
  _write_lock(tmp_path, pid=os.getpid(), proc_start="1")
  workdir_lock.release(str(tmp_path), workdir_lock.take(str(tmp_path), "mine"))
  assert os.listdir(tmp_path) == []


def test_another_hosts_lock_and_an_unreadable_one_are_respected(tmp_path):
  _write_lock(tmp_path, host="elsewhere", pid=_dead_pid())
  lock = os.path.join(tmp_path, workdir_lock.LOCK_NAME)
  with pytest.raises(workdir_lock.WorkdirInUse, match=rf"in use by host elsewhere pid .*; wait "
                     rf"for it, or if you know that process is gone, remove {lock} and rerun"):
    workdir_lock.take(str(tmp_path), "mine")
  with open(lock, "w"):
    pass  # empty: another start between creating and writing it (the O_EXCL fallback)
  with pytest.raises(workdir_lock.WorkdirInUse, match="is being written or is unreadable"):
    workdir_lock.take(str(tmp_path), "mine")
  assert os.path.getsize(lock) == 0


def test_release_leaves_a_lock_that_is_not_its_own(tmp_path):
  mine = workdir_lock.take(str(tmp_path), "mine")
  os.remove(os.path.join(tmp_path, workdir_lock.LOCK_NAME))
  _write_lock(tmp_path, pid=os.getpid(), token="theirs")
  workdir_lock.release(str(tmp_path), mine)
  assert os.path.exists(os.path.join(tmp_path, workdir_lock.LOCK_NAME))


def test_two_takeovers_of_one_stale_lock_leave_one_holder(tmp_path):
  _write_lock(tmp_path, pid=_dead_pid())
  with open(os.path.join(tmp_path, workdir_lock.LOCK_NAME), "rb") as f:
    stale = f.read()
  mine = workdir_lock.take(str(tmp_path), "first")
  # A second start read the same stale lock before the first took it over: its removal
  # must give the first one's lock back.
  assert not workdir_lock._remove_stale(  # pylint: disable=protected-access
      os.path.join(tmp_path, workdir_lock.LOCK_NAME), stale)
  with open(os.path.join(tmp_path, workdir_lock.LOCK_NAME)) as f:
    assert json.load(f)["token"] == mine["token"]
  assert os.listdir(tmp_path) == [workdir_lock.LOCK_NAME]


# ----------------------------------------------------------------------- the entrypoint

RUN = [*TOY_CLI, "--config.training.log_freq=5", "--config.training.snapshot_freq=10"]


@contextlib.contextmanager
def _sigint_default():
  """Children get the default SIGINT action even if this process was started ignoring it
  (as a background job of a non-interactive shell is): an ignored signal stays ignored
  across exec, a handled one is reset to the default."""
  if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
    yield
    return
  signal.signal(signal.SIGINT, signal.default_int_handler)
  try:
    yield
  finally:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _outputs(proc, logs):
  proc.wait(timeout=300)
  with open(f"{logs}.out") as out, open(f"{logs}.err") as err:
    return proc.returncode, out.read(), err.read()


def _last_step(workdir):
  ckpts = os.path.join(workdir, "checkpoints")
  steps = [int(s) for s in os.listdir(ckpts) if s.isdigit()] if os.path.isdir(ckpts) else []
  return max(steps, default=None)


def test_concurrent_starts_then_ctrl_c_then_resume(tmp_path):
  workdir = str(tmp_path / "run")
  args = [*RUN, "--config.training.n_iters=100000", f"--workdir={workdir}"]
  with _sigint_default():
    procs = [run_cli(*args, wait=False, logs=str(tmp_path / f"p{i}")) for i in range(2)]
  try:
    deadline = time.time() + 300
    while all(p.poll() is None for p in procs):  # the second start stops at once
      assert time.time() < deadline, "neither start stopped"
      time.sleep(0.2)
    (loser,) = [i for i, p in enumerate(procs) if p.poll() is not None]
    holder = procs[1 - loser]
    code, _, err = _outputs(procs[loser], str(tmp_path / f"p{loser}"))
    lines = [l for l in err.splitlines() if l.startswith("msgm_jax: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert (f"msgm_jax: error: {workdir} is in use by host {socket.gethostname()} pid "
            f"{holder.pid} since ") in lines[0] and f"kill {holder.pid}" in lines[0]
    while _last_step(workdir) is None:
      assert holder.poll() is None and time.time() < deadline, "no checkpoint appeared"
      time.sleep(0.2)
    # Any mode that writes into the run is refused while it trains.
    sample = run_cli(*RUN, f"--workdir={workdir}", "--mode=sample")
    assert sample.returncode == 2 and f"is in use by host {socket.gethostname()} pid " \
        f"{holder.pid}" in sample.stderr, sample.stderr[-3000:]
    holder.send_signal(signal.SIGINT)
    code, _, err = _outputs(holder, str(tmp_path / f"p{1 - loser}"))
  finally:
    for p in procs:
      if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
  last = _last_step(workdir)
  assert code == 130 and "Traceback" not in err, err[-3000:]
  ours = [l for l in err.splitlines() if l.startswith("msgm_jax:")]
  assert ours == [
      f"msgm_jax: interrupted by SIGINT (Ctrl-C); the last checkpoint is step {last}: "
      f"{workdir}/checkpoints/{last}",
      f"msgm_jax: to resume from it, rerun: python -m msgm_jax.main {' '.join(args)}"], err[-3000:]
  assert not os.path.exists(os.path.join(workdir, workdir_lock.LOCK_NAME))
  resumed = run_cli(*args[:-2], f"--config.training.n_iters={last + 10}", f"--workdir={workdir}")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"resumed from step {last}" in resumed.stderr and "took the lock over" not in resumed.stderr
