"""The FID Inception-v3: the 2015-12-05 TensorFlow graph as pytorch-fid ports it, in Flax.

FID is only comparable across papers when computed with this exact network, so the layout
follows pytorch-fid's `fid_inception_v3` (torchvision's inception_v3 with 1008 classes, no
auxiliary head, and its FIDInceptionA / C / E_1 / E_2 blocks) name for name, which lets
`msgm_jax.evaluation.metrics.weights` load pytorch-fid's weights file directly. The differences from
torchvision's Inception that matter for FID:
  - the 3x3 average pools of the A, C and E_1 blocks exclude the zero padding from the mean
    (TensorFlow's behaviour; torch's default counts it);
  - the pool branch of the last block (Mixed_7c, "E_2") is a 3x3 *max* pool;
  - BatchNorm eps is 1e-3 and convolutions have no bias.

Input convention (`pool3_features`): float images [N, H, W, C] in [0, 1], C = 3 (RGB) or 1
(grayscale, replicated to 3 channels). They are resized bilinearly to 299 x 299 with
half-pixel centres (torch's `align_corners=False`; no antialiasing, so downsampling also
matches torch) and scaled to [-1, 1] by 2x - 1, as pytorch-fid does. The output is the 2048-d
pool_3 feature (the global average pool after Mixed_7c), float32 [N, 2048].
"""

from typing import Any, Tuple, Union

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
INPUT_SIZE = 299
POOL3_DIM = 2048
NUM_CLASSES = 1008  # the 2015 graph's classifier: 1000 ImageNet classes plus 8 unused
BN_EPS = 1e-3
# FID must not depend on the accelerator's default float32 matmul mode (TF32 on recent GPUs).
PRECISION = lax.Precision.HIGHEST

Pair = Union[int, Tuple[int, int]]


def _pair(v: Pair) -> Tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)


class BasicConv(nn.Module):
  """Convolution without bias, inference BatchNorm (eps 1e-3), ReLU: torch's BasicConv2d.

  x: [N, H, W, Cin] -> [N, H', W', features]. padding: symmetric (ph, pw), as torch's.
  """

  features: int
  kernel: Pair
  stride: Pair = 1
  padding: Pair = 0

  @nn.compact
  def __call__(self, x: Array) -> Array:
    ph, pw = _pair(self.padding)
    x = nn.Conv(self.features, _pair(self.kernel), strides=_pair(self.stride),
                padding=((ph, ph), (pw, pw)), use_bias=False, precision=PRECISION,
                name="conv")(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, name="bn")(x)
    return nn.relu(x)


def _avg_pool_3x3(x: Array) -> Array:
  """3x3, stride 1, padding 1, the mean over the in-image values only (TensorFlow's rule)."""
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


def _max_pool_3x3(x: Array, stride: int, pad: int) -> Array:
  return nn.max_pool(x, (3, 3), strides=(stride, stride), padding=((pad, pad), (pad, pad)))


