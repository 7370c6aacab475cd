"""The classifier's data: the project's input pipeline with the classifier's target as label.

The target is the dataset's class label (digits, MNIST, CIFAR-10, STL-10: every class, SFG and
NSFG alike, so the classifier recognises the NSFG classes) or, for a dataset with attributes
(CelebA), the binary NSFG attribute of the DataSpec (default 'Bangs'): class 1 where it is set,
class 0 elsewhere, read from the same column the SFG/NSFG split uses (data/split.py).
Images are float32 [B, H, W, C] in [0, 1] after the dataset's crop / resize; training batches
get the data config's random flips.
"""

from typing import Iterator, Tuple

import numpy as np

from msgm_jax import data
from msgm_jax.data import split as split_lib
from msgm_jax.data import stream as stream_lib
from msgm_jax.data import transforms


def check_spec(spec: data.DataSpec) -> None:
  """Refuses data settings a classifier cannot use, naming the fix."""
  if spec.is_points:
    raise ValueError(f"a classifier needs image data; data.dataset={spec.dataset!r} is points")
  if spec.centered or spec.uniform_dequantization:
    raise ValueError("classifier inputs are images in [0, 1]: set data.centered=False and "
                     "data.uniform_dequantization=False")


def target(spec: data.DataSpec) -> Tuple[str, int]:
  """(attribute, num_classes): ('', the dataset's classes) or (e.g. 'Bangs', 2)."""
  d = spec.definition
  if d.attributes_key:
    return spec.nsfg_criterion()[1], 2
  if d.num_classes < 2:
    raise ValueError(f"dataset {d.name!r} has no class labels to train a classifier on")
  return "", d.num_classes


class TargetSource:
  """A Source whose 'label' is `targets[i]` (int64 [N]) instead of the source's own label."""

  def __init__(self, source: data.Source, targets: np.ndarray):
    self.source, self.targets = source, np.asarray(targets, np.int64)

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, i: int) -> dict:
    return {"image": self.source[i]["image"], "label": int(self.targets[i])}

  def labels(self) -> np.ndarray:
    return self.targets

  def attribute(self, name: str) -> np.ndarray:
    return self.source.attribute(name)


def labelled_source(spec: data.DataSpec, split: str) -> data.Source:
  """The split's examples with the classifier's target as 'label' (raw, before preprocess)."""
  source = spec.definition.load(split, spec.data_dir, spec.cache_dir)
  attribute, _ = target(spec)
  if attribute:
    return TargetSource(source, split_lib.nsfg_mask(source, (), attribute))
  return source


def train_stream(spec: data.DataSpec, split: str, *, batch_size: int, seed: int,
                 start_position: int = 0, process_index: int = 0,
                 process_count: int = 1) -> stream_lib.IndexStream:
  """Epoch-shuffled, resumable batches of the whole split (data/stream.py): batch k is
  {'image': float32 [B_local, H, W, C] in [0, 1], 'label': int32 [B_local]}."""
  source = labelled_source(spec, split)
  return stream_lib.IndexStream(
      source, np.arange(len(source)), batch_size=batch_size, seed=seed,
      preprocess=spec.preprocess(), random_flip=spec.random_flip, start_position=start_position,
      process_index=process_index, process_count=process_count)


def split_batches(spec: data.DataSpec, split: str, batch_size: int) -> Iterator[dict]:
  """Every example of the split in order: {'image': float32 [B, H, W, C] in [0, 1], 'label':
  int32 [B], 'mask': bool [B]} (the last batch padded, mask False: data.eval_batches)."""
  source = labelled_source(spec, split)
  ordered = data.SubsetSource(source, np.arange(len(source)), spec.preprocess())
  for batch in data.eval_batches(ordered, batch_size):
    yield {**batch, "image": transforms.to_unit_interval(batch["image"])}
