"""Tests for msgm_jax/compositional_rates.py: the rate summary (its Wilson interval is
msgm_jax/metrics/rates.py's, tested in tests/metrics/test_rates.py)."""

import math

import numpy as np
import pytest

from msgm_jax import compositional_rates as rates
from msgm_jax.data import compositional as cd


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
