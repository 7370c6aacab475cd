"""Metrics of 2-D samples against the known toy mixture (docs/method.md section 7).

- nsfg_rate: share of samples whose most likely component is an NSFG one;
- disc_ratio: share of samples within `radius` of the NSFG centre divided by the true SFG
  mixture's probability of that disc (closed form, non-central chi-square): 1 is what a perfect
  SFG-only model gives (the SFG blobs' own tails), > 1 means NSFG generation;
- offmanifold: share of samples farther than `k` component stds from every component (a
  moderation term can lower the NSFG rate by producing junk; this catches it);
- sliced_w1: sliced 1-Wasserstein distance between the samples assigned to SFG components and
  the true SFG distribution (SFG quality);
- mode_shares: share of the SFG-assigned samples in each SFG component (balance).
"""

from typing import Dict, Sequence

import numpy as np
from scipy import stats

from msgm_jax.data.mixture import GaussianMixture


def disc_probability(mix: GaussianMixture, center: np.ndarray, radius: float) -> float:
  """P(|x - center| < radius) under the mixture, exactly (non-central chi-square per component)."""
  p = 0.0
  for mu, s, w in zip(mix.means, mix.stds, mix.weights):
    nc = float(np.sum((mu - center) ** 2)) / s**2
    p += w * stats.ncx2.cdf(radius**2 / s**2, df=mix.dim, nc=nc)
  return float(p)


def sliced_w1(x: np.ndarray, y: np.ndarray, n_proj: int = 128, seed: int = 0) -> float:
  """Mean over random unit directions of the 1-D W1 distance between projections."""
  rng = np.random.default_rng(seed)
  dirs = rng.standard_normal((n_proj, x.shape[1]))
  dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
  q = np.linspace(0.0, 1.0, 512)
  px, py = x @ dirs.T, y @ dirs.T
  return float(np.mean(np.abs(np.quantile(px, q, axis=0) - np.quantile(py, q, axis=0))))


def toy_metrics(x: np.ndarray, mix: GaussianMixture, nsfg: Sequence[int], *,
                radius: float = 1.0, offmanifold_k: float = 4.0, n_ref: int = 20000,
                seed: int = 0) -> Dict[str, float]:
  """All metrics for samples x [N, 2] (finite rows only; non-finite rows count as junk)."""
  x = np.asarray(x, np.float64)
  finite = np.all(np.isfinite(x), axis=1)
  n = len(x)
  xf = x[finite]
  nsfg = np.asarray(nsfg)
  sfg = np.setdiff1d(np.arange(mix.num_components), nsfg)
  comp = mix.component_posterior(xf).argmax(1)
  dist = np.linalg.norm(xf[:, None] - mix.means[None], axis=-1) / mix.stds[None]
  center = mix.means[nsfg].mean(0)
  in_disc = np.sum(np.linalg.norm(xf - center, axis=1) < radius) / n
  sfg_mix = mix.restrict(sfg)
  ref = sfg_mix.sample(np.random.default_rng(seed), n_ref)[0]
  is_sfg = np.isin(comp, sfg)
  shares = np.array([np.sum(comp == c) for c in sfg], np.float64) / max(is_sfg.sum(), 1)
  return {
      "nsfg_rate": float(np.isin(comp, nsfg).sum() / n),
      "disc_ratio": float(in_disc / disc_probability(sfg_mix, center, radius)),
      "offmanifold": float((np.sum(np.min(dist, axis=1) > offmanifold_k) + (~finite).sum()) / n),
      # None (JSON null) when fewer than two samples land on an SFG mode.
      "sliced_w1": float(sliced_w1(xf[is_sfg], ref)) if is_sfg.sum() > 1 else None,
      "mode_shares": [float(s) for s in shares],
      "n": int(n),
  }
