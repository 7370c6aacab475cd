"""The dataset registry: what each dataset is, where it comes from, and its default NSFG split.

Names are case-insensitive and ignore '_' and '-', so score_sde's spellings ('CIFAR10', 'CELEBA',
'STL10', 'MNIST') and TFDS's ('celeb_a') all resolve. Splits are this project's names mapped to
TFDS split strings; STL-10 trains on its labelled 'train' + 'test' images (docs/method.md
section 7).
"""

import dataclasses
from typing import Callable, Optional, Tuple

import numpy as np

from msgm_jax.data import compositional, mixture
from msgm_jax.data.sources import ArraySource, Source, TfdsSource
from msgm_jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class DatasetDef:
  """One dataset.

  name: canonical registry name. kind: 'image' (uint8 [H, W, C] sources) or 'points' (toy2d).
  shape: stored example shape ([H, W, C], or (D,) for points). crop: centre crop applied before
  resizing (0: none). splits: (project split, TFDS split string) pairs. tfds_name: '' for
  embedded data. label_key / attributes_key: TFDS feature names. nsfg_classes /
  nsfg_attribute: the paper's NSFG split, used when a spec gives none. num_classes: how many
  class labels there are (0: no class labels, e.g. CelebA, which has attributes instead).
  embedded: for data built in memory (no TFDS), split string -> Source.
  """

  name: str
  kind: str
  shape: Tuple[int, ...]
  splits: Tuple[Tuple[str, str], ...] = (("train", "train"), ("test", "test"))
  tfds_name: str = ""
  crop: int = 0
  label_key: Optional[str] = "label"
  attributes_key: Optional[str] = None
  nsfg_classes: Tuple[int, ...] = ()
  nsfg_attribute: str = ""
  num_classes: int = 0
  embedded: Optional[Callable[[str], Source]] = dataclasses.field(default=None, compare=False)

  def tfds_split(self, split: str) -> str:
    table = dict(self.splits)
    if split not in table:
      raise ValueError(f"dataset {self.name!r} has no split {split!r}; valid: {', '.join(table)}")
    return table[split]

  def load(self, split: str, data_dir: str = "", cache_dir: Optional[str] = None) -> Source:
    """The Source for a project split ('train', 'test', ...). Not for kind 'points'."""
    tfds_split = self.tfds_split(split)
    if self.embedded is not None:
      return self.embedded(tfds_split)
    if not self.tfds_name:
      raise ValueError(f"dataset {self.name!r} has no finite source; sample it via its stream")
    return TfdsSource(self.tfds_name, tfds_split, data_dir, label_key=self.label_key,
                      attributes_key=self.attributes_key, cache_dir=cache_dir)


DATASETS: Registry = Registry("dataset")


def canonical_name(name: str) -> str:
  """'CIFAR10' / 'celeb_a' / 'STL-10' -> 'cifar10' / 'celeba' / 'stl10' (not validated)."""
  return name.lower().replace("_", "").replace("-", "")


def get_dataset(name: str) -> DatasetDef:
  """Looks a dataset up by any accepted spelling; ValueError listing valid names if unknown."""
  return DATASETS.get(canonical_name(name))


DIGITS_NUM_TRAIN = 1500
DIGITS_SPLIT_SEED = 0


def load_digits(split: str) -> ArraySource:
  """sklearn's real 8x8 digits (UCI optdigits test set, 1797 images, 10 classes).

  Pixels 0..16 become uint8 round(v * 255 / 16), images [8, 8, 1]. Split: a fixed permutation
  (numpy default_rng(0)) of the 1797 rows; its first 1500 (kept in file order) are 'train', the
  other 297 'test'. Deterministic across machines and numpy versions (PCG64 is stable).
  """
  from sklearn.datasets import load_digits as sk_load  # pylint: disable=g-import-not-at-top

  bunch = sk_load()
  images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(images))
  rows = {"train": np.sort(perm[:DIGITS_NUM_TRAIN]), "test": np.sort(perm[DIGITS_NUM_TRAIN:])}
  if split not in rows:
    raise ValueError(f"digits has no split {split!r}; valid: train, test")
  return ArraySource(images[rows[split]], bunch.target[rows[split]])


def load_colour_digits(split: str) -> ArraySource:
  """The digits of `split` in every colour (data/compositional.py): uint8 [N * 7, 8, 8, 3],
  labels colour * 10 + digit."""
  grey = load_digits(split)
  return ArraySource(*compositional.colourize(grey.images, grey.labels()))


for _d in (
    DatasetDef("mnist", "image", (28, 28, 1), tfds_name="mnist", nsfg_classes=(),
               num_classes=10),
    DatasetDef("cifar10", "image", (32, 32, 3), tfds_name="cifar10", nsfg_classes=(1, 5),
               num_classes=10),
    DatasetDef("celeba", "image", (218, 178, 3), tfds_name="celeb_a", crop=140, label_key=None,
               attributes_key="attributes", nsfg_attribute="Bangs",
               splits=(("train", "train"), ("validation", "validation"), ("test", "test"))),
    # STL-10 'test' overlaps the training images (the paper trains on train + test);
    # 'train_only' is STL-10's own 5000 training images, so that a classifier's 'test' is
    # held out.
    DatasetDef("stl10", "image", (96, 96, 3), tfds_name="stl10", nsfg_classes=(0,),
               splits=(("train", "train+test"), ("train_only", "train"), ("test", "test")),
               num_classes=10),
    DatasetDef("digits", "image", (8, 8, 1), num_classes=10, embedded=load_digits),
    # Every digit in each of 7 colours; label = colour * 10 + digit (data/compositional.py).
    DatasetDef("colourdigits", "image", (8, 8, 3), num_classes=compositional.NUM_CLASSES,
               nsfg_classes=compositional.NSFG_COMBOS,
               embedded=load_colour_digits),
    DatasetDef("toy2d", "points", (2,), nsfg_classes=mixture.TOY2D_NSFG_COMPONENTS,
               splits=(("train", "train"), ("test", "test"))),
):
  DATASETS.add(_d.name, _d)
