"""The multi-process runtime: start-up of jax.distributed, barriers and a coordinated stop.

One process (the default) needs none of this and behaves as if this module did not exist.
Several processes (a TPU pod slice, a multi-node GPU job) run the same command and are
connected by `initialize` before JAX starts its backends. `Settings.mode`:

  auto (default)  initialise when a coordinator is given (--coordinator_address or
                  JAX_COORDINATOR_ADDRESS, with --num_processes and --process_id), inside a
                  SLURM step of more than one task, or on a Cloud TPU VM (JAX reads the
                  slice's workers from the metadata server; one host gives one process);
                  else stay one process.
  on              always initialise; JAX's cluster detection fills what the flags leave out.
  off             never (one process, whatever the environment says).

Under SLURM, JAX gives each task one GPU (local_device_ids = [SLURM_LOCALID]) unless
local_device_ids are given: one task per node with all its GPUs needs --local_device_ids.

Start-up prints the topology once (process 0: `msgm_jax: 2 processes x 4 cpu devices (8 in
all)`). Processes that do not all connect within Settings.init_timeout (default 120 s) end
with one line naming who is missing as far as this process can tell and exit status 2, not
JAX's abort (SIGABRT and a C++ fatal message).
On the CPU backend with jax 0.12 or newer a multi-process run turns JAX's persistent
compilation cache off before its first compile: a program loaded from it hangs in its first
collective there (docs/preemption.md).

Coordinated stop. A process that fails (a one-line user error or an unexpected exception)
calls `stop_all`: it publishes its message in the coordination service's key-value store and
exits without jax.distributed's shutdown barrier. That barrier would wait for processes
stuck in a collective for the shutdown timeout (300 s), measured: a raised exception in one of
two processes left both hanging that long. A watcher thread in every other process sees the
message within a second, prints `msgm_jax: error: process k of N stopped: <message>` and exits
with the same status; process 0, which hosts the coordination service, exits last. A process killed outright publishes nothing: the others' next collective
fails (gloo, measured: at once) and they stop with that error, or JAX's heartbeat timeout
(Settings.heartbeat_timeout) ends them, or the launcher does (launch/README.md).
"""

import dataclasses
import os
import sys
import threading
import time
from typing import Callable, List, Mapping, Optional, Sequence

import jax
import numpy as np
from absl import logging

PREFIX = "msgm_jax: error:"
MODES = ("auto", "on", "off")
_ERROR_KEY = "msgm_jax/error"
_ACK_KEY = "msgm_jax/ack/"
_BYE_KEY = "msgm_jax/bye/"
_POLL_MS = 1000
_ACK_TIMEOUT_S = 10.0
_LINGER_S = 0.5


class DistributedError(ValueError):
  """The multi-process flags or environment are inconsistent; the message names the fix."""


@dataclasses.dataclass(frozen=True)
class Settings:
  """How to start the runtime (main.py's flags). Timeouts in seconds: init_timeout for all
  processes to connect, heartbeat_timeout for a silent process to count as dead (JAX then
  stops every process), barrier_timeout for this project's own barriers."""

  mode: str = "auto"
  coordinator_address: str = ""
  num_processes: Optional[int] = None
  process_id: Optional[int] = None
  local_device_ids: Optional[Sequence[int]] = None
  init_timeout: int = 120
  heartbeat_timeout: int = 100
  barrier_timeout: int = 600

  def __post_init__(self):
    if self.mode not in MODES:
      raise DistributedError(f"--distributed={self.mode} is invalid; use one of "
                             f"{', '.join(MODES)}")
    explicit = (self.num_processes, self.process_id)
    if self.coordinator_address and ":" not in self.coordinator_address:
      raise DistributedError(f"--coordinator_address={self.coordinator_address} needs a port, "
                             "e.g. --coordinator_address=10.0.0.2:1234")
    if self.num_processes is not None and self.num_processes < 1:
      raise DistributedError(f"--num_processes={self.num_processes} must be >= 1")
    if None not in explicit and not 0 <= self.process_id < self.num_processes:
      raise DistributedError(f"--process_id={self.process_id} must be in 0..."
                             f"{self.num_processes - 1} (--num_processes={self.num_processes})")
    if self.mode == "off" and (self.coordinator_address or any(x is not None for x in explicit)):
      raise DistributedError("--distributed=off contradicts --coordinator_address / "
                             "--num_processes / --process_id; drop one or the other")


