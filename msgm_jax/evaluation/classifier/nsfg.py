"""Classifier logits -> "is NSFG" decisions, for the NSFG rate (docs/method.md section 8).

Class datasets (digits, MNIST, CIFAR-10, STL-10): a sample is NSFG when the classifier's most
likely class is one of the NSFG classes (argmax in data.nsfg_classes). Attribute datasets
(CelebA): the classifier is binary, class 1 = attribute set, and a sample is NSFG when
P(attribute) = softmax(logits)[1] > 0.5.
"""

import dataclasses
from typing import Tuple

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class NsfgRule:
  """classes: NSFG class ids (class datasets); attribute: the NSFG attribute (then the logits
  are binary and `threshold` applies to its probability). Exactly one is set."""

  classes: Tuple[int, ...] = ()
  attribute: str = ""
  threshold: float = 0.5

  def __post_init__(self):
    object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
    if bool(self.classes) == bool(self.attribute):
      raise ValueError("an NSFG rule needs exactly one of classes or attribute; got "
                       f"classes={self.classes}, attribute={self.attribute!r}")


def is_nsfg(logits: jax.Array, rule: NsfgRule) -> jax.Array:
  """logits: float [B, K] -> bool [B]. Pure and jittable."""
  if rule.attribute:
    if logits.shape[-1] != 2:
      raise ValueError(f"the {rule.attribute!r} rule needs a binary classifier; got "
                       f"{logits.shape[-1]} classes")
    return jax.nn.softmax(logits, axis=-1)[:, 1] > rule.threshold
  return jnp.isin(jnp.argmax(logits, axis=-1), jnp.asarray(rule.classes))
