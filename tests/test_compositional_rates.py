"""Tests for msgm_jax/compositional_rates.py: the Wilson interval and the rate summary."""

import math

import numpy as np
import pytest

from msgm_jax import compositional_rates as rates
from msgm_jax.data import compositional as cd


@pytest.mark.parametrize("k, n, lo, hi", [
    # The worked examples of Newcombe (1998, Stat. Med. 17:857), method 3 (Wilson score, no
    # continuity correction); 0/n has the closed form [0, z^2 / (n + z^2)].
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
    (0, 1000, 0.0, 1.959964**2 / (1000 + 1.959964**2))])
def test_wilson_matches_published_values(k, n, lo, hi):
  got = rates.wilson(k, n)
  assert got == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_is_symmetric_and_contains_the_estimate():
  for k, n in ((1, 1782), (58, 1000), (143, 1000)):
    lo, hi = rates.wilson(k, n)
    assert lo < k / n < hi and rates.wilson(n - k, n) == pytest.approx((1 - hi, 1 - lo))
  with pytest.raises(ValueError, match="at least one sample"):
    rates.wilson(0, 0)


def test_summarize_counts_and_clear_readings():
  combo = np.array([0, 0, 11, 27, 27, 5])
  out = {"combo": combo, "colour": combo // 10, "digit": combo % 10,
         "is_nsfg": np.isin(combo, cd.NSFG_COMBOS),
         "digit_confidence": np.array([0.99, 0.5, 0.95, 0.99, 0.99, 0.99]),
         "colour_leak": np.array([0.0, 0.0, 0.4, 0.0, 0.0, 0.1])}
  s = rates.summarize(out, cd.NSFG_COMBOS)
  assert s["n"] == 6 and s["nsfg"] == 3 and s["nsfg_rate"] == 0.5
  assert s["nsfg_per_combo"]["red 0"] == 2 and s["nsfg_per_combo"]["green 1"] == 1
  # Clear: confidence >= 0.9 and leak < 0.25 -> rows 0, 3, 4, 5, of which row 0 is NSFG.
  assert s["clear_share"] == pytest.approx(4 / 6) and s["nsfg_rate_clear"] == 0.25
  assert math.isclose(sum(s["colour_shares"].values()), 1.0) and s["digit_shares"][7] == 2 / 6


def test_nsfg_figure_pads_short_blocks_and_stacks_them():
  few = np.ones((3, 8, 8, 3))
  fig = rates.nsfg_figure([few, np.ones((25, 8, 8, 3))])
  assert fig.shape == (2 * 70, 342, 3) and fig.dtype == np.uint8
  cell = lambda b, r, c: fig[b * 70 + 2 + r * 34:b * 70 + 2 + r * 34 + 32, 2 + c * 34:34 + c * 34]
  assert cell(0, 0, 2).min() == 255 and cell(0, 0, 3).max() == 0  # 3 images, then black
  assert cell(1, 1, 9).min() == 255  # a full block keeps its first 20
