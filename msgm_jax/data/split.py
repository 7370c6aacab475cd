"""SFG / NSFG splits and the index sets each training regime draws from (docs/method.md section 1).

D = D_g (SFG) + D_u (NSFG). NSFG examples are those whose class is in `nsfg_classes`, or
(CelebA) whose binary attribute `nsfg_attribute` is set. Regimes:
  standard: one stream over all of D;
  unseen:   one stream over D_g only ("Unseen by Re-training");
  msgm:     a stream over D_g plus an independent stream over D_u.
"""

from typing import Optional, Sequence, Tuple

import numpy as np

from msgm_jax.data.sources import Source

REGIMES = ("standard", "unseen", "msgm")


def nsfg_mask(source: Source, nsfg_classes: Sequence[int] = (),
              nsfg_attribute: str = "") -> np.ndarray:
  """bool [N]: True where an example is NSFG. Exactly one of the two criteria must be given."""
  if bool(nsfg_attribute) == bool(len(nsfg_classes)):
    raise ValueError("give exactly one of nsfg_classes (class ids) or nsfg_attribute (e.g. "
                     f"'Bangs'); got nsfg_classes={tuple(nsfg_classes)!r}, "
                     f"nsfg_attribute={nsfg_attribute!r}")
  if nsfg_attribute:
    return source.attribute(nsfg_attribute)
  return np.isin(source.labels(), np.asarray(nsfg_classes, dtype=np.int64))


def split_indices(source: Source, nsfg_classes: Sequence[int] = (),
                  nsfg_attribute: str = "") -> Tuple[np.ndarray, np.ndarray]:
  """(sfg_idx, nsfg_idx): sorted int64 source indices; together they tile 0..N-1."""
  mask = nsfg_mask(source, nsfg_classes, nsfg_attribute)
  return np.flatnonzero(~mask).astype(np.int64), np.flatnonzero(mask).astype(np.int64)


def check_regime(regime: str) -> str:
  if regime not in REGIMES:
    raise ValueError(f"unknown regime {regime!r}; valid: {', '.join(REGIMES)}")
  return regime


def regime_sets(regime: str, num_examples: int, sfg_idx: Optional[np.ndarray],
                nsfg_idx: Optional[np.ndarray]) -> Tuple[np.ndarray, Optional[np.ndarray]]:
  """Index sets (main, nsfg or None) of a regime. sfg_idx/nsfg_idx may be None for 'standard'."""
  check_regime(regime)
  if regime == "standard":
    return np.arange(num_examples, dtype=np.int64), None
  for name, idx in (("SFG", sfg_idx), ("NSFG", nsfg_idx if regime == "msgm" else sfg_idx)):
    if idx is None or len(idx) == 0:
      raise ValueError(f"regime {regime!r} needs {name} examples but the split has none; "
                       "check nsfg_classes / nsfg_attribute")
  return sfg_idx, (nsfg_idx if regime == "msgm" else None)
