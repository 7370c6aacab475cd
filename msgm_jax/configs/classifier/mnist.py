"""Classifier for MNIST 28x28 (10 classes): the small CNN, 10 epochs of the 60k images."""

from msgm_jax.config import presets
from msgm_jax.evaluation.classifier import presets as classifier_presets


def get_config():
  config = classifier_presets.small_cnn(classifier_presets.base(presets.mnist), width=32)
  config.classifier.batch_size = 128
  config.classifier.crop_padding = 2
  config.classifier.snapshot_freq = 1000
  return classifier_presets.epochs(config, 10, 60000)
