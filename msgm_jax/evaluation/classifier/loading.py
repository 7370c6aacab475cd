"""A trained classifier as pure functions of its parameters: the public handle.

  clf = load_classifier(workdir_or_ckpt, spec)      # spec: the generative run's DataSpec
  logits = jax.jit(clf.logits)(clf.params, images)   # images: float [B, H, W, C] in [0, 1]
  feats = jax.jit(clf.features)(clf.params, images)  # [B, F], the penultimate layer
  nsfg = clf.nsfg_decider(spec)(logits)              # bool [B]
"""

import dataclasses
import functools
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from msgm_jax import data
from msgm_jax.training import checkpoint
from msgm_jax.evaluation.classifier import inputs, nsfg, step
from msgm_jax.evaluation.classifier.info import ClassifierInfo

TRAIN_HINT = ("train one with: python -m msgm_jax.main --config=configs/classifier/{}.py "
              "--workdir=<dir>")


class ClassifierMismatch(ValueError):
  """The classifier was trained for other data than it is asked to judge."""


@dataclasses.dataclass(frozen=True, eq=False)
class Classifier:
  """A classifier network with its parameters and what it was trained for (ClassifierInfo).

  `logits` and `features` are pure functions of (params, images), jittable and usable inside
  a pmapped function; `params` is the trained value to pass them.
  """

  info: ClassifierInfo
  model: nn.Module
  params: Any
  step: int

  def _apply(self, params, images: jax.Array):
    if tuple(images.shape[1:]) != tuple(self.info.image_shape):
      h, w, c = self.info.image_shape
      raise ValueError(f"this classifier takes images [B, {h}, {w}, {c}]; got "
                       f"{tuple(images.shape)} (resize the images or use a classifier trained "
                       "at that size)")
    if not jnp.issubdtype(images.dtype, jnp.floating):
      raise ValueError(f"classifier inputs are floats in [0, 1]; got {images.dtype} (divide "
                       "uint8 images by 255)")
    return self.model.apply({"params": params}, images, train=False)

  def logits(self, params, images: jax.Array) -> jax.Array:
    """images: float [B, H, W, C] in [0, 1] -> logits float32 [B, num_classes]."""
    return self._apply(params, images)[0]

  def features(self, params, images: jax.Array) -> jax.Array:
    """images: float [B, H, W, C] in [0, 1] -> penultimate features float32 [B, F]."""
    return self._apply(params, images)[1]

  def check_data(self, spec: data.DataSpec) -> None:
    """Raises ClassifierMismatch unless spec's dataset, image shape and (CelebA) attribute
    are the classifier's."""
    info = self.info
    if spec.is_points:
      raise ClassifierMismatch(f"the classifier was trained on {info.dataset} but the data are "
                               f"{spec.dataset} points; toy2d is judged by its mixture "
                               "(msgm_jax/experiments/toy_metrics.py), not by a classifier")
    if spec.dataset != info.dataset:
      raise ClassifierMismatch(f"the classifier was trained on {info.dataset} but the data are "
                               f"{spec.dataset}; " + TRAIN_HINT.format(spec.dataset))
    shape = tuple(data.data_shape(spec))
    if shape != tuple(info.image_shape):
      raise ClassifierMismatch(
          f"the classifier was trained on {info.dataset} images of {info.image_shape} but the "
          f"data are {shape}; " + TRAIN_HINT.format(info.dataset) +
          f" --config.data.image_size={shape[0]}")
    attribute, _ = inputs.target(spec)
    if attribute != info.attribute:
      raise ClassifierMismatch(
          f"the classifier predicts {info.attribute!r} but data.nsfg_attribute is "
          f"{attribute!r}; " + TRAIN_HINT.format(spec.dataset) +
          f" --config.data.nsfg_attribute={attribute}")

  def nsfg_rule(self, spec: data.DataSpec) -> nsfg.NsfgRule:
    """The NSFG rule of spec's criterion for this classifier (ClassifierMismatch if none)."""
    self.check_data(spec)
    classes, attribute = spec.nsfg_criterion()
    if attribute:
      return nsfg.NsfgRule(attribute=attribute)
    bad = [c for c in classes if not 0 <= c < self.info.num_classes]
    if bad:
      raise ClassifierMismatch(f"NSFG classes {bad} are not among the classifier's "
                               f"{self.info.num_classes} classes; check data.nsfg_classes")
    return nsfg.NsfgRule(classes=classes)

  def nsfg_decider(self, spec: data.DataSpec) -> Callable[[jax.Array], jax.Array]:
    """logits [B, K] -> bool [B] "is NSFG" under spec's criterion (pure, jittable)."""
    return functools.partial(nsfg.is_nsfg, rule=self.nsfg_rule(spec))


def load_classifier(path: str, spec: Optional[data.DataSpec] = None) -> Classifier:
  """The classifier of a workdir (latest checkpoint), its checkpoints/ or one <step>/ dir.

  With spec (e.g. a generative run's DataSpec), refuses a classifier trained on another
  dataset, image size or NSFG attribute (ClassifierMismatch naming the fix).
  """
  ckpt, chosen = checkpoint.Checkpointer.for_reading(path)
  try:
    chosen = ckpt.latest_step() if chosen is None else chosen
    if chosen is None:
      raise FileNotFoundError(f"no complete checkpoint in {path}; "
                              + TRAIN_HINT.format("<dataset>"))
    meta = ckpt.read_meta(chosen)
    if "classifier" not in meta:
      raise ClassifierMismatch(f"{path} holds a score model, not a classifier; pass the "
                               "--workdir of a configs/classifier/* run")
    info = ClassifierInfo.from_json(meta["classifier"])
    model = info.model()
    template = jax.eval_shape(lambda: step.init_state(model, info.settings, info.image_shape,
                                                      jax.random.key(0)))
    state, _ = ckpt.restore(chosen, template)
  finally:
    ckpt.close()
  clf = Classifier(info, model, state.params, chosen)
  if spec is not None:
    clf.nsfg_rule(spec)
  return clf