def _on_tpu_vm() -> bool:
  """TPU chips on this machine's PCI bus, as JAX itself decides it (no network call); False
  where this JAX lacks the helper."""
  try:
    from jax._src import hardware_utils  # pylint: disable=import-outside-toplevel
    return hardware_utils.num_available_tpu_chips_and_device_id()[0] > 0
  except (ImportError, AttributeError, OSError):
    return False


def _slurm_tasks(environ: Mapping[str, str]) -> int:
  """Tasks of the SLURM step this process belongs to (0 outside SLURM, or where JAX's SLURM
  detection lacks a variable it reads)."""
  needed = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
            "SLURM_LOCALID")
  if not all(k in environ for k in needed):
    return 0
  return int(environ.get("SLURM_STEP_NUM_TASKS", environ["SLURM_NTASKS"]))


def wanted(settings: Settings, environ: Mapping[str, str] = os.environ,
           on_tpu_vm=_on_tpu_vm) -> Optional[str]:
  """Why to initialise ('flags', 'slurm', 'tpu', 'forced'), or None to stay one process."""
  if settings.mode == "off":
    return None
  if settings.coordinator_address or environ.get("JAX_COORDINATOR_ADDRESS"):
    return "flags"
  if _slurm_tasks(environ) > 1:
    return "slurm"
  if settings.mode == "on":
    return "forced"
  if environ.get("TPU_SKIP_MDS_QUERY") is None and on_tpu_vm():
    return "tpu"
  if settings.num_processes not in (None, 1) or settings.process_id not in (None, 0):
    raise DistributedError("--num_processes / --process_id need --coordinator_address="
                           "<host of process 0>:<port> (or a SLURM or TPU environment)")
  return None


_STATE = {"client": None, "watcher": None, "barrier_timeout": 600, "barriers": 0,
          "agreements": 0}


def initialize(settings: Settings) -> bool:
  """Connects this process to the others when `wanted`; returns whether it did. Must run
  before anything starts JAX's backends. Errors are DistributedError with one line."""
  why = wanted(settings)
  if why is None:
    return False
  # JAX aborts the process (SIGABRT, a C++ fatal message) when the processes do not all
  # connect within its timeout: a watchdog with the same timeout ends it first, with a line.
  watchdog = threading.Timer(settings.init_timeout, _missing_peers, (settings,))
  watchdog.daemon = True
  watchdog.start()
  try:
    jax.distributed.initialize(
        coordinator_address=settings.coordinator_address or None,
        num_processes=settings.num_processes, process_id=settings.process_id,
        local_device_ids=settings.local_device_ids,
        initialization_timeout=settings.init_timeout + _JAX_TIMEOUT_MARGIN_S,
        heartbeat_timeout_seconds=settings.heartbeat_timeout)
  except Exception as e:  # JAX raises ValueError, RuntimeError or its own runtime errors
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise DistributedError(
        f"jax.distributed.initialize failed ({why}: {text}); pass --coordinator_address="
        "host:port --num_processes=N --process_id=i, or --distributed=off for one process"
    ) from e
  finally:
    watchdog.cancel()
  from jax._src import distributed as jax_distributed  # pylint: disable=import-outside-toplevel
  # The coordination service's client (as Orbax uses it): a key-value store and barriers.
  _STATE["client"] = jax_distributed.global_state.client
  _orbax_barriers_with_timeouts()
  _STATE["barrier_timeout"] = settings.barrier_timeout
  watcher = _Watcher(_STATE["client"], jax.process_index(), jax.process_count())
  watcher.start()
  _STATE["watcher"] = watcher
  import atexit  # pylint: disable=import-outside-toplevel
  # Registered after JAX's own exit handlers, so it runs before their shutdown barrier.
  atexit.register(watcher.stop)
  _no_persistent_cache_for_cpu_collectives()
  if jax.process_index() == 0:
    print(f"msgm_jax: {jax.process_count()} processes x {jax.local_device_count()} "
          f"{jax.default_backend()} devices ({jax.device_count()} in all)", file=sys.stderr,
          flush=True)
  return True


