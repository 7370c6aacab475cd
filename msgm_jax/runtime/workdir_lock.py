"""One run per workdir: a lock file `<workdir>/.lock` held for the life of a mode that writes
into the run (train, eval, sample, inpaint, reconstruct).

    with workdir_lock.held(workdir, command):   # main.py, around the mode
      ...

The lock is JSON {host, pid, proc_start, started, command, token}, written whole to a temporary
file and then hard-linked to `.lock` (atomic, and it fails when `.lock` exists, also on NFS);
where the filesystem has no hard links it is created with O_CREAT | O_EXCL. A second start
on the same workdir raises WorkdirInUse naming the holder (one line, exit status 2). A lock of
a process that is gone (same host, its pid not alive, or alive but started at another time:
the pid was reused) is stale: it is taken over with one line saying so. A lock of another
host is respected (its pid cannot be checked from here); the line says how to remove it.

Release: leaving the `with` block (a normal end, an exception, Ctrl-C; SIGTERM too once main.py
turns it into an exception) removes the lock if it is still this process's (its token); the
coordinated stop of several processes, which exits with os._exit, releases it through
distributed.before_exit. A kill -9 leaves a stale lock, taken over by the next start. With
several processes only process 0 takes the lock; the others wait at a barrier until it has,
so no process writes into a run another job holds (if process 0 fails to take it, its stop
ends them all).
"""

import contextlib
import datetime
import json
import os
import socket
import sys
import uuid
from typing import Any, Dict, Iterator, Optional

import jax

from msgm_jax.runtime import distributed

LOCK_NAME = ".lock"


class WorkdirInUse(ValueError):
  """Another process holds the workdir's lock; the message names it and what to do."""


def _proc_start(pid: int) -> Optional[str]:
  """The start time of process `pid` in clock ticks since boot (Linux /proc), else None."""
  try:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
      # The command name (field 2) is in parentheses and may hold spaces: split after it.
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's process: alive
    return True
  return True


def describe(holder: Dict[str, Any]) -> str:
  """'host H pid P since T (command)' of a lock's content."""
  return (f"host {holder.get('host', '?')} pid {holder.get('pid', '?')} since "
          f"{holder.get('started', '?')} ({holder.get('command', '?')})")


def is_stale(holder: Dict[str, Any], host: Optional[str] = None) -> bool:
  """Whether the lock's process is gone: on this host, its pid is not alive, or it is but
  started at another time than the lock says (the pid was reused). Another host's: False."""
  if holder.get("host") != (host or socket.gethostname()):
    return False
  pid = holder.get("pid")
  if not isinstance(pid, int) or not _alive(pid):
    return True
  started = holder.get("proc_start")
  return started is not None and _proc_start(pid) not in (None, started)


def _read(path: str) -> Optional[bytes]:
  try:
    with open(path, "rb") as f:
      return f.read()
  except FileNotFoundError:
    return None


def _parse(content: bytes) -> Dict[str, Any]:
  try:
    holder = json.loads(content.decode())
    return holder if isinstance(holder, dict) else {}
  except (UnicodeDecodeError, ValueError):
    return {}  # being written (O_EXCL fallback) or garbled: treated as held, see _take


def _create(path: str, content: bytes) -> bool:
  """Creates `path` holding `content` unless it exists; returns whether it did."""
  tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
  with open(tmp, "wb") as f:
    f.write(content)
    f.flush()
    os.fsync(f.fileno())
  try:
    os.link(tmp, path)
    return True
  except FileExistsError:
    return False
  except OSError:  # no hard links here (some FUSE and object-store filesystems)
    pass
  finally:
    os.remove(tmp)
  try:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
  except FileExistsError:
    return False
  with os.fdopen(fd, "wb") as f:
    f.write(content)
  return True


def _remove_stale(path: str, seen: bytes) -> bool:
  """Removes the lock if it still holds `seen`: renamed aside first (atomic), so that of two
  starts taking over the same stale lock one removes it and the other finds it gone. A lock
  that changed meanwhile (another start took it over) is put back. Returns whether the stale
  one was removed."""
  aside = f"{path}.stale.{os.getpid()}.{uuid.uuid4().hex[:8]}"
  try:
    os.rename(path, aside)
  except FileNotFoundError:
    return False
  if _read(aside) == seen:
    os.remove(aside)
    return True
  try:
    os.link(aside, path)  # another start's fresh lock: give it back
  except OSError:
    os.rename(aside, path)
  else:
    os.remove(aside)
  return False


def _message(workdir: str, holder: Dict[str, Any], path: str) -> str:
  if holder and holder.get("host") not in (None, socket.gethostname()):
    return (f"{workdir} is in use by {describe(holder)}; wait for it, or if you know that "
            f"process is gone, remove {path} and rerun")
  if not holder:
    return (f"{workdir} is in use (its lock {path} is being written or is unreadable); wait "
            f"for the other start, or if no run uses this workdir, remove {path} and rerun")
  return (f"{workdir} is in use by {describe(holder)}; wait for it to finish or stop it "
          f"(kill {holder.get('pid')}), or pass another --workdir")


def take(workdir: str, command: str) -> Dict[str, Any]:
  """Takes `<workdir>/.lock` for this process; returns its content. WorkdirInUse when another
  live process holds it; a stale one is taken over with one line (stderr)."""
  path = os.path.join(workdir, LOCK_NAME)
  mine = {"host": socket.gethostname(), "pid": os.getpid(), "proc_start": _proc_start(os.getpid()),
          "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
          "command": command, "token": uuid.uuid4().hex}
  content = json.dumps(mine).encode()
  for _ in range(5):  # a few rounds: another start may take or drop the lock in between
    if _create(path, content):
      return mine
    seen = _read(path)
    if seen is None:
      continue  # released in between
    holder = _parse(seen)
    if not holder or not is_stale(holder):
      raise WorkdirInUse(_message(workdir, holder, path))
    if _remove_stale(path, seen):
      print(f"msgm_jax: {workdir} was locked by {describe(holder)}, which is no longer "
            "running; took the lock over", file=sys.stderr, flush=True)
  seen = _read(path)
  raise WorkdirInUse(_message(workdir, _parse(seen) if seen else {}, path))


def release(workdir: str, mine: Dict[str, Any]) -> None:
  """Removes the lock if it is still this process's (its token)."""
  path = os.path.join(workdir, LOCK_NAME)
  seen = _read(path)
  if seen is not None and _parse(seen).get("token") == mine["token"]:
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)


@contextlib.contextmanager
def held(workdir: str, command: str) -> Iterator[None]:
  """Holds the workdir's lock for the block (process 0 takes it; see the module docstring)."""
  mine = take(workdir, command) if jax.process_index() == 0 else None
  distributed.barrier("workdir_lock")
  if mine is None:
    yield
    return
  undo = distributed.before_exit(lambda: release(workdir, mine))
  try:
    yield
  finally:
    undo()
    release(workdir, mine)