class InceptionA(nn.Module):
  """Mixed_5b/c/d: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1 -> 224 + pool_features."""

  pool_features: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    b1 = BasicConv(64, 1, name="branch1x1")(x)
    b5 = BasicConv(48, 1, name="branch5x5_1")(x)
    b5 = BasicConv(64, 5, padding=2, name="branch5x5_2")(b5)
    b3 = BasicConv(64, 1, name="branch3x3dbl_1")(x)
    b3 = BasicConv(96, 3, padding=1, name="branch3x3dbl_2")(b3)
    b3 = BasicConv(96, 3, padding=1, name="branch3x3dbl_3")(b3)
    bp = BasicConv(self.pool_features, 1, name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a (grid reduction 35 -> 17): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2 -> 768."""

  @nn.compact
  def __call__(self, x: Array) -> Array:
    b3 = BasicConv(384, 3, stride=2, name="branch3x3")(x)
    bd = BasicConv(64, 1, name="branch3x3dbl_1")(x)
    bd = BasicConv(96, 3, padding=1, name="branch3x3dbl_2")(bd)
    bd = BasicConv(96, 3, stride=2, name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3(x, 2, 0)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b..e: factorised 7x7 branches with `channels_7x7` inner channels -> 768."""

  channels_7x7: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c7 = self.channels_7x7
    b1 = BasicConv(192, 1, name="branch1x1")(x)
    b7 = BasicConv(c7, 1, name="branch7x7_1")(x)
    b7 = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv(c7, 1, name="branch7x7dbl_1")(x)
    bd = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = BasicConv(192, 1, name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a (grid reduction 17 -> 8): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2 -> 1280."""

  @nn.compact
  def __call__(self, x: Array) -> Array:
    b3 = BasicConv(192, 1, name="branch3x3_1")(x)
    b3 = BasicConv(320, 3, stride=2, name="branch3x3_2")(b3)
    b7 = BasicConv(192, 1, name="branch7x7x3_1")(x)
    b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv(192, 3, stride=2, name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3(x, 2, 0)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b ("E_1", avg pool) and Mixed_7c ("E_2", max pool: a quirk of the 2015 graph
  that FID inherits) -> 2048."""

  max_pool: bool = False

  @nn.compact
  def __call__(self, x: Array) -> Array:
    b1 = BasicConv(320, 1, name="branch1x1")(x)
    b3 = BasicConv(384, 1, name="branch3x3_1")(x)
    b3 = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], -1)
    bd = BasicConv(448, 1, name="branch3x3dbl_1")(x)
    bd = BasicConv(384, 3, padding=1, name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                          BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)],
                         -1)
    pooled = _max_pool_3x3(x, 1, 1) if self.max_pool else _avg_pool_3x3(x)
    bp = BasicConv(192, 1, name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """The network on prepared inputs x [N, 299, 299, 3] in [-1, 1].

  Returns pool_3 [N, 2048]; with logits=True, (pool_3, logits [N, 1008]).
  """

  @nn.compact
  def __call__(self, x: Array, logits: bool = False) -> Any:
    x = BasicConv(32, 3, stride=2, name="Conv2d_1a_3x3")(x)  # 149
    x = BasicConv(32, 3, name="Conv2d_2a_3x3")(x)  # 147
    x = BasicConv(64, 3, padding=1, name="Conv2d_2b_3x3")(x)
    x = _max_pool_3x3(x, 2, 0)  # 73
    x = BasicConv(80, 1, name="Conv2d_3b_1x1")(x)
    x = BasicConv(192, 3, name="Conv2d_4a_3x3")(x)  # 71
    x = _max_pool_3x3(x, 2, 0)  # 35
    for name, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
      x = InceptionA(pool_features, name=name)(x)
    x = InceptionB(name="Mixed_6a")(x)  # 17
    for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160),
                     ("Mixed_6e", 192)):
      x = InceptionC(c7, name=name)(x)
    x = InceptionD(name="Mixed_7a")(x)  # 8
    x = InceptionE(name="Mixed_7b")(x)
    x = InceptionE(max_pool=True, name="Mixed_7c")(x)
    pool3 = jnp.mean(x, axis=(1, 2))
    fc = nn.Dense(NUM_CLASSES, precision=PRECISION, name="fc")
    # Always create the classifier so a loaded weights file is used in full (and checked).
    out = fc(pool3)
    return (pool3, out) if logits else pool3


def prepare_images(images: Array) -> Array:
  """[N, H, W, 1 or 3] floats in [0, 1] -> [N, 299, 299, 3] in [-1, 1] (pytorch-fid's input).

  Bilinear with half-pixel centres equals torch's F.interpolate(mode='bilinear',
  align_corners=False); antialias stays off so that shrinking a large image matches too.
  """
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"Inception takes images [N, H, W, 1 or 3] in [0, 1]; got shape "
                     f"{images.shape}")
  x = jnp.asarray(images, jnp.float32)
  if x.shape[-1] == 1:
    x = jnp.broadcast_to(x, x.shape[:-1] + (3,))
  x = jax.image.resize(x, (x.shape[0], INPUT_SIZE, INPUT_SIZE, 3), method="bilinear",
                       antialias=False)
  return 2.0 * x - 1.0


def pool3_features(variables: Any, images: Array) -> Array:
  """Pure and jittable: images [N, H, W, C] in [0, 1] -> pool_3 features float32 [N, 2048].

  variables: {'params', 'batch_stats'} of FIDInceptionV3 (see metrics.weights).
  """
  return FIDInceptionV3().apply(variables, prepare_images(images))


def variable_shapes(batch: int = 1) -> Any:
  """The variables' shapes and dtypes (jax.ShapeDtypeStruct leaves), without initialising."""
  x = jax.ShapeDtypeStruct((batch, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
  return jax.eval_shape(lambda x: FIDInceptionV3().init(jax.random.key(0), x), x)

