"""Classifier for STL-10 at 64x64 (10 classes): WRN-16-8, trained on the 5000 labelled
'train' images only so the 8000 'test' images stay held out; crops padded by 8, 300 epochs."""

from msgm_jax.config import presets
from msgm_jax.evaluation.classifier import presets as classifier_presets


def get_config():
  config = classifier_presets.wide_resnet(classifier_presets.base(presets.stl10_64), depth=16,
                                          width=8, crop_padding=8)
  config.classifier.train_split = "train_only"
  return classifier_presets.epochs(config, 300, 5000)
