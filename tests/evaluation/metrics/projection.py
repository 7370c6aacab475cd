"""A tiny feature extractor registered the way another module would register one."""

import jax.numpy as jnp
import numpy as np

from msgm_jax.evaluation import metrics

NAME = "tests.projection"
DIM = 5


def _projection_fn(params, images):
  return jnp.reshape(images, (images.shape[0], -1)) @ params["w"]


def build_projection(options: metrics.ExtractorOptions) -> metrics.Extractor:
  """A fixed random projection of the flattened image to DIM features."""
  w = np.random.default_rng(0).normal(size=(int(np.prod(options.image_shape)), DIM))
  params = {"w": jnp.asarray(w, jnp.float32)}
  return metrics.Extractor(NAME, _projection_fn, params, DIM, metrics.tree_digest(params))


metrics.EXTRACTORS.add(NAME, build_projection)
