"""Classifier for the embedded 8x8 digits (10 classes; the NSFG rate of configs/*digits*).

Trains in seconds on a laptop CPU; its test numbers are in the README.
  python -m msgm_jax.main --config=configs/classifier/digits.py --workdir=runs/classifier_digits
"""

from msgm_jax.evaluation.classifier import presets as classifier_presets


def get_config():
  return classifier_presets.digits()
