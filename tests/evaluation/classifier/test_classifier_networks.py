"""Classifier networks and the random-translation augmentation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax.evaluation.classifier import networks, step
from msgm_jax.evaluation.classifier.settings import ClassifierSettings


def _count(model, shape):
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1,) + shape)))
  return sum(x.size for x in jax.tree.leaves(variables))


def test_registry_lists_both_models():
  assert networks.CLASSIFIERS.names() == ["small_cnn", "wide_resnet"]
  with pytest.raises(ValueError, match="valid names: small_cnn, wide_resnet"):
    networks.CLASSIFIERS.get("resnet")


@pytest.mark.parametrize("w", [8, 32])
def test_small_cnn_parameter_count_matches_the_layers(w):
  # 8x8x1, two stages: conv 1->w, w->w | pool | conv w->2w, 2w->2w | pool to 2x2 | Dense(4w), 10.
  convs = (9 * 1 * w + w) + (9 * w * w + w) + (9 * w * 2 * w + 2 * w) + (9 * 4 * w * w + 2 * w)
  dense = (2 * 2 * 2 * w) * 4 * w + 4 * w + 4 * w * 10 + 10
  model = networks.build("small_cnn", num_classes=10, width=w, depth=2, image_size=8)
  assert _count(model, (8, 8, 1)) == convs + dense


def test_wide_resnet_shapes_and_batch_independence():
  model = networks.build("wide_resnet", num_classes=3, width=1, depth=10, image_size=16)
  x = jax.random.uniform(jax.random.key(1), (4, 16, 16, 3))
  variables = model.init(jax.random.key(0), x)
  apply = jax.jit(lambda v, x: model.apply(v, x))
  logits, features = apply(variables, x)
  assert logits.shape == (4, 3) and features.shape == (4, 64)
  # GroupNorm: an image's logits do not depend on the rest of the batch.
  swapped, _ = apply(variables, x[::-1])
  np.testing.assert_allclose(swapped[::-1], logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, depth, image_size, match", [
    ("wide_resnet", 12, 32, "not 6n \\+ 4"), ("wide_resnet", 10, 30, "not divisible by 4"),
    ("small_cnn", 3, 28, "divisible by 2\\^depth")])
def test_bad_architectures_are_refused(name, depth, image_size, match):
  with pytest.raises(ValueError, match=match):
    networks.build(name, num_classes=10, width=2, depth=depth, image_size=image_size)


def test_settings_refuse_unknown_fields_and_values():
  with pytest.raises(ValueError, match="not one of sgd, adam"):
    ClassifierSettings(optimizer="lamb")
  with pytest.raises(ValueError, match="classifier.batch_size must be >= 1"):
    ClassifierSettings(batch_size=0)
  with pytest.raises(ValueError, match="valid names: small_cnn, wide_resnet"):
    ClassifierSettings(model="vit")


def test_random_translate_crops_windows_of_the_edge_padded_image():
  pad, n = 2, 400
  image = np.arange(5 * 6, dtype=np.float32).reshape(5, 6, 1)
  images = jnp.broadcast_to(image, (n, 5, 6, 1))
  keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.key(0), jnp.arange(n))
  out = np.asarray(step.random_translate(keys, images, pad))
  padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
  offsets = set()
  for o in out:
    hits = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
            if np.array_equal(padded[dy:dy + 5, dx:dx + 6], o)]
    assert hits, "an output is not a window of the padded image"
    offsets.add(hits[0])
  assert len(offsets) == (2 * pad + 1)**2  # every offset occurs (400 draws of 25 values)
