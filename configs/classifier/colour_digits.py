"""Classifier of the colour digits' 70 (digit, colour) combinations, 8x8x3 (embedded).

The project's generic classifier path on this dataset: its argmax-in-data.nsfg_classes NSFG
rule and penultimate features serve the evaluation's nsfg_rate and fd_classifier like for any
class dataset. The premise measurement reads the factors separately instead
(msgm_jax/classifier/factors.py: colour by rule, shape by configs/classifier/digits.py).
  python -m msgm_jax.main --config=configs/classifier/colour_digits.py --workdir=runs/classifier_cd
"""

from msgm_jax import presets
from msgm_jax.classifier import presets as classifier_presets


def get_config():
  config = classifier_presets.small_cnn(classifier_presets.base(presets.colour_digits), width=32)
  config.classifier.batch_size = 64
  config.classifier.crop_padding = 1  # as the digits classifier
  config.classifier.n_iters = 3000
  config.classifier.log_freq = 100
  config.classifier.snapshot_freq = 1000
  return config
