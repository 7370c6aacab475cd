"""The progress bar: a 'waiting for the first step' line while the first call is slow, and an ETA that does
not count it."""

import threading
import time

from msgm_jax.runtime import distributed
from msgm_jax.training import progress


def test_a_slow_first_call_is_named_and_left_out_of_the_bar(capsys):
  with progress.Progress(10, enabled=True, desc="train", notice_after=0.05) as bar:
    time.sleep(0.5)  # the first call compiling
    bar.update(1, loss=1.0)
    bar.update(10)
    # The bar's clock starts at the first update: the half second above is not in its time.
    assert bar._bar.format_dict["elapsed"] < 0.4  # pylint: disable=protected-access
  err = capsys.readouterr().err
  assert "train: waiting for the first step (XLA compiles it first)" in err
  assert err.index("waiting") < err.index("10/10")


def test_a_fast_first_call_prints_no_waiting_line(capsys):
  with progress.Progress(3, enabled=True, desc="sample", unit="batch", notice_after=5.0) as bar:
    bar.update(3)
  err = capsys.readouterr().err
  assert "waiting" not in err and "3/3" in err


def test_disabled_bars_print_nothing(capsys):
  with progress.Progress(3, enabled=False, notice_after=0.01) as bar:
    time.sleep(0.1)
    bar.update(3)
  assert capsys.readouterr().err == ""


def test_a_stop_printed_by_another_thread_starts_on_its_own_line(capsys):
  """Another process's Ctrl-C is printed by the stop watcher's thread while process 0's bar
  is live (tqdm leaves the bar's line open): the stop's lines must not follow the bar's."""
  with progress.Progress(100, enabled=True, notice_after=5.0) as bar:
    bar.update(5)
    bar.update(7)
    watcher = threading.Thread(target=distributed._print_stop,  # pylint: disable=protected-access
                               args=(["msgm_jax: process 1 of 2 stopped: interrupted",
                                      "msgm_jax: to resume from it, rerun: x"],))
    watcher.start()
    watcher.join()
    bar.update(9)  # the main thread has not seen the stop yet: the bar draws no more
  err = capsys.readouterr().err
  lines = err.splitlines()
  assert "msgm_jax: process 1 of 2 stopped: interrupted" in lines, err
  assert lines[-1] == "msgm_jax: to resume from it, rerun: x", err
  assert "9/100" not in err
