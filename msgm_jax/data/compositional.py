"""Colour digits: an embedded compositional dataset (digit shape x colour), built from the digits.

Every real 8x8 digit of a split (datasets.load_digits) appears once in each of the seven
colours whose RGB channels are fully on or off (red, green, blue, yellow, magenta, cyan,
white): image[..., k] = digit * on[k], uint8 [8, 8, 3]. So train has 1500 x 7 = 10500 images
and test 297 x 7 = 2079, in the order (digit image, colour); the two factors are independent
and every combination has the same share. Test digits are the digits' held-out test images.

The label is the combination: label = colour * 10 + digit (70 classes), so the project's
class machinery works unchanged: NSFG = `data.nsfg_classes` (combination ids, see `combo`),
data/split.py splits on it and a 70-class classifier trains on it (configs/classifier/).
The default NSFG set, NSFG_COMBOS, holds one colour per digit (digit d in colour d mod 7):
each digit keeps six SFG colours and each colour at least eight SFG digits, so every factor
value of an NSFG image occurs in the SFG data (as Bangs do on faces without bangs).

Colour is read back by rule (`read_colour`, exact on these images); the brightest channel is
the digit itself (`luminance`), so the shape factor can be read by the digits classifier
(msgm_jax/evaluation/classifier/compositional.py).
"""

from typing import Dict, Sequence, Tuple

import numpy as np

NUM_DIGITS = 10
# (name, RGB on/off): every non-black colour whose channels are fully on or off.
COLOURS: Tuple[Tuple[str, Tuple[int, int, int]], ...] = (
    ("red", (1, 0, 0)), ("green", (0, 1, 0)), ("blue", (0, 0, 1)), ("yellow", (1, 1, 0)),
    ("magenta", (1, 0, 1)), ("cyan", (0, 1, 1)), ("white", (1, 1, 1)))
COLOUR_NAMES = tuple(name for name, _ in COLOURS)
PALETTE = np.array([rgb for _, rgb in COLOURS], np.uint8)  # [7, 3]
NUM_COLOURS = len(COLOURS)
NUM_CLASSES = NUM_COLOURS * NUM_DIGITS
# A channel counts as "on" when it carries at least this share of the brightest channel's mass.
COLOUR_THRESHOLD = 0.5


def combo(digit, colour):
  """Class id of (digit, colour index): colour * 10 + digit (ints or int arrays)."""
  return np.asarray(colour) * NUM_DIGITS + np.asarray(digit)


def factors(labels) -> Dict[str, np.ndarray]:
  """Class ids [N] -> {'digit': [N], 'colour': [N]} (colour indices into COLOURS)."""
  labels = np.asarray(labels)
  return {"digit": labels % NUM_DIGITS, "colour": labels // NUM_DIGITS}


def colour_index(name: str) -> int:
  if name not in COLOUR_NAMES:
    raise ValueError(f"unknown colour {name!r}; valid: {', '.join(COLOUR_NAMES)}")
  return COLOUR_NAMES.index(name)


def latin_combos() -> Tuple[int, ...]:
  """Digit d in colour d mod 7, for d = 0..9: ten combinations (a seventh of the data)."""
  return tuple(int(combo(d, d % NUM_COLOURS)) for d in range(NUM_DIGITS))


NSFG_COMBOS = latin_combos()


def describe(labels: Sequence[int]) -> str:
  """'blue 7, red 0' for class ids."""
  f = factors(labels)
  return ", ".join(f"{COLOUR_NAMES[c]} {d}" for d, c in zip(f["digit"], f["colour"]))


def colourize(images: np.ndarray, labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Grey digits uint8 [N, H, W, 1], digit labels [N] -> every digit in every colour.

  Returns images uint8 [N * 7, H, W, 3] (row n * 7 + k is digit n in colour k) and class
  ids int64 [N * 7] (combo(digit, k)).
  """
  if images.ndim != 4 or images.shape[-1] != 1:
    raise ValueError(f"colourize takes grey images [N, H, W, 1]; got {images.shape}")
  out = images[:, None] * PALETTE[None, :, None, None, :]  # [N, 7, H, W, 3]
  ids = combo(np.asarray(labels, np.int64)[:, None], np.arange(NUM_COLOURS)[None, :])
  return out.reshape((-1,) + out.shape[2:]).astype(np.uint8), ids.reshape(-1)


def luminance(images):
  """[..., H, W, 3] -> [..., H, W, 1]: the brightest channel, i.e. the grey digit itself
  (exact on constructed images, whose lit channels all equal the digit). numpy or jax."""
  return images.max(axis=-1, keepdims=True)


def channel_shares(images, xp=np):
  """float [N, H, W, 3] in [0, 1] -> [N, 3]: each channel's total (clipped to [0, 1]) over
  the largest channel's (all ones for an all-black image). numpy or jax.numpy (xp)."""
  mass = xp.clip(images, 0.0, 1.0).sum(axis=(1, 2))  # [N, 3]
  top = mass.max(axis=-1, keepdims=True)
  return xp.where(top > 0, mass / xp.where(top > 0, top, 1.0), 1.0)


def read_colour(images, xp=np):
  """Colour index of each image by rule: float [N, H, W, 3] in [0, 1] -> int [N].

  A channel is on when its share (channel_shares) is at least COLOUR_THRESHOLD; the on/off
  pattern is looked up in PALETTE. Exact on constructed images (off channels are 0). An
  all-black image reads as white (no colour to tell). Pure; jittable with xp=jax.numpy.
  """
  on = channel_shares(images, xp) >= COLOUR_THRESHOLD  # [N, 3]
  palette = xp.asarray(PALETTE, dtype=bool)
  match = (on[:, None, :] == palette[None, :, :]).all(axis=-1)  # [N, 7]: exactly one True
  return xp.argmax(match, axis=-1)


def palette_residual(images, xp=np):
  """How far an image is from any constructed colour digit: |image - L * palette(colour)|
  summed over pixels and channels, over the luminance L's sum (0 on constructed images; noise
  images, whose channels disagree everywhere, about 1 or more). float [N, H, W, 3] in [0, 1]
  -> [N]; an all-black image gives 0 (it has no ink to be off the palette: see ink)."""
  x = xp.clip(images, 0.0, 1.0)
  lum = luminance(x)
  on = xp.asarray(PALETTE, dtype=x.dtype)[read_colour(x, xp)]  # [N, 3]
  recon = lum * on[:, None, None, :]
  ink = lum.sum(axis=(1, 2, 3))
  return xp.abs(x - recon).sum(axis=(1, 2, 3)) / xp.maximum(ink, 1e-6)


def ink(images, xp=np):
  """The luminance's sum over the pixels (real 8x8 digits: 11-31), float [N, H, W, 3] in
  [0, 1] -> [N]."""
  return luminance(xp.clip(images, 0.0, 1.0)).sum(axis=(1, 2, 3))


def colour_leak(images, xp=np):
  """The largest share of an off channel (0 on constructed images; near 0.5: an ambiguous
  colour): float [N, H, W, 3] in [0, 1] -> [N]."""
  shares = channel_shares(images, xp)
  return xp.where(shares >= COLOUR_THRESHOLD, 0.0, shares).max(axis=-1)
