"""Image transforms on the host, in numpy (docs/method.md section 5).

Geometry (centre crop, resize) acts on uint8 [H, W, C] images one at a time; the rest acts on
batches [B, H, W, C]. Randomness is never drawn here: callers pass flip bits or an explicit
numpy Generator, so the pipeline stays a pure function of (seed, batch position).
"""

from typing import Callable

import numpy as np
from PIL import Image


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """Central size x size crop of [H, W, C] with offsets floor((H - size) / 2), as score_sde.

  CelebA 218 x 178 with size 140 keeps rows 39..178 and columns 19..158.
  """
  h, w = image.shape[:2]
  if size > min(h, w):
    raise ValueError(f"cannot crop {size}x{size} from a {h}x{w} image")
  top, left = (h - size) // 2, (w - size) // 2
  return image[top:top + size, left:left + size]


def resize(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes uint8 [H, W, C] to [size, size, C] with PIL's antialiased bilinear filter.

  This matches score_sde's `tf.image.resize(..., antialias=True)` (bilinear, with a filter
  widened by the scale factor when shrinking, i.e. a triangle/area-like antialias). The result
  is rounded to uint8, as stored images are. No-op when the size already matches.
  """
  if image.shape[0] == size and image.shape[1] == size:
    return image
  channels = image.shape[2]
  pil = Image.fromarray(image[..., 0] if channels == 1 else image)
  out = np.asarray(pil.resize((size, size), resample=Image.BILINEAR))
  return out.reshape(size, size, channels)


def flip_left_right(images: np.ndarray, flip: np.ndarray) -> np.ndarray:
  """Mirrors images [B, H, W, C] horizontally where flip [B] (bool) is set; a new array."""
  flip = np.asarray(flip, dtype=bool).reshape(-1, 1, 1, 1)
  return np.where(flip, images[:, :, ::-1], images)


def to_unit_interval(images: np.ndarray) -> np.ndarray:
  """uint8 values 0..255 -> float32 in [0, 1] (x / 255, as score_sde)."""
  return np.asarray(images, dtype=np.float32) / np.float32(255.0)


def dequantize(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Uniform dequantisation for likelihoods: (x + u) / 256 with u ~ U[0, 1), float32 in [0, 1).

  images: uint8 values (any dtype holding 0..255), [B, ...]. The density of the result on
  [0, 1)^D lower-bounds the discrete data likelihood (Theis et al. 2016; score_sde's bpd).
  """
  x = np.asarray(images, dtype=np.float32)
  return (x + rng.random(x.shape, dtype=np.float32)) / np.float32(256.0)


def get_data_scaler(centered: bool) -> Callable:
  """[0, 1] data -> model space: [-1, 1] when centred, else unchanged. Works on numpy and jax."""
  if centered:
    return lambda x: x * 2.0 - 1.0
  return lambda x: x


def get_data_inverse_scaler(centered: bool) -> Callable:
  """Model space -> [0, 1] images (for sample grids); the inverse of get_data_scaler.

  Values are not clipped: samples may overshoot, clip where images are written.
  """
  if centered:
    return lambda x: (x + 1.0) / 2.0
  return lambda x: x