# jax 0.12 on CPU: a program with cross-process collectives that a process loads from the
# persistent compilation cache never finishes its first collective (measured with jaxlib
# 0.12.1: two processes, one pmap'd psum, the second run with the same cache directory hangs;
# jax 0.10.2 and 0.11.2 run it). The first version known to hang, and the first known not to
# (None: none yet).
CACHED_CPU_COLLECTIVES_HANG = ((0, 12), None)


def _jax_version() -> tuple:
  return tuple(int(p) for p in jax.__version__.split(".")[:2] if p.isdigit())


def cached_cpu_collectives_hang(version: tuple, backend: str, processes: int) -> bool:
  """Whether a multi-process run on `backend` with jax `version` (major, minor) would hang in
  a program loaded from the persistent compilation cache."""
  first_bad, first_good = CACHED_CPU_COLLECTIVES_HANG
  return (backend == "cpu" and processes > 1 and version >= first_bad and
          (first_good is None or version < first_good))


def _no_persistent_cache_for_cpu_collectives() -> None:
  """Turns JAX's persistent compilation cache off (before the first compile) where a cached
  multi-process CPU program hangs; the run compiles everything itself instead."""
  if not (jax.config.jax_enable_compilation_cache and jax.config.jax_compilation_cache_dir):
    return
  if not cached_cpu_collectives_hang(_jax_version(), jax.default_backend(), jax.process_count()):
    return
  jax.config.update("jax_enable_compilation_cache", False)
  if jax.process_index() == 0:
    logging.warning("the persistent compilation cache (%s) is off for this run: on jax %s a "
                    "multi-process CPU program loaded from it hangs in its first collective "
                    "(docs/multihost.md)", jax.config.jax_compilation_cache_dir, jax.__version__)


def report_done() -> None:
  """A process other than 0 of several says that it finished (process 0 prints the results)."""
  if is_multiprocess() and jax.process_index() != 0:
    print(f"msgm_jax: process {jax.process_index()} of {jax.process_count()} done (process 0 "
          "reports the results)", file=sys.stderr, flush=True)


_JAX_TIMEOUT_MARGIN_S = 30  # JAX's own start-up timeout, past the watchdog's


def missing_peers_message(settings: Settings) -> str:
  """The line of a start-up in which not every process connected within init_timeout, from
  this process's view: process 0 (which hosts the service) misses the others, any other
  process misses process 0 or some of the rest (none of them can tell which)."""
  n, me = settings.num_processes, settings.process_id
  where = settings.coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
  where = f" at {where}" if where else ""
  if n is None or me is None:
    who = "not every process"
  elif me == 0:
    others = [str(p) for p in range(1, n)]
    who = (f"process {others[0]}" if len(others) == 1 else
           f"some of processes {', '.join(others)}")
  else:
    who = ("process 0 (the coordinator)" if n == 2 else
           "process 0 (the coordinator) or some of the others")
  ident = f"process {me} of {n}" if None not in (n, me) else "this process"
  return (f"{ident}: {who} did not connect to the coordinator{where} within "
          f"{settings.init_timeout} s (--init_timeout); start all {n or 'N'} processes with the "
          "same --coordinator_address and --num_processes, or raise --init_timeout")


def _missing_peers(settings: Settings) -> None:
  print(f"{PREFIX} {missing_peers_message(settings)}", file=sys.stderr)
  _exit_now(2)


