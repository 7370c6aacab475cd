"""Inpainting masks (msgm_jax/data/masks.py): named masks at any resolution, and mask files."""

import numpy as np
import pytest
from PIL import Image

from msgm_jax.data import masks
from msgm_jax.config import validate


@pytest.mark.parametrize("size", [2, 3, 8, 28, 32, 64])
def test_named_masks_keep_and_complete_pixels_at_every_resolution(size):
  for name in masks.MASKS:
    mask = masks.make_mask(name, (size, size, 3))
    assert mask.shape == (size, size, 3) and mask.dtype == np.float32
    assert 0 < mask.sum() < mask.size, (name, size)
    assert np.all(mask == mask[..., :1])  # one mask for every channel


def test_named_masks_at_32():
  right, top, band = (masks.make_mask(n, (32, 32, 1))[..., 0]
                      for n in ("right_half", "top_half", "center_band"))
  assert right[:, :16].all() and not right[:, 16:].any()  # 1 = known: the left half
  assert top[16:].all() and not top[:16].any()
  assert not band[12:20].any() and band[:12].all() and band[20:].all()  # 8 middle rows


def test_mask_files(tmp_path):
  expect = np.zeros((8, 8, 1), np.float32)
  expect[:, :3] = 1.0
  np.save(tmp_path / "m.npy", expect[..., 0].astype(bool))
  np.testing.assert_array_equal(masks.make_mask(str(tmp_path / "m.npy"), (8, 8, 1)), expect)
  Image.fromarray((expect[..., 0] * 255).astype(np.uint8)).save(tmp_path / "m.png")
  rgb = masks.make_mask(str(tmp_path / "m.png"), (8, 8, 3))
  np.testing.assert_array_equal(rgb, np.repeat(expect, 3, axis=-1))


@pytest.mark.parametrize("make,message", [
    (lambda p: np.save(p / "x.npy", np.full((8, 8), 0.5)), "values other than 0 and 1"),
    (lambda p: np.save(p / "x.npy", np.zeros((8, 8))), "keeps no pixel"),
    (lambda p: np.save(p / "x.npy", np.ones((8, 8, 2))), "has shape (8, 8, 2)"),
    (lambda p: (p / "x.npy").write_bytes(b"not numpy"), "cannot be read"),
    (lambda p: None, "no such file"),
])
def test_bad_mask_files_are_one_line_errors_naming_the_fix(tmp_path, make, message):
  make(tmp_path)
  with pytest.raises(ValueError) as e:
    masks.make_mask(str(tmp_path / "x.npy"), (8, 8, 3))
  text = str(e.value)
  assert message in text and "\n" not in text and "right_half" in text


def test_config_rule():
  assert masks.mask_rule("center_band") is None and masks.mask_rule("a/b.png") is None
  assert "right_half" in masks.mask_rule("left_half")
  assert validate.SECTIONS.get("inpaint")["mask"] is masks.mask_rule
