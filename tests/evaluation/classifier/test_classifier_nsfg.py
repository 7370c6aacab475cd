"""The NSFG decision rule, the data checks of a loaded classifier and the test metrics."""

import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax import data
from msgm_jax.evaluation.classifier import (Classifier, ClassifierInfo, ClassifierMismatch,
                                            ClassifierSettings)
from msgm_jax.evaluation.classifier import NsfgRule, is_nsfg
from msgm_jax.evaluation.classifier.evaluate import classification_metrics, summary_line


def test_class_rule_is_argmax_in_the_nsfg_classes():
  logits = jnp.array([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [0, 0, 1.0, 0.9], [3.0, 0, 0, 3.1]])
  np.testing.assert_array_equal(is_nsfg(logits, NsfgRule(classes=(1, 3))),
                                [False, True, False, True])
  # Probability mass on NSFG classes does not matter, only the most likely class.
  spread = jnp.log(jnp.array([[0.3, 0.24, 0.22, 0.24]]))
  assert not bool(is_nsfg(spread, NsfgRule(classes=(1, 3)))[0])


def test_attribute_rule_is_probability_above_one_half():
  # P(class 1) = sigmoid(l1 - l0): 0.731, 0.5 (not above), 0.269, 0.5000x.
  logits = jnp.array([[0.0, 1.0], [2.0, 2.0], [1.0, 0.0], [0.0, 1e-3]])
  np.testing.assert_array_equal(is_nsfg(logits, NsfgRule(attribute="Bangs")),
                                [True, False, False, True])
  strict = NsfgRule(attribute="Bangs", threshold=0.9)
  np.testing.assert_array_equal(is_nsfg(logits, strict), [False, False, False, False])
  with pytest.raises(ValueError, match="needs a binary classifier"):
    is_nsfg(jnp.zeros((2, 3)), NsfgRule(attribute="Bangs"))
  with pytest.raises(ValueError, match="exactly one of classes or attribute"):
    NsfgRule()


def _handle(dataset, image_size, **data_fields):
  spec = data.DataSpec(dataset, image_size=image_size, **data_fields)
  info = ClassifierInfo.for_data(spec, ClassifierSettings())
  return Classifier(info, model=None, params=None, step=0)


def test_a_classifier_judges_only_its_own_data():
  digits = _handle("digits", 8)
  assert digits.nsfg_rule(data.DataSpec("digits", nsfg_classes=(7,))) == NsfgRule(classes=(7,))
  with pytest.raises(ClassifierMismatch, match="trained on digits but the data are mnist; "
                     ".*configs/classifier/mnist.py"):
    digits.nsfg_rule(data.DataSpec("mnist", nsfg_classes=(1,)))
  with pytest.raises(ClassifierMismatch, match=r"\(8, 8, 1\) but the data are \(16, 16, 1\).*"
                     "--config.data.image_size=16"):
    digits.nsfg_rule(data.DataSpec("digits", image_size=16, nsfg_classes=(0,)))
  with pytest.raises(ClassifierMismatch, match="NSFG classes \\[12\\]"):
    digits.nsfg_rule(data.DataSpec("digits", nsfg_classes=(12,)))
  with pytest.raises(ClassifierMismatch, match="trained on digits but the data are toy2d"):
    digits.nsfg_rule(data.DataSpec("toy2d", nsfg_classes=(2,)))


def test_celeba_classifier_is_binary_and_tied_to_its_attribute():
  celeba = _handle("celeba", 64)
  assert celeba.info.num_classes == 2 and celeba.info.class_names() == ["not_Bangs", "Bangs"]
  assert celeba.nsfg_rule(data.DataSpec("celeba", image_size=64)) == NsfgRule(attribute="Bangs")
  with pytest.raises(ClassifierMismatch, match="predicts 'Bangs' but data.nsfg_attribute is "
                     "'Eyeglasses'"):
    celeba.nsfg_rule(data.DataSpec("celeba", image_size=64, nsfg_attribute="Eyeglasses"))


def test_centred_data_is_refused_for_training():
  with pytest.raises(ValueError, match="set data.centered=False"):
    _handle("digits", 8, centered=True)


def test_metrics_from_a_hand_made_confusion():
  labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
  preds = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
  m = classification_metrics(labels, preds, ["a", "b", "c", "d"])
  assert m["num_examples"] == 10 and m["accuracy"] == pytest.approx(0.8)
  assert m["per_class_recall"] == {"a": 0.75, "b": 0.5, "c": 1.0, "d": None}
  assert m["support"] == {"a": 4, "b": 2, "c": 4, "d": 0}
  assert m["confusion"][0] == [3, 1, 0, 0] and m["confusion"][1] == [0, 1, 1, 0]


def test_summary_line_names_the_weakest_class_or_the_attribute():
  m = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["0", "1", "2"])
  record = {"step": 5, "classifier": "digits 8x8x1, 10 classes", "split": "test", **m}
  assert summary_line(record, "x.json") == (
      "classifier step 5 (digits 8x8x1, 10 classes, test, 4 images): accuracy 0.7500 | lowest "
      "recall 0.5000 (class 0) -> x.json")
  binary = {**record, "attribute": "Bangs", "attribute_recall": None,
            "attribute_specificity": 1.0}
  assert summary_line(binary, "x.json").endswith("Bangs recall n/a specificity 1.0000 -> x.json")