def _orbax_barriers_with_timeouts() -> None:
  """Orbax's barriers through the coordination service (they time out and raise) instead of
  device collectives, which have no timeout on GPU/TPU and give up after 30 s on CPU (gloo:
  measured when one process reached CheckpointManager() that much later than another)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  name = "experimental_orbax_use_distributed_barrier"  # orbax-checkpoint's own absl flag
  if name in flags.FLAGS:
    flags.FLAGS[name].value = True


def connected() -> bool:
  """Whether `initialize` connected this process to others."""
  return _STATE["client"] is not None


def is_multiprocess() -> bool:
  return jax.process_count() > 1


def barrier(name: str, timeout_s: Optional[float] = None) -> None:
  """Waits until every process reaches barrier `name` (unique per use); a process that does
  not come within the timeout (default Settings.barrier_timeout) makes it raise."""
  if not is_multiprocess():
    return
  timeout_s = _STATE["barrier_timeout"] if timeout_s is None else timeout_s
  client = _STATE["client"]
  if client is None:  # connected by someone else (e.g. a test): JAX's device barrier
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices(name)
    return
  # Every process passes the same barriers in the same order: the count makes ids unique.
  _STATE["barriers"] += 1
  client.wait_at_barrier(f"msgm_jax/{_STATE['barriers']}/{name}", int(timeout_s * 1000))


def all_agree(ok: bool, timeout_s: Optional[float] = None) -> bool:
  """True when `ok` holds on every process; every process must call it (the same number of
  times). Through the key-value store: processes may arrive up to the barrier timeout apart."""
  if not is_multiprocess():
    return ok
  client = _STATE["client"]
  if client is None:  # connected by someone else (e.g. a test): a device collective
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    return bool(np.all(multihost_utils.process_allgather(np.asarray(ok))))
  _STATE["agreements"] += 1
  prefix = f"msgm_jax/agree/{_STATE['agreements']}/"
  client.key_value_set(f"{prefix}{jax.process_index()}", "1" if ok else "0")
  timeout_ms = int((_STATE["barrier_timeout"] if timeout_s is None else timeout_s) * 1000)
  return all(client.blocking_key_value_get(f"{prefix}{p}", timeout_ms) == "1"
             for p in range(jax.process_count()))


def allgather(x: np.ndarray) -> np.ndarray:
  """Concatenates each process's equally shaped x along axis 0, in process order."""
  if not is_multiprocess():
    return np.asarray(x)
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  return np.asarray(multihost_utils.process_allgather(np.asarray(x), tiled=True))


# ---------------------------------------------------------------------- coordinated stop

_EXITING = threading.Lock()
_BEFORE_EXIT = []


def before_exit(fn: Callable[[], None]) -> Callable[[], None]:
  """Runs fn() before a coordinated stop ends this process with os._exit (which skips
  `finally` blocks and atexit), e.g. to release the workdir's lock; returns the undo."""
  _BEFORE_EXIT.append(fn)
  return lambda: _BEFORE_EXIT.remove(fn) if fn in _BEFORE_EXIT else None


_BEFORE_MESSAGE = []


def before_stop_message(fn: Callable[[], None]) -> Callable[[], None]:
  """Runs fn() before a stop's lines are printed, from whichever thread prints them (the
  watcher prints another process's stop while the main thread may be drawing a progress
  bar: fn ends the bar's line, so the stop's lines start on their own); returns the undo."""
  _BEFORE_MESSAGE.append(fn)
  return lambda: _BEFORE_MESSAGE.remove(fn) if fn in _BEFORE_MESSAGE else None


def _print_stop(lines: Sequence[str]) -> None:
  for fn in list(_BEFORE_MESSAGE):
    try:
      fn()
    except Exception:  # pylint: disable=broad-except  # the message matters more
      pass
  print("\n".join(lines), file=sys.stderr, flush=True)


def _flush() -> None:
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (OSError, ValueError):
      pass


def _exit_now(code: int) -> None:
  """Ends the process without atexit handlers: no shutdown barrier (see the module doc)."""
  for fn in list(_BEFORE_EXIT):
    try:
      fn()
    except Exception:  # pylint: disable=broad-except  # exiting anyway
      pass
  _flush()
  os._exit(code)  # pylint: disable=protected-access


def _parse(value: str):
  pid, code, prefix, message = value.split("\t", 3)
  return int(pid), int(code), prefix, message


def _wait_for_keys(client, prefix: str, me: int, n: int) -> None:
  """Waits up to _ACK_TIMEOUT_S in all for key `prefix<pid>` of every other live process
  (dead, slow or gone ones are not waited for)."""
  deadline = time.time() + _ACK_TIMEOUT_S
  for pid in range(n):
    if pid == me:
      continue
    try:
      if pid not in client.get_live_nodes([pid]):
        continue
      left = max(deadline - time.time(), 0.0)
      client.blocking_key_value_get(f"{prefix}{pid}", max(int(left * 1000), 1))
    except Exception:  # pylint: disable=broad-except  # dead, slow or gone: do not wait
      continue


