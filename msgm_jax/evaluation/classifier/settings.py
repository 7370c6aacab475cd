"""`config.classifier` -> ClassifierSettings, and the classifier's optimiser and schedule.

The fields and their valid values (configs/classifier/*.py set them; presets.py has defaults):
  model: 'small_cnn' | 'wide_resnet' (networks.CLASSIFIERS).
  width: small_cnn: channels of the first stage (doubled per stage; features 4 * width);
         wide_resnet: the widening factor k (WRN-depth-k). Integer >= 1.
  depth: small_cnn: stages (each halves the image; 2^depth must divide the image size);
         wide_resnet: 6n + 4 (10, 16, 22, 28, 40).
  dropout: in [0, 1); before the last Dense (small_cnn), inside every block (wide_resnet).
  optimizer: 'sgd' (Nesterov momentum, L2 weight decay added to the gradient, as WRN) |
             'adam' (decoupled weight decay, as AdamW).
  lr (> 0), momentum (sgd, in [0, 1)), weight_decay (>= 0), warmup (steps >= 0): linear
         warmup to lr, then cosine decay to 0 at n_iters.
  batch_size: global training batch (a multiple of the devices used); n_iters: train steps.
  crop_padding: random translation: pad by this many pixels (edge values) and crop back, per
         example (0: off). Flips come from data.random_flip.
  train_split / eval_split: project split names of the dataset (STL-10: 'train_only' keeps
         'test' held out, see data/datasets.py).
  eval_batch_size: batch of the test pass (rounded up to the devices).
  log_freq / snapshot_freq: steps between logs / checkpoints (the last step always saves).
  num_devices: local devices to use (0: all).
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax

from msgm_jax import data
from msgm_jax.config import validate
from msgm_jax.evaluation.classifier import networks

OPTIMIZERS = ("sgd", "adam")

# Start-up rules of every field (msgm_jax/config/validate.py; cross-field checks: its "classifier").
validate.SECTIONS.add("classifier", {
    "model": validate.one_of(networks.CLASSIFIERS.names), "width": validate.POSITIVE,
    "depth": validate.POSITIVE, "dropout": validate.UNIT, "optimizer": validate.one_of(OPTIMIZERS),
    "lr": validate.POSITIVE_NUMBER, "momentum": validate.UNIT,
    "weight_decay": validate.number(lo=0.0), "warmup": validate.integer(lo=0, zero="no warmup"),
    "batch_size": validate.POSITIVE, "n_iters": validate.POSITIVE,
    "crop_padding": validate.integer(lo=0, zero="off"), "train_split": validate.text,
    "eval_split": validate.text, "eval_batch_size": validate.POSITIVE,
    "log_freq": validate.POSITIVE, "snapshot_freq": validate.POSITIVE,
    "num_devices": validate.integer(lo=0, zero="all local devices")})


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
  """How to build and train a classifier (see the module docstring for each field)."""

  model: str = "small_cnn"
  width: int = 32
  depth: int = 2
  dropout: float = 0.0
  optimizer: str = "adam"
  lr: float = 1e-3
  momentum: float = 0.9
  weight_decay: float = 0.0
  warmup: int = 0
  batch_size: int = 128
  n_iters: int = 2000
  crop_padding: int = 0
  train_split: str = "train"
  eval_split: str = "test"
  eval_batch_size: int = 256
  log_freq: int = 100
  snapshot_freq: int = 1000
  num_devices: int = 0

  def __post_init__(self):
    networks.CLASSIFIERS.get(self.model)  # ValueError listing the valid names
    if self.optimizer not in OPTIMIZERS:
      raise ValueError(f"classifier.optimizer={self.optimizer!r} is not one of "
                       f"{', '.join(OPTIMIZERS)}")
    positive = ("batch_size", "n_iters", "eval_batch_size", "log_freq", "snapshot_freq")
    for name in positive:
      if getattr(self, name) < 1:
        raise ValueError(f"classifier.{name} must be >= 1; got {getattr(self, name)}")
    if self.lr <= 0 or self.weight_decay < 0 or self.warmup < 0 or self.crop_padding < 0:
      raise ValueError("need classifier.lr > 0 and weight_decay, warmup, crop_padding >= 0; "
                       f"got {self.lr}, {self.weight_decay}, {self.warmup}, {self.crop_padding}")
    if not 0.0 <= self.momentum < 1.0:
      raise ValueError(f"classifier.momentum must be in [0, 1); got {self.momentum}")

  @classmethod
  def from_config(cls, classifier_cfg) -> "ClassifierSettings":
    """From a `config.classifier` section; fields it lacks keep their defaults."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(classifier_cfg.keys()) - names)
    if unknown:
      raise ValueError(f"config.classifier.{unknown[0]} is not a classifier setting; valid: "
                       f"{', '.join(sorted(names))}")
    return cls(**{k: classifier_cfg[k] for k in classifier_cfg.keys()})

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def learning_rate(s: ClassifierSettings, step: jax.Array) -> jax.Array:
  """lr * min((step + 1) / warmup, 1) * (1 + cos(pi step / n_iters)) / 2: a pure function of
  the train step (so a resumed run continues the same schedule)."""
  step = jnp.asarray(step, jnp.float32)
  warm = jnp.minimum((step + 1.0) / s.warmup, 1.0) if s.warmup else 1.0
  cosine = 0.5 * (1.0 + jnp.cos(math.pi * jnp.minimum(step / s.n_iters, 1.0)))
  return s.lr * warm * cosine


def make_transform(s: ClassifierSettings) -> optax.GradientTransformation:
  """The update direction before the learning rate (applied by the caller, see optim.py)."""
  if s.optimizer == "sgd":
    return optax.chain(optax.add_decayed_weights(s.weight_decay),
                       optax.trace(decay=s.momentum, nesterov=True))
  return optax.chain(optax.scale_by_adam(), optax.add_decayed_weights(s.weight_decay))


@validate.CHECKS.register("classifier")
def _startup_check(config) -> None:
  """Start-up (config/validate.py): the classifier's settings and its data."""
  settings = ClassifierSettings.from_config(config.classifier)
  spec = data.DataSpec.from_config(config.data)
  for split in (settings.train_split, settings.eval_split):
    spec.definition.tfds_split(split)
  n_dev = settings.num_devices or jax.local_device_count()
  validate.multiple_of("classifier.batch_size", settings.batch_size, n_dev * jax.process_count(),
                       "it is split over the devices; or choose them with "
                       "--config.classifier.num_devices")
