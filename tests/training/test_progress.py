"""The progress bar: a 'waiting for the first step' line while the first call is slow, and an ETA that does
not count it."""

import time

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
