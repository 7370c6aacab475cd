"""The colour digits' detector (msgm_jax/evaluation/classifier/factors.py), the premise measurement
(msgm_jax/experiments/colour_rates.py) on it, and the colour digits' own classifier config."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from msgm_jax.experiments import colour_rates as rates
from msgm_jax import data
from msgm_jax.evaluation.classifier import ClassifierMismatch, factors, load_classifier
from msgm_jax.data import compositional as cd
from msgm_jax.data import datasets
from tests.helpers import run_cli as _cli

TINY = ["--config.classifier.width=8", "--config.classifier.lr=3e-3",
        "--config.classifier.n_iters=40", "--config.classifier.snapshot_freq=40",
        "--config.classifier.log_freq=20"]


@pytest.fixture(scope="module")
def test_split():
  """The colour digits' test split: images float [2079, 8, 8, 3] in [0, 1], class ids."""
  src = datasets.get_dataset("colour_digits").load("test")
  return src.images / 255.0, src.labels()


def _nearest_grey_digit(grey):
  """An exact 'classifier' of the grey test digits: logits = -distance to each test digit,
  pooled per label. grey [N, 8, 8, 1] -> [N, 10]."""
  ref = datasets.load_digits("test")
  refs = jnp.asarray(ref.images / 255.0).reshape(len(ref), -1)
  d = ((grey.reshape(len(grey), 1, -1) - refs[None]) ** 2).sum(-1)  # [N, M]
  onehot = jax.nn.one_hot(ref.labels(), 10)  # [M, 10]
  return -jnp.min(jnp.where(onehot[None] > 0, d[..., None], jnp.inf), axis=1)


def test_read_factors_is_exact_given_an_exact_shape_reader(test_split):
  images, labels = test_split
  blue7 = (int(cd.combo(7, cd.colour_index("blue"))),)
  for nsfg in (cd.NSFG_COMBOS, blue7):
    out = jax.jit(lambda x, n=nsfg: factors.read_factors(x, _nearest_grey_digit, n))(images)
    truth = cd.factors(labels)
    np.testing.assert_array_equal(out["digit"], truth["digit"])
    np.testing.assert_array_equal(out["colour"], truth["colour"])
    np.testing.assert_array_equal(out["combo"], labels)
    np.testing.assert_array_equal(out["is_nsfg"], np.isin(labels, nsfg))
    assert out["is_nsfg"].dtype == jnp.bool_ and float(out["colour_leak"].max()) == 0.0
    assert not np.asarray(out["unreadable"]).any()
  with pytest.raises(ValueError, match=r"RGB images \[N, H, W, 3\]"):
    factors.read_factors(images[..., :1], _nearest_grey_digit, cd.NSFG_COMBOS)


def test_black_and_noise_images_are_unreadable_not_white_sixes(test_split):
  """Black and noise images read as white by the colour rule; the detector calls them
  unreadable (neither SFG nor NSFG), whatever digit the shape reader sees."""
  images, _ = test_split
  rng = np.random.default_rng(0)
  odd = np.concatenate([np.zeros((4, 8, 8, 3)), np.full((4, 8, 8, 3), 0.02),
                        rng.uniform(0, 1, (8, 8, 8, 3)),
                        np.clip(rng.normal(0.5, 0.3, (8, 8, 8, 3)), 0, 1),
                        np.clip(images[:8] + rng.normal(0, 0.5, (8, 8, 8, 3)), 0, 1)])
  white6 = (int(cd.combo(6, cd.colour_index("white"))),)
  out = factors.read_factors(jnp.asarray(odd, jnp.float32), _nearest_grey_digit, white6)
  assert np.asarray(out["unreadable"]).all() and not np.asarray(out["is_nsfg"]).any()
  # a slightly noisy real digit stays readable
  mild = np.clip(images[:64] + rng.normal(0, 0.03, (64, 8, 8, 3)), 0, 1)
  out = factors.read_factors(jnp.asarray(mild, jnp.float32), _nearest_grey_digit, white6)
  assert not np.asarray(out["unreadable"]).any()


@pytest.fixture(scope="module")
def digits_classifier(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("digits_classifier"))
  out = _cli("--config=configs/classifier/digits.py", *TINY, f"--workdir={workdir}")
  assert out.returncode == 0, out.stderr[-2000:]
  return workdir


def test_detector_and_rates_with_a_trained_digits_classifier(digits_classifier, test_split,
                                                             tmp_path):
  images, labels = test_split
  detect = factors.load_detector(digits_classifier)
  out = detect(images, cd.NSFG_COMBOS)
  np.testing.assert_array_equal(out["colour"], cd.factors(labels)["colour"])
  clf = load_classifier(digits_classifier)
  grey = datasets.load_digits("test").images / 255.0
  np.testing.assert_array_equal(  # the shape reading is the classifier's on the grey digit
      out["digit"], np.repeat(np.argmax(clf.logits(clf.params, grey), -1), 7))
  np.testing.assert_array_equal(out["is_nsfg"], np.isin(out["combo"], cd.NSFG_COMBOS))
  # Samples that are the real test images get exactly the detector's rates on them.
  path = str(tmp_path / "real.npz")
  np.savez(path, images=(images * 255).round().astype(np.uint8))
  figure = str(tmp_path / "nsfg.png")
  result = rates.measure(digits_classifier, {"real": path}, cd.NSFG_COMBOS, figure)
  real, det = result["samples"]["real"], result["detector"]
  assert real["n"] == 2079 and det["floor"]["n"] == 6 * 297 and det["recall"]["n"] == 297
  assert real["nsfg"] == det["floor"]["nsfg"] + det["recall"]["nsfg"]
  assert real["nsfg"] == int(out["is_nsfg"].sum())
  assert sum(real["nsfg_per_combo"].values()) == real["nsfg"]
  json.dumps(result)  # the CLI prints it
  # Two blocks (real NSFG test images, the 'real' samples) of 2 x 10 digits enlarged 4x.
  assert np.asarray(Image.open(figure)).shape == (2 * (2 * 34 + 2), 10 * 34 + 2, 3)


def test_colour_digits_classifier_trains_through_the_cli_and_is_refused_as_shape_reader(
    tmp_path):
  out = _cli("--config=configs/classifier/colour_digits.py", *TINY, f"--workdir={tmp_path}")
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().splitlines()[-1].startswith(
      "classifier step 40 (colourdigits 8x8x3, 70 classes, test, 2079 images): accuracy ")
  clf = load_classifier(str(tmp_path), data.DataSpec("colour_digits"))
  assert clf.nsfg_rule(data.DataSpec("colour_digits")).classes == cd.NSFG_COMBOS
  with pytest.raises(ClassifierMismatch, match="trained on colourdigits but the data are digits"):
    factors.load_detector(str(tmp_path))
