"""Test accuracy and per-class recall of a classifier, to <workdir>/classifier_eval.json.

  python -m msgm_jax.main --config=configs/classifier/<dataset>.py --workdir=<dir> --mode=eval

Evaluates the latest checkpoint on every image of classifier.eval_split (no augmentation),
data-parallel over the local devices. For a binary attribute classifier (CelebA) the record
also names the attribute's recall (true positive rate) and specificity (true negative rate).
"""

import json
import os
from typing import Any, Dict, List, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from msgm_jax import data
from msgm_jax.runtime import parallel
from msgm_jax.evaluation.classifier import inputs
from msgm_jax.evaluation.classifier.loading import Classifier, load_classifier
from msgm_jax.evaluation.classifier.settings import ClassifierSettings
from msgm_jax.training.heldout import map_examples

RESULT_FILE = "classifier_eval.json"


def classification_metrics(labels: np.ndarray, preds: np.ndarray,
                           class_names: Sequence[str]) -> Dict[str, Any]:
  """labels, preds: int [N] -> accuracy, per-class recall (None for a class without test
  examples) and support, and the confusion matrix (rows: true class, columns: predicted)."""
  k = len(class_names)
  confusion = np.zeros((k, k), np.int64)
  np.add.at(confusion, (np.asarray(labels), np.asarray(preds)), 1)
  support = confusion.sum(axis=1)
  recall = [float(confusion[c, c] / support[c]) if support[c] else None for c in range(k)]
  return {"num_examples": int(confusion.sum()),
          "accuracy": float(np.trace(confusion) / max(confusion.sum(), 1)),
          "per_class_recall": dict(zip(class_names, recall)),
          "support": dict(zip(class_names, support.tolist())),
          "confusion": confusion.tolist()}


def predict(clf: Classifier, spec: data.DataSpec, split: str, batch_size: int,
            devices: Sequence) -> np.ndarray:
  """Predicted classes int [N] of every image of the split, in order."""
  n_dev = parallel.device_count(devices)
  batch_size = -(-batch_size // n_dev) * n_dev
  fn = lambda params, batch, key: {"pred": jnp.argmax(clf.logits(params, batch["x"]), -1)}  # noqa
  p_fn = parallel.data_parallel_map(fn, devices, distinct_keys=False)
  batches = ({"x": b["image"], "mask": b["mask"], "ids": np.arange(batch_size, dtype=np.int32)}
             for b in inputs.split_batches(spec, split, batch_size))
  return map_examples(p_fn, parallel.replicate(clf.params, devices), batches,
                      jax.random.key(0), devices)["pred"]


def evaluate_classifier(clf: Classifier, spec: data.DataSpec, split: str, batch_size: int,
                        devices: Sequence) -> Dict[str, Any]:
  """The record written to classifier_eval.json (see the module docstring)."""
  clf.check_data(spec)
  labels = inputs.labelled_source(spec, split).labels()
  names = clf.info.class_names()
  record = {"step": clf.step, "classifier": clf.info.describe(), "split": split,
            **classification_metrics(labels, predict(clf, spec, split, batch_size, devices),
                                     names)}
  if clf.info.attribute:
    record["attribute"] = clf.info.attribute
    record["attribute_recall"] = record["per_class_recall"][names[1]]
    record["attribute_specificity"] = record["per_class_recall"][names[0]]
  return record


def _fmt(value) -> str:
  return "n/a" if value is None else f"{value:.4f}"


def summary_line(record: Dict[str, Any], path: str) -> str:
  """One line: accuracy and the worst recall (or the attribute's recall / specificity)."""
  text = f"classifier step {record['step']} ({record['classifier']}, {record['split']}, " \
         f"{record['num_examples']} images): accuracy {record['accuracy']:.4f}"
  if "attribute" in record:
    text += (f" | {record['attribute']} recall {_fmt(record['attribute_recall'])} specificity "
             f"{_fmt(record['attribute_specificity'])}")
  else:
    known: List = [(r, c) for c, r in record["per_class_recall"].items() if r is not None]
    worst, name = min(known)
    text += f" | lowest recall {worst:.4f} (class {name})"
  return f"{text} -> {path}"


def write_record(workdir: str, record: Dict[str, Any]) -> str:
  path = os.path.join(workdir, RESULT_FILE)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(record, f, indent=2)
  return path


def report(clf: Classifier, spec: data.DataSpec, workdir: str, s: ClassifierSettings) -> Dict:
  """Evaluates on s.eval_split (batches of s.eval_batch_size over s.num_devices local devices);
  process 0 writes <workdir>/classifier_eval.json and prints one line. Returns the record."""
  devices = parallel.local_devices(s.num_devices or None)
  record = evaluate_classifier(clf, spec, s.eval_split, s.eval_batch_size, devices)
  if jax.process_index() == 0:
    print(summary_line(record, write_record(workdir, record)), flush=True)
  return record


def evaluate(config, workdir: str) -> Dict[str, Any]:
  """Eval mode for a classifier config: the latest checkpoint of workdir (its own network;
  the config gives the data and the classifier.eval_* settings)."""
  spec = data.DataSpec.from_config(config.data)
  return report(load_classifier(workdir), spec, workdir,
                ClassifierSettings.from_config(config.classifier))
