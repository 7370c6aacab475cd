"""The Wilson interval against published values, and the rate summary."""

import numpy as np
import pytest

from msgm_jax import metrics


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Stat. Med. 17,
# Table II, method 3 (score interval without continuity correction), to 4 decimals.
@pytest.mark.parametrize("k,n,low,high", [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605),
                                          (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)])
def test_wilson_matches_newcombes_table(k, n, low, high):
  got = metrics.wilson_interval(k, n)
  np.testing.assert_allclose(got, (low, high), atol=5e-5)


def test_wilson_ends_are_exact_and_symmetric():
  z2 = 1.959963984540054**2
  assert metrics.wilson_interval(0, 1000) == (0.0, pytest.approx(z2 / (1000 + z2), rel=1e-12))
  low, high = metrics.wilson_interval(3, 40)
  assert metrics.wilson_interval(37, 40) == (pytest.approx(1 - high), pytest.approx(1 - low))
  assert metrics.wilson_interval(40, 40)[1] == 1.0
  with pytest.raises(ValueError, match="0 <= k <= n and n > 0"):
    metrics.wilson_interval(3, 0)


def test_rate_summary_counts_flags():
  out = metrics.rate_summary(np.array([True, False, False, True, False]))
  assert out["nsfg_rate"] == 0.4 and out["nsfg_rate_count"] == 2 and out["nsfg_rate_n"] == 5
  assert out["nsfg_rate_ci"] == list(metrics.wilson_interval(2, 5))
