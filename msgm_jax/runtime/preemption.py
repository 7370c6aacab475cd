"""Preemption notices during training: SIGTERM, SIGUSR1, SIGUSR2 (what SLURM's --signal and a
TPU maintenance event send before the kill) set a flag instead of stopping the run; the loop
asks `requested()` after every call, and all processes agree on it, so every process saves
one checkpoint at the same step and leaves with `Preempted` (exit status EXIT_STATUS).
Ctrl-C (SIGINT) is not a notice: it still stops at once without saving.
"""
import contextlib
import signal
import threading
from typing import Iterator

from msgm_jax.runtime import distributed

SIGNALS = ("SIGTERM", "SIGUSR1", "SIGUSR2")
EXIT_STATUS = 75  # EX_TEMPFAIL: "try again", distinct from 130 / 143 (a stop without a save)

_FLAG = threading.Event()


class Preempted(Exception):
  """Training saved a checkpoint at `step` in `path` after a preemption notice."""

  def __init__(self, step: int, path: str):
    super().__init__(f"preempted at step {step}: checkpoint saved at {path}; "
                     "rerun the same command to resume")
    self.step, self.path = step, path


def _notice(signum, frame) -> None:
  del signum, frame
  _FLAG.set()


@contextlib.contextmanager
def watching() -> Iterator[None]:
  """While inside: the notice signals set the flag (main thread only; elsewhere a no-op)."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  _FLAG.clear()
  before = {name: signal.signal(getattr(signal, name), _notice) for name in SIGNALS}
  try:
    yield
  finally:
    for name, handler in before.items():
      signal.signal(getattr(signal, name), handler)


def requested() -> bool:
  """Whether any process got a notice; every process calls it after the same training calls."""
  return not distributed.all_agree(not _FLAG.is_set())
