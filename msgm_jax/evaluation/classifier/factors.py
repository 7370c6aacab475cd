"""The colour digits' NSFG detector: each factor read separately, then the NSFG rule.

Colour is defined by construction and read by rule (data.compositional.read_colour, exact on
real images). The digit shape is read by the digits classifier (configs/classifier/digits.py)
from the image's luminance, the brightest channel, which is the grey digit itself on real
images: so the shape reading never depends on the colour, and the classifier never saw a
colour digit (no SFG/NSFG bias can come from it). An image is `unreadable` when it has almost
no ink (ink < INK_MIN: black or nearly so; real digits have 11-31) or its channels are not a
palette colour times one grey digit (palette_residual > RESIDUAL_MAX: noise; real images 0, a
2000-step Unseen model's samples 0.21 at the 99th percentile, uniform noise 0.85 or more).
Otherwise the image is NSFG when its (digit, colour) combination is one of the NSFG
combinations, else SFG: three classes, so noise is no longer read as "white 6".

  det = load_detector("runs/classifier_digits")     # the digits classifier's workdir
  out = det(images, nsfg_combos)                     # images: float [N, 8, 8, 3] in [0, 1]
  out["digit"], out["colour"], out["combo"], out["is_nsfg"]
"""

import functools
from typing import Callable, Dict, Sequence

import jax
import jax.numpy as jnp

from msgm_jax import data
from msgm_jax.evaluation.classifier.loading import load_classifier
from msgm_jax.data import compositional

INK_MIN = 5.0
RESIDUAL_MAX = 0.5


def read_factors(images: jax.Array, digit_logits: Callable[[jax.Array], jax.Array],
                 nsfg_combos: Sequence[int]) -> Dict[str, jax.Array]:
  """images: float [N, H, W, 3] in [0, 1]; digit_logits: grey [N, H, W, 1] -> [N, 10].

  Returns int32 [N] 'digit', 'colour' (index into compositional.COLOURS), 'combo'
  (colour * 10 + digit), bool [N] 'unreadable' (see the module docstring) and 'is_nsfg' (combo
  in nsfg_combos and readable), and float [N] diagnostics of how clear the reading is:
  'digit_confidence' (the classifier's top probability), 'colour_leak'
  (compositional.colour_leak: 0 on real images), 'ink' and 'palette_residual'. Pure, jittable.
  """
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"the colour digits detector takes RGB images [N, H, W, 3]; got "
                     f"{tuple(images.shape)}")
  probs = jax.nn.softmax(digit_logits(compositional.luminance(images)), axis=-1)
  digit = jnp.argmax(probs, axis=-1).astype(jnp.int32)
  colour = compositional.read_colour(images, xp=jnp).astype(jnp.int32)
  combo = colour * compositional.NUM_DIGITS + digit
  ink = compositional.ink(images, xp=jnp)
  residual = compositional.palette_residual(images, xp=jnp)
  unreadable = (ink < INK_MIN) | (residual > RESIDUAL_MAX)
  is_nsfg = jnp.isin(combo, jnp.asarray(tuple(nsfg_combos), jnp.int32)) & ~unreadable
  return {"digit": digit, "colour": colour, "combo": combo, "unreadable": unreadable,
          "is_nsfg": is_nsfg, "digit_confidence": probs.max(axis=-1),
          "colour_leak": compositional.colour_leak(images, xp=jnp), "ink": ink,
          "palette_residual": residual}


def load_detector(classifier_dir: str
                  ) -> Callable[[jax.Array, Sequence[int]], Dict[str, jax.Array]]:
  """(images, nsfg_combos) -> read_factors(...), with the digits classifier of a
  configs/classifier/digits.py workdir (ClassifierMismatch for any other classifier)."""
  clf = load_classifier(classifier_dir, data.DataSpec("digits", nsfg_classes=(0,)))
  logits = jax.jit(clf.logits)

  def detect(images, nsfg_combos):
    return read_factors(jnp.asarray(images, jnp.float32),
                        functools.partial(logits, clf.params), nsfg_combos)

  return detect
