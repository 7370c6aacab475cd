"""A rate with its 95% confidence interval: the NSFG rate of samples and of real images.

The Wilson score interval (Wilson 1927) for k successes in n trials, with z the normal quantile
(1.96 for 95%):

  centre = (p + z^2 / 2n) / (1 + z^2 / n)
  half = z / (1 + z^2 / n) sqrt(p (1 - p) / n + z^2 / 4n^2)

Unlike the normal approximation it stays inside [0, 1] and is not empty at k = 0: 0 of n gives
[0, z^2 / (n + z^2)] (0 of 1000: [0, 0.0038]), which is what "no NSFG sample" can claim.
"""

import math
from typing import Any, Dict, Tuple

import numpy as np

Z95 = 1.959963984540054  # the 0.975 quantile of the standard normal


def wilson_interval(k: int, n: int, z: float = Z95) -> Tuple[float, float]:
  """(low, high) of the Wilson score interval for k successes in n > 0 trials."""
  if n <= 0 or not 0 <= k <= n:
    raise ValueError(f"a rate needs 0 <= k <= n and n > 0; got k={k}, n={n}")
  p, z2 = k / n, z * z
  denom = 1.0 + z2 / n
  centre = (p + z2 / (2 * n)) / denom
  half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
  # Exact ends at k = 0 and k = n (the formula leaves round-off there).
  low = 0.0 if k == 0 else max(0.0, centre - half)
  high = 1.0 if k == n else min(1.0, centre + half)
  return low, high


def rate_summary(flags, name: str = "nsfg_rate") -> Dict[str, Any]:
  """flags: bool [n] -> {name: k / n, name_ci: [low, high] (Wilson 95%), name_count: k,
  name_n: n}."""
  flags = np.asarray(flags, bool).reshape(-1)
  n, k = len(flags), int(flags.sum())
  low, high = wilson_interval(k, n)
  return {name: k / n, f"{name}_ci": [low, high], f"{name}_count": k, f"{name}_n": n}


def mcnemar_exact(a, b) -> Dict[str, Any]:
  """McNemar's exact test of paired bool decisions a, b [n] (the same n samples drawn with the
  same sampler keys by two models): the discordant counts a_only (a True, b False) and b_only,
  and the two-sided p-value 2 P(X <= min(a_only, b_only)) for X ~ Binomial(a_only + b_only,
  1/2), capped at 1 (1 when no pair is discordant)."""
  a, b = np.asarray(a, bool).reshape(-1), np.asarray(b, bool).reshape(-1)
  if a.shape != b.shape:
    raise ValueError(f"paired decisions need the same number of samples; got {a.size} and "
                     f"{b.size} (draw both rows with the same eval.num_samples)")
  a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
  n, k = a_only + b_only, min(a_only, b_only)
  # log-space sum of the binomial tail, exact for any n
  tail = sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                      - n * math.log(2.0)) for i in range(k + 1)) if n else 1.0
  return {"a_only": a_only, "b_only": b_only, "p_value": min(1.0, 2.0 * tail)}
