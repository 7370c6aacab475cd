"""The Flax FID Inception against the torch reference (committed fixture), without torch.

tests/fixtures/inception_pool3.npz was written by scripts/make_inception_fixture.py: the pure-
torch Inception of torch-fidelity (pytorch-fid's FID graph) holding tests/inception_recipe's
seeded weights, run with pytorch-fid's input convention. Here the same weights are regenerated
from the seed, saved as an .npz, loaded through the real loader, and run through the port.
"""

import json
import os

import jax
import numpy as np
import pytest

from msgm_jax.evaluation.metrics import inception, weights
from tests.helpers import ROOT

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "inception_pool3.npz")


@pytest.fixture(scope="module")
def reference():
  with np.load(FIXTURE) as f:
    return {k: f[k] for k in f.files}


def test_the_layout_is_the_reference_state_dicts(reference):
  # The torch reference's 566 entries are these 472 plus 94 BatchNorm counters.
  ours = {name: shape for name, (shape, _, _) in weights.torch_layout().items()}
  theirs = dict(zip(reference["layout_names"],
                    map(tuple, json.loads(str(reference["layout_shapes"])))))
  counters = {k for k in theirs if k.endswith(weights.IGNORED_SUFFIX)}
  assert len(theirs) == 566 and len(counters) == 94
  assert ours == {k: v for k, v in theirs.items() if k not in counters}


def test_pool3_and_logits_match_the_torch_reference(reference, seeded_inception):
  _, path = seeded_inception
  variables, digest = weights.load_inception(path)
  assert len(digest) == 64
  images = reference["images"].astype(np.float32) / np.float32(255.0)  # uint8 -> [0, 1]
  pool3, logits = jax.jit(lambda v, x: inception.FIDInceptionV3().apply(
      v, inception.prepare_images(x), logits=True))(variables, images)
  assert pool3.shape == (3, inception.POOL3_DIM) and logits.shape == (3, inception.NUM_CLASSES)
  # float32 agreement after ~50 layers: measured max |diff| 6.7e-6 (features up to 12.5);
  # counting the padding in the average pools or an average pool in Mixed_7c gives 0.7 / 4.
  np.testing.assert_allclose(pool3, reference["pool3"], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(logits, reference["logits"], rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("case", ["up", "down"])
def test_resize_is_torchs_bilinear_without_antialiasing(reference, case):
  x, expected = reference[f"resize_{case}_in"], reference[f"resize_{case}_out"]
  got = jax.image.resize(x, expected.shape, method="bilinear", antialias=False)
  np.testing.assert_allclose(got, expected, atol=3e-7)


def test_inputs_are_resized_to_299_scaled_to_pm1_and_gray_is_replicated():
  rng = np.random.default_rng(0)
  gray = rng.uniform(0.0, 1.0, (2, 8, 8, 1)).astype(np.float32)
  x = inception.prepare_images(gray)
  assert x.shape == (2, 299, 299, 3)
  np.testing.assert_array_equal(x, inception.prepare_images(np.repeat(gray, 3, axis=-1)))
  np.testing.assert_allclose(inception.prepare_images(np.ones((1, 4, 4, 3))), 1.0, atol=1e-6)
  np.testing.assert_allclose(inception.prepare_images(np.zeros((1, 4, 4, 3))), -1.0, atol=1e-6)
  with pytest.raises(ValueError, match=r"\[N, H, W, 1 or 3\]"):
    inception.prepare_images(np.zeros((1, 8, 8, 2)))
