"""A progress bar with ETA for process 0 (tqdm), silent elsewhere."""

import sys


class Progress:
  """Shows `desc: n/total [elapsed<ETA]` on stderr from the moment it is made (so the first
  compilation shows as a bar at 0); usable as a context manager."""

  def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "train",
               unit: str = "step"):
    self._bar = None
    if enabled:
      from tqdm import tqdm  # pylint: disable=import-outside-toplevel
      self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr,
                       dynamic_ncols=True, mininterval=1.0, smoothing=0.1)
    self._n = initial

  def __enter__(self) -> "Progress":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def update(self, step: int, loss: float = None) -> None:
    if self._bar is None:
      return
    self._bar.update(step - self._n)
    self._n = step
    if loss is not None:
      self._bar.set_postfix(loss=f"{loss:.4g}", refresh=False)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
