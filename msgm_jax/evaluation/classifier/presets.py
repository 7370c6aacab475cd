"""Config presets for configs/classifier/*.py: a data section and a `classifier` section.

The data section is the generative configs' own (msgm_jax/config/presets.py: the same dataset,
crop, resize, flips and NSFG criterion), with the data left in [0, 1], so a classifier reads
exactly the images its generative runs model. The fields of `config.classifier` and their
valid values are listed in msgm_jax/evaluation/classifier/settings.py.
"""

from typing import Callable

import ml_collections

from msgm_jax.config import presets
from msgm_jax.evaluation.classifier.settings import ClassifierSettings

Config = ml_collections.ConfigDict


def base(data_preset: Callable[[Config], Config]) -> Config:
  """seed, data (from data_preset(presets.base())) and the ClassifierSettings defaults."""
  config = Config()
  config.seed = 0
  config.data = data_preset(presets.base()).data
  config.data.centered = False  # classifier inputs are [0, 1] images
  config.data.uniform_dequantization = False
  config.classifier = Config(ClassifierSettings().to_json())
  return config


def small_cnn(config: Config, width: int = 32, depth: int = 2) -> Config:
  """The small CNN with Adam (lr 1e-3, cosine decay) for 8x8 digits and MNIST."""
  config.classifier.update(dict(model="small_cnn", width=width, depth=depth, optimizer="adam",
                                lr=1e-3, weight_decay=0.0, warmup=0))
  return config


def wide_resnet(config: Config, depth: int = 28, width: int = 10, dropout: float = 0.3,
                crop_padding: int = 4) -> Config:
  """A WideResNet with the WRN paper's CIFAR recipe: SGD with Nesterov momentum 0.9, lr 0.1,
  weight decay 5e-4, batch 128, dropout 0.3, random crops (pad 4) and flips; cosine decay
  (the paper steps the rate down by 5x at 30%, 60% and 80% of training)."""
  config.classifier.update(dict(
      model="wide_resnet", width=width, depth=depth, dropout=dropout, optimizer="sgd", lr=0.1,
      momentum=0.9, weight_decay=5e-4, warmup=500, batch_size=128, crop_padding=crop_padding,
      log_freq=100, snapshot_freq=2000))
  return config


def digits() -> Config:
  """The digits classifier (configs/classifier/digits.py; the digits report trains it too):
  width 32, batch 64, 1500 steps, one-pixel random shifts (99.0-99.7% test accuracy over
  seeds 0-4; 97.3-99.0% without the shifts)."""
  config = small_cnn(base(presets.digits), width=32)
  config.classifier.update(dict(batch_size=64, crop_padding=1, n_iters=1500, log_freq=100,
                                snapshot_freq=500))
  return config


def colour_digits() -> Config:
  """The colour digits' 70-combination classifier (configs/classifier/colour_digits.py; the
  compositional report trains it too, for fd_classifier's features): the digits recipe,
  3000 steps."""
  config = small_cnn(base(presets.colour_digits), width=32)
  config.classifier.update(dict(batch_size=64, crop_padding=1, n_iters=3000, log_freq=100,
                                snapshot_freq=1000))
  return config


# Name -> the preset of a classifier an experiment trains itself (experiment.classifier).
BY_NAME = {"digits": digits, "colour_digits": colour_digits}


def epochs(config: Config, n: int, train_examples: int) -> Config:
  """n_iters = n passes over train_examples images at the configured batch size."""
  config.classifier.n_iters = -(-n * train_examples // config.classifier.batch_size)
  return config
