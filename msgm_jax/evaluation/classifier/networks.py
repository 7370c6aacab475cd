"""Image classifiers for the NSFG rate: a small CNN (digits, MNIST) and a WideResNet.

Call convention (both): model.apply({'params': p}, x, train=bool, rngs={'dropout': key}) with
x: float [B, H, W, C] in [0, 1] (the space generated samples land in after the data's inverse
scaler) -> (logits float32 [B, num_classes], features float32 [B, F]). `features` is the
penultimate layer (the input of the last Dense), used for a Frechet distance in classifier
feature space. Inputs are mapped to [-1, 1] inside the network.

Normalisation is GroupNorm, not BatchNorm: a classifier then has no batch statistics, so its
output for an image does not depend on the rest of the batch or on the number of devices it
was trained on, and `logits(params, images)` needs the parameters only.
"""

from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from msgm_jax.models.conv import Conv
from msgm_jax.registry import Registry

CLASSIFIERS: Registry = Registry("classifier model")


def _group_norm(channels: int) -> nn.GroupNorm:
  # As NCSN++: at most 32 groups and at least 4 channels per group (small test widths work).
  return nn.GroupNorm(num_groups=max(1, min(32, channels // 4)))


class ClassifierNet(nn.Module):
  """Fields every classifier has (see msgm_jax/evaluation/classifier/settings.py for their meaning);
  subclasses define `check` (refuses a bad depth / image size) and `__call__`."""

  num_classes: int
  width: int
  depth: int
  dropout: float = 0.0
  conv_impl: str = "auto"


@CLASSIFIERS.register("small_cnn")
class SmallCNN(ClassifierNet):
  """`depth` stages of two 3x3 conv + ReLU layers (width * 2^i channels) each followed by a 2x2
  average pool, then flatten, Dense(4 width) + ReLU (the features), dropout, Dense(classes).

  8x8 digits at depth 2: 8 -> 4 -> 2, features 4 * width. MNIST: 28 -> 14 -> 7.
  """

  @staticmethod
  def check(depth: int, width: int, image_size: int) -> None:
    if depth < 1 or image_size % 2**depth:
      raise ValueError(f"small_cnn: classifier.depth={depth} halves the image {depth} times; "
                       f"{image_size} must be divisible by 2^depth (use depth 1..)")

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> Tuple[jax.Array, jax.Array]:
    h = x * 2.0 - 1.0
    for stage in range(self.depth):
      for _ in range(2):
        h = nn.relu(Conv(self.width * 2**stage, conv_impl=self.conv_impl)(h))
      h = nn.avg_pool(h, (2, 2), strides=(2, 2))
    features = nn.relu(nn.Dense(4 * self.width)(h.reshape(h.shape[0], -1)))
    h = nn.Dropout(self.dropout, deterministic=not train)(features)
    return nn.Dense(self.num_classes)(h).astype(jnp.float32), features


class WideBlock(nn.Module):
  """The pre-activation block of a WideResNet: GN-ReLU-conv3x3(stride)-GN-ReLU-dropout-conv3x3,
  plus the input (through a 1x1 conv of the pre-activated input when the shape changes)."""

  channels: int
  stride: int
  dropout: float
  conv_impl: str

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = lambda k, s: Conv(self.channels, kernel_size=k, stride=s, use_bias=False,  # noqa
                             conv_impl=self.conv_impl)
    pre = nn.relu(_group_norm(x.shape[-1])(x))
    shortcut = x
    if self.stride != 1 or x.shape[-1] != self.channels:
      shortcut = conv(1, self.stride)(pre)
    h = conv(3, self.stride)(pre)
    h = nn.relu(_group_norm(self.channels)(h))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return conv(3, 1)(h) + shortcut


@CLASSIFIERS.register("wide_resnet")
class WideResNet(ClassifierNet):
  """WRN-depth-width of Zagoruyko & Komodakis (2016), GroupNorm for BatchNorm (module doc).

  A 3x3 conv to 16 channels, three groups of (depth - 4) / 6 WideBlocks with 16, 32, 64 times
  `width` channels and strides 1, 2, 2, then GN-ReLU and a global average pool (the features,
  64 * width values) and Dense(classes). WRN-28-10: 36.5M parameters on 32x32x3.
  """

  @staticmethod
  def check(depth: int, width: int, image_size: int) -> None:
    if depth < 10 or (depth - 4) % 6:
      raise ValueError(f"wide_resnet: classifier.depth={depth} is not 6n + 4 with n >= 1 "
                       "(use 10, 16, 22, 28 or 40)")
    if image_size % 4:
      raise ValueError(f"wide_resnet halves the image twice; {image_size} is not divisible by 4")

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> Tuple[jax.Array, jax.Array]:
    h = Conv(16, use_bias=False, conv_impl=self.conv_impl)(x * 2.0 - 1.0)
    for group, stride in enumerate((1, 2, 2)):
      for block in range((self.depth - 4) // 6):
        h = WideBlock(16 * self.width * 2**group, stride if block == 0 else 1, self.dropout,
                      self.conv_impl)(h, train)
    h = nn.relu(_group_norm(h.shape[-1])(h))
    features = jnp.mean(h, axis=(1, 2))
    return nn.Dense(self.num_classes)(features).astype(jnp.float32), features


def build(name: str, *, num_classes: int, width: int, depth: int, dropout: float = 0.0,
          image_size: int, conv_impl: str = "auto") -> nn.Module:
  """The registered classifier `name` with these fields; ValueError naming a bad field."""
  cls = CLASSIFIERS.get(name)
  if width < 1 or num_classes < 2 or not 0.0 <= dropout < 1.0:
    raise ValueError(f"{name}: need classifier.width >= 1, 0 <= classifier.dropout < 1 and at "
                     f"least 2 classes; got width={width}, dropout={dropout}, "
                     f"num_classes={num_classes}")
  cls.check(depth, width, image_size)
  return cls(num_classes=num_classes, width=width, depth=depth, dropout=dropout,
             conv_impl=conv_impl)
