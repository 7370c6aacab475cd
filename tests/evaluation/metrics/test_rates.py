"""The Wilson interval against published values, and the rate summary."""

import numpy as np
import pytest

from msgm_jax.evaluation import metrics


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


def test_mcnemar_exact_by_hand():
  from msgm_jax.evaluation.metrics.rates import mcnemar_exact  # pylint: disable=import-outside-toplevel
  # 3 pairs only in a, 15 only in b, 100 agreeing: P(X <= 3), X ~ Bin(18, 1/2), is
  # (1 + 18 + 153 + 816) / 2^18 = 988 / 262144; two-sided: twice that.
  a = np.array([1] * 3 + [0] * 15 + [1] * 40 + [0] * 60, bool)
  b = np.array([0] * 3 + [1] * 15 + [1] * 40 + [0] * 60, bool)
  out = mcnemar_exact(a, b)
  assert (out["a_only"], out["b_only"]) == (3, 15)
  np.testing.assert_allclose(out["p_value"], 2 * 988 / 262144, rtol=1e-12)
  assert mcnemar_exact(b, a)["p_value"] == out["p_value"]
  assert mcnemar_exact(a, a)["p_value"] == 1.0  # no discordant pair
  np.testing.assert_allclose(mcnemar_exact([0] * 10, [1] * 10)["p_value"], 2 / 1024)
  assert mcnemar_exact([1, 0], [0, 1])["p_value"] == 1.0  # capped
  with pytest.raises(ValueError, match="same number of samples"):
    mcnemar_exact([1, 0], [1])
