"""Classifier for CIFAR-10 (10 classes): WRN-28-10 with the WRN paper's recipe, 200 epochs
(78,125 steps of 128; a GPU/TPU job). For a quicker one: --config.classifier.width=4 (WRN-28-4)."""

from msgm_jax.config import presets
from msgm_jax.evaluation.classifier import presets as classifier_presets


def get_config():
  config = classifier_presets.wide_resnet(classifier_presets.base(lambda c: c))
  return classifier_presets.epochs(config, 200, 50000)
