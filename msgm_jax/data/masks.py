"""Inpainting masks: which pixels of an image are known (1) and which are completed (0).

score_sde's convention: 1 marks known pixels. Named masks (MASKS) are defined at any
resolution and always keep some pixels and complete some (the release's centre band is empty
at 32x32):
- right_half: the right half (columns >= W // 2) is completed;
- top_half: the top half (rows < H // 2) is completed;
- center_band: a horizontal band of max(1, H // 4) rows through the middle is completed.
A user mask is a file: .npy (bool or 0/1 numbers, [H, W], [H, W, 1] or [H, W, C]) or .png
(greyscale; white, >= 128, is known). `make_mask` returns float32 [H, W, C].
"""

import os
from typing import Optional, Tuple

import numpy as np

from msgm_jax.registry import Registry

# name -> fn(h, w) -> bool [h, w], True where known.
MASKS: Registry = Registry("inpainting mask")
FILE_TYPES = (".npy", ".png")


@MASKS.register("right_half")
def right_half(h: int, w: int) -> np.ndarray:
  return np.broadcast_to(np.arange(w) < w // 2, (h, w))


@MASKS.register("top_half")
def top_half(h: int, w: int) -> np.ndarray:
  return np.broadcast_to((np.arange(h) >= h // 2)[:, None], (h, w))


@MASKS.register("center_band")
def center_band(h: int, w: int) -> np.ndarray:
  band = max(1, h // 4)
  start = (h - band) // 2
  rows = np.arange(h)
  return np.broadcast_to(((rows < start) | (rows >= start + band))[:, None], (h, w))


def _fail(path: str, why: str) -> ValueError:
  return ValueError(f"inpaint.mask={path}: {why}; pass a mask file that fits, or one of "
                    f"{', '.join(MASKS.names())}")


def _read(path: str) -> np.ndarray:
  """The file's mask as float [H, W] or [H, W, C] with values checked to be 0 or 1."""
  try:
    if path.endswith(".npy"):
      mask = np.load(path, allow_pickle=False)
      if mask.dtype.kind not in "biuf":
        raise _fail(path, f"holds {mask.dtype} values, not bool or 0/1 numbers")
      mask = mask.astype(np.float64)
    else:
      from PIL import Image  # pylint: disable=import-outside-toplevel
      with Image.open(path) as image:
        mask = (np.asarray(image.convert("L")) >= 128).astype(np.float64)
  except (OSError, ValueError, SyntaxError) as e:
    if isinstance(e, ValueError) and str(e).startswith("inpaint.mask="):
      raise
    raise _fail(path, f"cannot be read ({type(e).__name__}: {e})") from None
  if not np.all((mask == 0) | (mask == 1)):
    raise _fail(path, "holds values other than 0 and 1 (1: known, 0: to complete)")
  return mask


def load_mask(path: str, shape: Tuple[int, int, int]) -> np.ndarray:
  """A mask file (see the module docstring) -> float32 [H, W, C] for images of `shape`."""
  if not path.endswith(FILE_TYPES):
    raise _fail(path, f"is neither a mask name nor a {' or '.join(FILE_TYPES)} file")
  if not os.path.isfile(path):
    raise _fail(path, "no such file")
  mask = _read(path)
  h, w, c = shape
  if mask.ndim == 2:
    mask = mask[..., None]
  if mask.ndim != 3 or mask.shape[:2] != (h, w) or mask.shape[2] not in (1, c):
    raise _fail(path, f"has shape {mask.shape}, but the images are {tuple(shape)} (a mask is "
                f"[{h}, {w}], [{h}, {w}, 1] or [{h}, {w}, {c}])")
  return np.broadcast_to(mask, shape).astype(np.float32)


def make_mask(name: str, shape: Tuple[int, int, int]) -> np.ndarray:
  """A named mask or a mask file -> float32 [H, W, C], 1 where known; ValueError (one line
  naming the fix) for a bad one, or one that keeps no pixel or completes none."""
  h, w, c = shape
  if name in MASKS:
    mask = np.broadcast_to(MASKS.get(name)(h, w)[..., None], shape).astype(np.float32)
  else:
    mask = load_mask(name, shape)
  if mask.min() == mask.max():
    raise _fail(name, "keeps no pixel" if mask.max() == 0 else "completes no pixel")
  return mask


def mask_rule(value) -> Optional[str]:
  """validate's rule for inpaint.mask: None when valid, else what it must be."""
  if isinstance(value, str) and (value in MASKS or value.endswith(FILE_TYPES)):
    return None
  return f"one of {', '.join(MASKS.names())}, or a {' or '.join(FILE_TYPES)} mask file"

