"""Tests for msgm_jax/data/transforms.py."""

import numpy as np
import pytest

from msgm_jax.data import transforms


def _ramp(h, w, c):
  return (np.arange(h * w * c) % 251).astype(np.uint8).reshape(h, w, c)


def test_center_crop_uses_score_sde_offsets_on_celeba_size():
  image = np.zeros((218, 178, 3), np.uint8)
  image[39, 19] = 255  # the first kept pixel: top = (218 - 140) // 2, left = (178 - 140) // 2
  out = transforms.center_crop(image, 140)
  assert out.shape == (140, 140, 3)
  assert out[0, 0, 0] == 255 and out.sum() == 3 * 255
  with pytest.raises(ValueError, match="crop"):
    transforms.center_crop(image, 200)


def test_resize_shapes_and_constant_images():
  flat = np.full((140, 140, 3), 77, np.uint8)
  out = transforms.resize(flat, 64)
  assert out.shape == (64, 64, 3) and out.dtype == np.uint8
  assert (out == 77).all()
  gray = np.full((28, 28, 1), 200, np.uint8)
  assert transforms.resize(gray, 32).shape == (32, 32, 1)


def test_resize_is_a_no_op_at_the_same_size():
  image = _ramp(8, 8, 1)
  assert transforms.resize(image, 8) is image


def test_resize_antialiases_when_shrinking():
  # A 1-pixel checkerboard averages to mid-grey when shrunk (no aliasing to 0 or 255).
  board = (np.indices((96, 96)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, -1)
  out = transforms.resize(board, 64).astype(np.float64)
  assert abs(out[8:-8, 8:-8].mean() - 127.5) < 3 and out[8:-8, 8:-8].std() < 40


def test_flip_mirrors_exactly_the_selected_images():
  images = np.stack([_ramp(4, 5, 3), _ramp(4, 5, 3) + 1, _ramp(4, 5, 3) + 2])
  out = transforms.flip_left_right(images, np.array([True, False, True]))
  np.testing.assert_array_equal(out[0], images[0][:, ::-1])
  np.testing.assert_array_equal(out[1], images[1])
  np.testing.assert_array_equal(out[2], images[2][:, ::-1])
  back = transforms.flip_left_right(out, np.array([True, False, True]))
  np.testing.assert_array_equal(back, images)


def test_unit_interval_range():
  x = transforms.to_unit_interval(np.array([0, 128, 255], np.uint8))
  assert x.dtype == np.float32
  np.testing.assert_allclose(x, [0.0, 128 / 255, 1.0])


def test_dequantize_stays_in_each_pixels_bin():
  images = np.array([[0, 17, 255]], np.uint8)
  a = transforms.dequantize(images, np.random.default_rng(0))
  b = transforms.dequantize(images, np.random.default_rng(0))
  np.testing.assert_array_equal(a, b)
  assert a.dtype == np.float32
  lo = images / 256.0
  assert ((a >= lo) & (a < lo + 1 / 256.0)).all() and a.max() < 1.0


@pytest.mark.parametrize("centered, lo, hi", [(True, -1.0, 1.0), (False, 0.0, 1.0)])
def test_scalers_map_unit_interval_and_invert(centered, lo, hi):
  x = np.linspace(0.0, 1.0, 11, dtype=np.float32)
  y = transforms.get_data_scaler(centered)(x)
  assert y.min() == lo and y.max() == hi
  np.testing.assert_allclose(transforms.get_data_inverse_scaler(centered)(y), x, atol=1e-7)
