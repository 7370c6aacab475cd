"""Feature extractors for Frechet distances: a registry of builders, and a data-parallel runner.

An extractor is built from typed `ExtractorOptions` by the builder registered under its name
and is a pure, jittable fn(params, images [N, H, W, C] float32 in [0, 1]) -> [N, D] float32,
plus its params and a digest that identifies them (cache file names carry it). To add one
(e.g. a dataset classifier's penultimate layer, as "classifier"):

  @EXTRACTORS.register("classifier")
  def build_classifier(options: ExtractorOptions) -> Extractor:
    params = ...  # load from options.weights (config.eval.classifier_weights)
    return Extractor("classifier", fn, params, dim=..., digest=tree_digest(params))

Built in: "inception" (the FID Inception's pool_3, 2048-d, weights from
eval.inception_weights) and "pixels" (the flattened image, H * W * C values, no weights: a
reference point for tiny images such as the 8x8 digits, and for tests).
"""

import dataclasses
import hashlib
from typing import Any, Callable, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from msgm_jax.runtime import parallel
from msgm_jax.evaluation.metrics import inception, weights
from msgm_jax.registry import Registry

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class ExtractorOptions:
  """What a builder gets. weights: the extractor's weights file or directory ('' if it needs
  none), config.eval.<name>_weights; image_shape: (H, W, C) of the images it will see."""

  weights: str = ""
  image_shape: Tuple[int, ...] = ()

  @classmethod
  def from_config(cls, eval_cfg, name: str, image_shape: Sequence[int]) -> "ExtractorOptions":
    return cls(weights=str(eval_cfg.get(f"{name}_weights", "") or ""),
               image_shape=tuple(int(v) for v in image_shape))


@dataclasses.dataclass(frozen=True)
class Extractor:
  """fn(params, images [N, H, W, C] in [0, 1]) -> features [N, dim]; pure and jittable.

  digest: hex string identifying params (a weights file's SHA-256, or tree_digest(params)).
  """

  name: str
  fn: Callable[[Any, Array], Array]
  params: Any
  dim: int
  digest: str


EXTRACTORS: Registry = Registry("feature extractor")  # name -> build(ExtractorOptions)


def build_extractor(name: str, options: ExtractorOptions) -> Extractor:
  """The extractor registered as `name` (ValueError listing the valid names otherwise)."""
  return EXTRACTORS.get(name)(options)


def tree_digest(tree: Any) -> str:
  """SHA-256 over a pytree's structure, shapes, dtypes and values (for builders without a file)."""
  digest = hashlib.sha256(str(jax.tree.structure(tree)).encode())
  for leaf in jax.tree.leaves(tree):
    leaf = np.asarray(leaf)
    digest.update(f"{leaf.dtype}{leaf.shape}".encode())
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()


@EXTRACTORS.register("inception")
def build_inception(options: ExtractorOptions) -> Extractor:
  """pool_3 of the FID Inception (msgm_jax.evaluation.metrics.inception); weights: the .pth or .npz."""
  variables, digest = weights.load_inception(options.weights)
  return Extractor("inception", inception.pool3_features, variables, inception.POOL3_DIM,
                   digest)


def _pixels(params, images: Array) -> Array:
  del params
  return jnp.reshape(jnp.asarray(images, jnp.float32), (images.shape[0], -1))


@EXTRACTORS.register("pixels")
def build_pixels(options: ExtractorOptions) -> Extractor:
  """The image itself, flattened: [N, H * W * C]. Its covariance is (HWC)^2 float64 values,
  so it suits small images only (digits: 64-d)."""
  if not options.image_shape:
    raise ValueError("the 'pixels' extractor needs the image shape (ExtractorOptions."
                     "image_shape)")
  return Extractor("pixels", _pixels, {}, int(np.prod(options.image_shape)), "none")


class FeatureRunner:
  """Runs an extractor data-parallel over the devices (of all processes) on host batches of
  one fixed size.

  batch_size: the global batch (a multiple of the devices); smaller batches are padded, so
  there is one compilation. Call with images [B <= batch_size, H, W, C] in [0, 1], the same
  on every process; each computes its rows and gets all features.
  """

  def __init__(self, extractor: Extractor, devices: Sequence, batch_size: int):
    n_dev = parallel.device_count(devices)
    if batch_size <= 0 or batch_size % n_dev:
      raise ValueError(f"the feature batch size {batch_size} must be a positive multiple of "
                       f"the {n_dev} devices")
    self.extractor, self.devices, self.batch_size = extractor, devices, batch_size
    self.p_params = parallel.replicate(extractor.params, devices)
    fn = extractor.fn
    self.p_fn = parallel.data_parallel_map(lambda params, x, key: fn(params, x), devices,
                                           distinct_keys=False)
    self.key = jax.random.key(0)  # unused by extractors; data_parallel_map passes one

  def __call__(self, images) -> np.ndarray:
    """images [B, H, W, C] float in [0, 1] -> features float32 [B, D] (host numpy)."""
    images = np.asarray(images, np.float32)
    b = len(images)
    if not 0 < b <= self.batch_size:
      raise ValueError(f"a feature batch holds 1..{self.batch_size} images, got {b}")
    if b < self.batch_size:
      pad = np.zeros((self.batch_size - b,) + images.shape[1:], np.float32)
      images = np.concatenate([images, pad])
    out = parallel.map_global_batch(self.p_fn, self.p_params, images, self.key, self.devices)
    return out.reshape(self.batch_size, -1)[:b]
