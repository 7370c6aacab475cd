"""A trained dataset classifier as feature extractors: "classifier" (its penultimate layer,
for the Frechet distance fd_classifier) and the NSFG decision (for the NSFG rate).

The registered builder reads the classifier from eval.classifier_weights (a classifier run's
workdir, its checkpoints/ or one <step>/ directory; msgm_jax/evaluation/classifier/loading.py). Eval mode
loads the classifier once, checked against the generative run's data (load_classifier(path,
spec)), and builds both extractors from it.
"""

import functools

import jax
import jax.numpy as jnp

from msgm_jax import data
from msgm_jax.evaluation.classifier import Classifier, factors, load_classifier
from msgm_jax.evaluation.metrics.extractors import (EXTRACTORS, Extractor, ExtractorOptions,
                                                    tree_digest)

HINT = ("set eval.classifier_weights to a classifier's workdir (train one with python -m "
        "msgm_jax.main --config=configs/classifier/<dataset>.py --workdir=<dir>)")


def _dim(fn, clf: Classifier) -> int:
  x = jax.ShapeDtypeStruct((1,) + tuple(clf.info.image_shape), jnp.float32)
  return int(jax.eval_shape(fn, clf.params, x).shape[-1])


def feature_extractor(clf: Classifier) -> Extractor:
  """Penultimate features: images [N, H, W, C] in [0, 1] -> [N, F]."""
  return Extractor("classifier", clf.features, clf.params, _dim(clf.features, clf),
                   tree_digest(clf.params))


def nsfg_extractor(clf: Classifier, spec: data.DataSpec) -> Extractor:
  """The NSFG decision under spec's criterion as one feature: [N, 1], 1.0 where NSFG.
  ClassifierMismatch (one line) for a classifier of other data."""
  decide = clf.nsfg_decider(spec)

  def fn(params, images):
    return decide(clf.logits(params, images)).astype(jnp.float32)[:, None]

  return Extractor("classifier_nsfg", fn, clf.params, 1, tree_digest(clf.params))


def factored_nsfg_extractor(digits_clf: Classifier, spec: data.DataSpec) -> Extractor:
  """The colour digits' factored NSFG decision (msgm_jax/evaluation/classifier/factors.py: colour by rule,
  shape by digits_clf, a classifier of the grey digits) under spec's NSFG combinations as one
  feature: RGB images [N, H, W, 3] -> [N, 1], 1.0 where NSFG. ValueError for other data."""
  if spec.dataset != "colourdigits":
    raise ValueError(f"eval.nsfg_detector='factored' reads the colour digits' factors; the "
                     f"data are {spec.dataset!r}: set eval.nsfg_detector=classifier")
  combos = spec.nsfg_criterion()[0]

  def fn(params, images):
    out = factors.read_factors(images, functools.partial(digits_clf.logits, params), combos)
    return out["is_nsfg"].astype(jnp.float32)[:, None]

  return Extractor("factored_nsfg", fn, digits_clf.params, 1, tree_digest(digits_clf.params))


@EXTRACTORS.register("classifier")
def build_classifier(options: ExtractorOptions) -> Extractor:
  """The penultimate layer of the classifier at options.weights (eval.classifier_weights)."""
  if not options.weights:
    raise ValueError(f"the 'classifier' extractor needs its weights: {HINT}")
  clf = load_classifier(options.weights)
  if options.image_shape and tuple(options.image_shape) != tuple(clf.info.image_shape):
    raise ValueError(f"the classifier at {options.weights} takes images of "
                     f"{tuple(clf.info.image_shape)}, not {tuple(options.image_shape)}; {HINT}")
  return feature_extractor(clf)
