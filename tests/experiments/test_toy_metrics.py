"""Toy metrics against closed form and Monte Carlo."""

import numpy as np

from msgm_jax.data import TOY2D_MIXTURE as MIX
from msgm_jax.experiments.toy_metrics import disc_probability, sliced_w1, toy_metrics


def test_disc_probability_matches_monte_carlo():
  sfg = MIX.restrict([0, 1])
  x = sfg.sample(np.random.default_rng(0), 400000)[0]
  mc = np.mean(np.linalg.norm(x, axis=1) < 1.5)
  np.testing.assert_allclose(disc_probability(sfg, np.zeros(2), 1.5), mc, rtol=0.05)


def test_metrics_of_true_samples():
  x, _ = MIX.sample(np.random.default_rng(1), 30000)
  m = toy_metrics(x, MIX, [2])
  assert abs(m["nsfg_rate"] - 1 / 3) < 0.015
  assert m["disc_ratio"] > 50  # the NSFG blob dwarfs the SFG tails in the disc
  assert m["offmanifold"] < 1e-3
  assert m["sliced_w1"] < 0.05
  np.testing.assert_allclose(m["mode_shares"], [0.5, 0.5], atol=0.02)
  sfg_only = MIX.restrict([0, 1]).sample(np.random.default_rng(2), 30000)[0]
  m = toy_metrics(sfg_only, MIX, [2])
  assert m["nsfg_rate"] < 0.005 and m["disc_ratio"] < 3.0  # ~1e-4 of SFG mass lies in the disc


def test_junk_counts_as_offmanifold_and_sw_grows_with_shift():
  x = np.concatenate([MIX.restrict([0, 1]).sample(np.random.default_rng(3), 900)[0],
                      np.full((100, 2), 9.0), np.full((1, 2), np.nan)])
  m = toy_metrics(x, MIX, [2])
  np.testing.assert_allclose(m["offmanifold"], 101 / 1001, rtol=1e-6)
  a = np.random.default_rng(4).normal(size=(5000, 2))
  assert sliced_w1(a, a + 1.0) > 5 * sliced_w1(a, np.random.default_rng(5).normal(size=(5000, 2)))