def _leave(client, me: int, n: int, code: int) -> None:
  """Exits after a stop, process 0 last: it hosts the coordination service, and a process
  that sees the service vanish before its own exit is aborted by JAX (status -6 instead of
  `code`; measured on a loaded machine). The others say goodbye first; process 0 waits for
  them and lingers a moment for their exits."""
  if me != 0:
    try:
      client.key_value_set(f"{_BYE_KEY}{me}", "1")
    except Exception:  # pylint: disable=broad-except  # the service is gone already
      pass
    _exit_now(code)
  _wait_for_keys(client, _BYE_KEY, me, n)
  time.sleep(_LINGER_S)
  _exit_now(code)


_AFTER_PEER_STOP = []


def after_peer_stop(fn: Callable[[int], List[str]]) -> Callable[[], None]:
  """fn(code) -> the lines this process prints after another process's stop message (its
  exit status `code`), e.g. its own command that resumes after a Ctrl-C; returns the undo."""
  _AFTER_PEER_STOP.append(fn)
  return lambda: _AFTER_PEER_STOP.remove(fn) if fn in _AFTER_PEER_STOP else None


def _peer_lines(code: int) -> List[str]:
  lines = []
  for fn in list(_AFTER_PEER_STOP):
    try:
      lines += fn(code)
    except Exception:  # pylint: disable=broad-except  # exiting anyway
      pass
  return lines


def stop_all(message: str, code: int, prefix: str = PREFIX, then: Sequence[str] = ()) -> None:
  """Prints `<prefix> <message>` (default `msgm_jax: error:`) and the lines `then` (this
  process's alone), and ends this process with `code`; with several processes, first tells
  the others (their watchers print `<prefix> process i of n stopped: <message>` and their
  after_peer_stop lines, and stop). Never returns."""
  client = _STATE["client"]
  if not _EXITING.acquire(blocking=False):  # the watcher is already ending this process
    while True:
      time.sleep(60)
  _print_stop([f"{prefix} {message}", *then])
  if client is None or not is_multiprocess():
    _flush()
    sys.exit(code)
  me, n = jax.process_index(), jax.process_count()
  try:
    client.key_value_set(_ERROR_KEY, f"{me}\t{code}\t{prefix}\t{message}")
  except Exception:  # pylint: disable=broad-except  # another process failed first
    pass
  # Gives live watchers time to read the message before this process goes.
  _wait_for_keys(client, _ACK_KEY, me, n)
  _leave(client, me, n, code)


class _Watcher(threading.Thread):
  """Waits for another process's error message; then acknowledges it, prints it and exits
  (`_leave`)."""

  def __init__(self, client, me: int, n: int):
    super().__init__(name="msgm-jax-stop-watcher", daemon=True)
    self.client, self.me, self.n = client, me, n
    self._stop_event = threading.Event()

  def run(self) -> None:
    while not self._stop_event.is_set():
      try:
        value = self.client.blocking_key_value_get(_ERROR_KEY, _POLL_MS)
      except Exception as e:  # pylint: disable=broad-except
        if "DEADLINE_EXCEEDED" in str(e) or "Deadline" in str(e):
          continue
        return  # the service is gone (normal shutdown, or JAX is stopping this process)
      pid, code, prefix, message = _parse(value)
      if pid == self.me:
        return  # this process's own stop_all is exiting
      try:
        self.client.key_value_set(f"{_ACK_KEY}{self.me}", "1")
      except Exception:  # pylint: disable=broad-except
        pass
      if not _EXITING.acquire(blocking=False):
        return  # this process is already stopping with its own message
      _print_stop([f"{prefix} process {pid} of {self.n} stopped: {message}",
                   *_peer_lines(code)])
      _leave(self.client, self.me, self.n, code)

  def stop(self) -> None:
    """Normal end: stop watching before JAX's shutdown closes the client."""
    self._stop_event.set()
    self.join(timeout=2 * _POLL_MS / 1000)
