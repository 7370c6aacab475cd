"""The Frechet distance between two Gaussians, exactly, in float64 on the host.

  d^2 = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

(the squared 2-Wasserstein distance; FID when the Gaussians are fitted to Inception pool_3
features). The authors' release reports it without the first term; `frechet_terms` gives both
parts so that value (`fid_no_mean`) can be shown next to the correct one.

The trace term is computed without a non-symmetric matrix square root. With A1 = S1^(1/2) and
A2 = S2^(1/2), the symmetric PSD roots (eigendecompositions), (S1 S2)^(1/2) has the eigenvalues
of (A1 S2 A1)^(1/2) = ((A1 A2)(A1 A2)^T)^(1/2), so tr((S1 S2)^(1/2)) is the sum of the
singular values of A1 A2 (its nuclear norm): no square root of a round-off-level eigenvalue is
ever taken, so equal Gaussians give 0 to ~1e-11 even when their covariances are singular.

The regulariser (documented, not a diagonal offset): each covariance is symmetrised, and its
eigenvalues below D * machine-eps * (largest eigenvalue) -- below the accuracy of the
eigendecomposition, including the slightly negative ones of round-off -- are set to zero
before the square root. For valid covariances, singular or not (e.g. fewer samples than
dimensions), this changes the result only at round-off level, and the result is always a
finite real number >= 0. pytorch-fid's alternative (scipy.linalg.sqrtm of S1 S2, retried with
eps I added when singular, imaginary parts dropped) is available through `eps` > 0, which adds
eps I to both covariances.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class FrechetTerms:
  """mean: ||mu1 - mu2||^2; cov: tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)). Both >= 0."""

  mean: float
  cov: float

  @property
  def distance(self) -> float:
    """The Frechet distance (d^2 above, what is reported as FID)."""
    return self.mean + self.cov


def _psd(sigma: np.ndarray, name: str) -> np.ndarray:
  sigma = np.atleast_2d(np.asarray(sigma, dtype=np.float64))
  if sigma.ndim != 2 or sigma.shape[0] != sigma.shape[1]:
    raise ValueError(f"{name} must be a square covariance matrix, got shape {sigma.shape}")
  if not np.all(np.isfinite(sigma)):
    raise ValueError(f"{name} has non-finite entries")
  return (sigma + sigma.T) / 2.0


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
  """The symmetric PSD square root; eigenvalues below round-off level count as zero."""
  w, v = np.linalg.eigh(sigma)
  floor = len(w) * np.finfo(np.float64).eps * max(float(w[-1]), 0.0)
  return (v * np.sqrt(np.where(w > floor, w, 0.0))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """tr((S1 S2)^(1/2)) for symmetric PSD S1, S2 [D, D]: the nuclear norm of S1^(1/2) S2^(1/2)
  (float64; see the module docstring)."""
  product = _sqrt_psd(sigma1) @ _sqrt_psd(sigma2)
  return float(np.sum(np.linalg.svd(product, compute_uv=False)))


def frechet_terms(mu1, sigma1, mu2, sigma2, eps: float = 0.0) -> FrechetTerms:
  """Both parts of the Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

  mu: [D]; sigma: [D, D] covariances (any float dtype; computed in float64). eps >= 0 adds
  eps * I to both covariances (not needed for correctness; see the module docstring).
  """
  mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
  mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
  s1, s2 = _psd(sigma1, "sigma1"), _psd(sigma2, "sigma2")
  if not (mu1.shape == mu2.shape == s1.shape[:1] == s2.shape[:1]) or mu1.ndim != 1:
    raise ValueError(f"shapes disagree: mu1 {mu1.shape}, sigma1 {s1.shape}, mu2 {mu2.shape}, "
                     f"sigma2 {s2.shape}; expected [D] and [D, D]")
  if not (np.all(np.isfinite(mu1)) and np.all(np.isfinite(mu2))):
    raise ValueError("the means have non-finite entries")
  if eps < 0:
    raise ValueError(f"eps must be >= 0, got {eps}")
  if eps:
    s1, s2 = s1 + eps * np.eye(len(s1)), s2 + eps * np.eye(len(s2))
  diff = mu1 - mu2
  cov = float(np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))
  # tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2) = W2^2 between centred Gaussians >= 0; clip round-off.
  return FrechetTerms(mean=float(diff @ diff), cov=max(cov, 0.0))


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 0.0) -> float:
  """The Frechet distance with the mean term: ||mu1 - mu2||^2 + the covariance term."""
  return frechet_terms(mu1, sigma1, mu2, sigma2, eps).distance


def frechet_distance_no_mean(mu1, sigma1, mu2, sigma2, eps: float = 0.0) -> float:
  """The authors' release's value: the covariance term only (reported as `fid_no_mean`)."""
  return frechet_terms(mu1, sigma1, mu2, sigma2, eps).cov
