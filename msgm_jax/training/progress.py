"""A progress bar with ETA for process 0 (tqdm), silent elsewhere."""

import sys
import threading

from msgm_jax.runtime import distributed


class Progress:
  """Shows `desc: n/total [elapsed<ETA]` on stderr; usable as a context manager.

  The bar starts at the first update, so the ETA never counts the first call's compilation
  (which took 'an ETA of 1:10:50' at step 1 before): if that update has not come after
  `notice_after` seconds, one line `desc: waiting for the first ... (XLA compiles it first)`
  says what the wait is.
  """

  def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "train",
               unit: str = "step", notice_after: float = 2.0):
    self._bar = None
    self._enabled = enabled
    self._bar_args = dict(total=total, desc=desc, unit=unit, file=sys.stderr,
                          dynamic_ncols=True, mininterval=1.0, smoothing=0.1)
    self._n = initial
    self._notice = None
    self._undo_hook = None
    if enabled:
      self._notice = threading.Timer(notice_after, self._say_waiting, args=(desc, unit))
      self._notice.daemon = True
      self._notice.start()

  @staticmethod
  def _say_waiting(desc: str, unit: str) -> None:
    # "waiting", not "compiling": a slow first unit may also be slow work (one likelihood
    # batch takes a minute on CPU), and the line must be true either way.
    print(f"{desc}: waiting for the first {unit} (XLA compiles it first); the bar and its ETA "
          "start after it", file=sys.stderr, flush=True)

  def __enter__(self) -> "Progress":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def update(self, step: int, loss: float = None) -> None:
    if not self._enabled:
      return
    if self._bar is None:  # the first call's work counts as done before the clock starts
      self._notice.cancel()
      from tqdm import tqdm  # pylint: disable=import-outside-toplevel
      self._bar = tqdm(initial=step, **self._bar_args)
      # A stop printed from another thread (another process's Ctrl-C) ends the bar's line
      # first: its lines would otherwise follow the bar's on the same line.
      self._undo_hook = distributed.before_stop_message(self.close)
    else:
      self._bar.update(step - self._n)
    self._n = step
    if loss is not None:
      self._bar.set_postfix(loss=f"{loss:.4g}", refresh=False)

  def close(self) -> None:
    """Ends the bar's line (once; later updates draw nothing)."""
    if self._notice is not None:
      self._notice.cancel()
    if self._undo_hook is not None:
      self._undo_hook()
    if self._bar is not None:
      self._bar.close()  # tqdm: a closed bar ignores later updates
