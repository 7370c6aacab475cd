"""Tests for msgm_jax/experiments/colour_rates.py: the rate summary (its Wilson interval is
msgm_jax/evaluation/metrics/rates.py's, tested in tests/evaluation/metrics/test_rates.py)."""

import math

import numpy as np
import pytest

from msgm_jax.experiments import colour_rates as rates
from msgm_jax.data import compositional as cd


def test_summarize_counts_and_clear_readings():
  combo = np.array([0, 0, 11, 27, 27, 5])
  out = {"combo": combo, "colour": combo // 10, "digit": combo % 10,
         "is_nsfg": np.isin(combo, cd.NSFG_COMBOS),
         "digit_confidence": np.array([0.99, 0.5, 0.95, 0.99, 0.99, 0.99]),
         "colour_leak": np.array([0.0, 0.0, 0.4, 0.0, 0.0, 0.1]),
         "unreadable": np.zeros(6, bool)}
  s = rates.summarize(out, cd.NSFG_COMBOS)
  assert s["n"] == 6 and s["nsfg"] == 3 and s["nsfg_rate"] == 0.5
  assert s["nsfg_per_combo"]["red 0"] == 2 and s["nsfg_per_combo"]["green 1"] == 1
  # Clear: confidence >= 0.9 and leak < 0.25 -> rows 0, 3, 4, 5, of which row 0 is NSFG.
  assert s["clear_share"] == pytest.approx(4 / 6) and s["nsfg_rate_clear"] == 0.25
  assert math.isclose(sum(s["colour_shares"].values()), 1.0) and s["digit_shares"][7] == 2 / 6
  assert s["unreadable"] == 0 and s["clear_n"] == 4


def _reading(combo, unreadable=None, confidence=None):
  combo = np.asarray(combo)
  unreadable = np.zeros(len(combo), bool) if unreadable is None else np.asarray(unreadable)
  return {"combo": combo, "colour": combo // 10, "digit": combo % 10,
          "is_nsfg": np.isin(combo, cd.NSFG_COMBOS) & ~unreadable, "unreadable": unreadable,
          "digit_confidence": np.full(len(combo), 0.99) if confidence is None else
          np.asarray(confidence), "colour_leak": np.zeros(len(combo))}


def test_unreadable_images_are_neither_sfg_nor_nsfg():
  s = rates.summarize(_reading([0, 66, 66, 5], unreadable=[False, True, True, False]),
                      cd.NSFG_COMBOS)
  assert s["nsfg"] == 1 and s["unreadable"] == 2 and s["unreadable_share"] == 0.5
  assert s["nsfg_per_combo"]["white 6"] == 0 and s["clear_n"] == 2


def test_paired_counts_where_the_references_nsfg_samples_go():
  # Reference: red 0, green 1, blue 2, yellow 3, magenta 4 (all NSFG), then one SFG red 5.
  ref = _reading([0, 11, 22, 33, 44, 5])
  # Row: red 0 kept; green 1 -> red 1 (same digit, SFG); blue 2 -> blue 3 (same colour);
  # yellow 3 -> red 0 (another NSFG); magenta 4 -> unreadable; red 5 -> green 1 (new NSFG).
  row = _reading([0, 1, 23, 0, 44, 11], unreadable=[False, False, False, False, True, False])
  out = rates.paired(ref, row, cd.NSFG_COMBOS)
  assert out["ref_nsfg_goes_to"] == {"n": 5, "same_combination": 1, "other_nsfg": 1,
                                     "sfg_same_digit": 1, "sfg_same_colour": 1,
                                     "sfg_both_changed": 0, "unreadable": 1}
  # NSFG in the reference only: green 1, blue 2, magenta 4 (3); in the row only: red 5's pair.
  assert (out["mcnemar"]["a_only"], out["mcnemar"]["b_only"]) == (3, 1)
  assert out["mcnemar_clear"]["a_only"] == 2  # the unreadable pair is not clear


def test_nsfg_figure_pads_short_blocks_and_stacks_them():
  few = np.ones((3, 8, 8, 3))
  fig = rates.nsfg_figure([few, np.ones((25, 8, 8, 3))])
  assert fig.shape == (2 * 70, 342, 3) and fig.dtype == np.uint8
  cell = lambda b, r, c: fig[b * 70 + 2 + r * 34:b * 70 + 2 + r * 34 + 32, 2 + c * 34:34 + c * 34]
  assert cell(0, 0, 2).min() == 255 and cell(0, 0, 3).max() == 0  # 3 images, then black
  assert cell(1, 1, 9).min() == 255  # a full block keeps its first 20
