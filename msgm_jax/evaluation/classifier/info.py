"""What a trained classifier is: the data it reads and how it was built (kept in checkpoints).

Stored as JSON in every classifier checkpoint's meta under 'classifier', so a checkpoint
alone rebuilds the network (no config file) and refuses data it was not trained for.
"""

import dataclasses
from typing import List, Tuple

import flax.linen as nn

from msgm_jax import data
from msgm_jax.evaluation.classifier import inputs, networks
from msgm_jax.evaluation.classifier.settings import ClassifierSettings


@dataclasses.dataclass(frozen=True)
class ClassifierInfo:
  """dataset: canonical name; image_shape: (H, W, C) after crop / resize; num_classes: logits
  per image; attribute: '' (classes are the dataset's) or the attribute of a binary classifier
  (class 1 = set, e.g. 'Bangs'); settings: the architecture and training settings."""

  dataset: str
  image_shape: Tuple[int, int, int]
  num_classes: int
  attribute: str
  settings: ClassifierSettings

  @classmethod
  def for_data(cls, spec: data.DataSpec, settings: ClassifierSettings) -> "ClassifierInfo":
    inputs.check_spec(spec)
    attribute, num_classes = inputs.target(spec)
    return cls(spec.dataset, tuple(data.data_shape(spec)), num_classes, attribute, settings)

  def model(self) -> nn.Module:
    s = self.settings
    return networks.build(s.model, num_classes=self.num_classes, width=s.width, depth=s.depth,
                          dropout=s.dropout, image_size=self.image_shape[0])

  def class_names(self) -> List[str]:
    if self.attribute:
      return [f"not_{self.attribute}", self.attribute]
    return [str(c) for c in range(self.num_classes)]

  def describe(self) -> str:
    """'digits 8x8x1, 10 classes' / 'celeba 64x64x3, binary Bangs'."""
    h, w, c = self.image_shape
    what = f"binary {self.attribute}" if self.attribute else f"{self.num_classes} classes"
    return f"{self.dataset} {h}x{w}x{c}, {what}"

  def to_json(self) -> dict:
    return {"dataset": self.dataset, "image_shape": list(self.image_shape),
            "num_classes": self.num_classes, "attribute": self.attribute,
            "settings": self.settings.to_json()}

  @classmethod
  def from_json(cls, d: dict) -> "ClassifierInfo":
    return cls(d["dataset"], tuple(d["image_shape"]), int(d["num_classes"]), d["attribute"],
               ClassifierSettings(**d["settings"]))
