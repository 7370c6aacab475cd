"""Binary Bangs classifier for CelebA 64x64 (centre crop 140; class 1 = Bangs, the NSFG
attribute): WRN-16-4, 8 epochs of the 162,770 training images. Eval reports Bangs recall and
specificity on the test split."""

from msgm_jax.config import presets
from msgm_jax.evaluation.classifier import presets as classifier_presets


def get_config():
  config = classifier_presets.wide_resnet(classifier_presets.base(presets.celeba64), depth=16,
                                          width=4)
  return classifier_presets.epochs(config, 8, 162770)
