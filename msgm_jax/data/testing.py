"""Test helper: a tiny, real ArrayRecord copy of a registered TFDS dataset, built offline.

`build_local_tfds('cifar10', data_dir, {'train': [...], 'test': [...]})` writes the examples
with the real dataset's builder class, name, version and features (no download, no
TensorFlow), so `tfds.data_source('cifar10', data_dir=data_dir, download=False)` -- the
production path -- reads them back. Features missing from an example get zeros / ''.
"""

from typing import Dict, List

import numpy as np
from PIL import Image


def _fill(feature, value):
  """An encodable value for `feature`: `value` where given, zeros otherwise (recursive)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  f = tfds.features
  if isinstance(feature, f.FeaturesDict):
    value = value or {}
    return {k: _fill(sub, value.get(k)) for k, sub in feature.items()}
  if isinstance(feature, f.Image):
    # Without TensorFlow, tfds encodes images only from PIL images or bytes.
    image = np.zeros(feature.shape, np.uint8) if value is None else np.asarray(value, np.uint8)
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  if isinstance(feature, f.Text):
    return "" if value is None else value
  if isinstance(feature, f.ClassLabel):
    return 0 if value is None else int(value)
  return np.zeros(feature.shape, feature.np_dtype) if value is None else value


def build_local_tfds(tfds_name: str, data_dir: str, splits: Dict[str, List[dict]]) -> str:
  """Prepares `tfds_name` under data_dir in ArrayRecord format from in-memory examples.

  splits: split name -> list of (partial) feature dicts, e.g. {'image': uint8 [H, W, C],
  'label': 3}. Returns the prepared dataset's directory. TFDS may reorder records within a
  split (hash shuffling), so tests should recognise examples by content.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  base = type(tfds.builder(tfds_name, data_dir=data_dir))

  class Local(base, skip_registration=True):  # pylint: disable=missing-class-docstring
    name = tfds_name

    def _split_generators(self, dl_manager):
      del dl_manager
      return {s: self._examples(exs) for s, exs in splits.items()}

    def _examples(self, examples):
      for i, ex in enumerate(examples):
        yield i, _fill(self.info.features, ex)

  builder = Local(data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare()
  return str(builder.data_path)


def coded_examples(n: int, shape, num_classes: int = 10) -> List[dict]:
  """n examples whose pixels say who they are: label = i % num_classes; image row 0 holds
  i % 256 (flip-invariant) and every other pixel 10 * label + 5.

  Recover them with `decode_example`. Images are uint8 `shape` ([H, W, C]).
  """
  out = []
  for i in range(n):
    label = i % num_classes
    image = np.full(shape, 10 * label + 5, np.uint8)
    image[0] = i % 256
    out.append({"image": image, "label": label})
  return out


def decode_example(image: np.ndarray):
  """(i % 256, label) of a coded image, given as uint8 values or as [0, 1] floats."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    image = np.rint(image * 255.0).astype(np.int64)
  return int(image[0, 0, 0]), int((image[-1, -1, 0] - 5) // 10)
