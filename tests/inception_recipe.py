"""Deterministic stand-in weights for the FID Inception, from a seed, in numpy only.

Shared by scripts/make_inception_fixture.py (which loads them into the torch reference network,
in a venv with torch) and tests/test_metrics_inception.py (which loads them into the Flax port
through the real loader, without torch), so both networks hold identical weights without a
weights file in the repository. Pure numpy: importable where neither jax nor torch is.
"""

import zlib
from typing import Dict, Mapping, Sequence

import numpy as np

FIXTURE_SEED = 20151205


def _rng(seed: int, name: str) -> np.random.Generator:
  # Per-name streams: the values do not depend on the order in which names are listed.
  return np.random.default_rng([seed, zlib.crc32(name.encode())])


def seeded_state_dict(layout: Mapping[str, Sequence[int]], seed: int = FIXTURE_SEED
                      ) -> Dict[str, np.ndarray]:
  """torch-layout name -> array for every name in layout (name -> shape).

  Scales keep activations of order one through the whole network: He-normal convolutions,
  BatchNorm statistics near (0, 1) with gammas near 1, a small classifier.
  """
  out = {}
  for name, shape in layout.items():
    rng, shape = _rng(seed, name), tuple(shape)
    if name.endswith("num_batches_tracked"):
      out[name] = np.asarray(rng.integers(0, 1000), np.int64).reshape(shape)
      continue
    if name.endswith("conv.weight"):
      fan_in = int(np.prod(shape[1:]))
      value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
    elif name.endswith("bn.weight"):
      value = rng.uniform(0.8, 1.2, shape)
    elif name.endswith("bn.bias") or name.endswith("bn.running_mean"):
      value = rng.normal(0.0, 0.1, shape)
    elif name.endswith("bn.running_var"):
      value = rng.uniform(0.5, 1.5, shape)
    elif name == "fc.weight":
      value = rng.normal(0.0, np.sqrt(1.0 / shape[1]), shape)
    elif name == "fc.bias":
      value = rng.normal(0.0, 0.01, shape)
    else:
      raise ValueError(f"no recipe for parameter {name!r}")
    out[name] = value.astype(np.float32)
  return out


def tiny_state_dict() -> Dict[str, np.ndarray]:
  """What the committed tiny .pth files hold, computed here with numpy.

  The script builds the same tensors with torch, including views that share one storage
  (a transpose, a row at an offset), a scalar, and non-float32 dtypes.
  """
  base = np.arange(12, dtype=np.float32).reshape(3, 4) / 8.0
  return {
      "base": base,
      "transposed": base.T,  # non-contiguous view of base's storage
      "row": base[1],  # storage offset 4
      "column": base[:, 2],  # offset 2, stride 4
      "scalar": np.asarray(3.5, np.float32),
      "count": np.asarray(7, np.int64),
      "double": np.linspace(-1.0, 1.0, 5),
      "half": np.asarray([0.5, -2.0, 65504.0], np.float16),
      "empty": np.zeros((0, 3), np.float32),
  }
