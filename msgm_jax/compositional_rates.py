"""NSFG rates of colour-digit samples against the detector's floor (issue 15, the premise).

  python -m msgm_jax.compositional_rates --classifier=runs/classifier_digits \\
      --samples=standard=runs/cd_standard/samples/eval_8000.npz \\
      --samples=unseen=runs/cd_unseen/samples/eval_8000.npz [--nsfg=0,11,22] [--out=rates.json]

Samples are sample mode's npz files (their uint8 'images'). The detector
(msgm_jax/classifier/factors.py) also reads the real test images: its NSFG rate on real SFG
images is the floor a perfect SFG generator would get; on real NSFG images, its recall. Each
rate comes with a 95% Wilson interval. Prints one JSON object (also written to --out).
"""

import json
import math
from typing import Dict, Sequence, Tuple

import numpy as np
from absl import app, flags

from msgm_jax import data
from msgm_jax.classifier import factors
from msgm_jax.data import compositional

FLAGS = flags.FLAGS
flags.DEFINE_string("classifier", None, "Workdir of a configs/classifier/digits.py run.")
flags.DEFINE_multi_string("samples", [], "name=path of a sample-mode npz (repeatable).")
flags.DEFINE_list("nsfg", [], "NSFG combination ids (colour * 10 + digit); default: the "
                  "dataset's (data/compositional.py NSFG_COMBOS).")
flags.DEFINE_string("out", None, "Also write the JSON here.")
flags.mark_flags_as_required(["classifier"])


def wilson(k: int, n: int, z: float = 1.959964) -> Tuple[float, float]:
  """The Wilson score interval of a binomial proportion k / n (95% by default)."""
  if n <= 0:
    raise ValueError("a rate needs at least one sample")
  p, z2 = k / n, z * z
  centre = (p + z2 / (2 * n)) / (1 + z2 / n)
  half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
  return max(0.0, centre - half), min(1.0, centre + half)


def summarize(out: Dict[str, np.ndarray], nsfg_combos: Sequence[int]) -> dict:
  """The detector's output on N images -> NSFG rate with interval, and how clear the readings
  are (share with digit confidence >= 0.9 and colour leak < 0.25; NSFG rate among those)."""
  is_nsfg = np.asarray(out["is_nsfg"])
  n, k = len(is_nsfg), int(is_nsfg.sum())
  clear = (np.asarray(out["digit_confidence"]) >= 0.9) & (np.asarray(out["colour_leak"]) < 0.25)
  combos = np.bincount(np.asarray(out["combo"]), minlength=compositional.NUM_CLASSES)
  return {"n": n, "nsfg": k, "nsfg_rate": k / n, "nsfg_ci95": wilson(k, n),
          "clear_share": float(clear.mean()),
          "nsfg_rate_clear": float(is_nsfg[clear].mean()) if clear.any() else float("nan"),
          "nsfg_per_combo": {compositional.describe([c]): int(combos[c])
                             for c in nsfg_combos},
          "colour_shares": dict(zip(compositional.COLOUR_NAMES,
                                    np.bincount(np.asarray(out["colour"]),
                                                minlength=compositional.NUM_COLOURS) / n)),
          "digit_shares": (np.bincount(np.asarray(out["digit"]), minlength=10) / n).tolist()}


def real_images(subset: str, nsfg_combos: Sequence[int]) -> np.ndarray:
  """The colour digits' test images of a subset ('sfg' / 'nsfg'): float [N, 8, 8, 3] in [0, 1]."""
  spec = data.DataSpec("colour_digits", nsfg_classes=tuple(nsfg_combos))
  source = data.make_eval_source(spec, "test", subset)
  return np.stack([source[i]["image"] for i in range(len(source))]) / 255.0


def measure(classifier: str, samples: Dict[str, str], nsfg_combos: Sequence[int]) -> dict:
  """{'detector': {'floor': ..., 'recall': ...}, 'samples': {name: summary}}."""
  detect = factors.load_detector(classifier)
  result = {"nsfg_combos": list(nsfg_combos), "detector": {}, "samples": {}}
  for key, subset in (("floor", "sfg"), ("recall", "nsfg")):
    result["detector"][key] = summarize(detect(real_images(subset, nsfg_combos), nsfg_combos),
                                        nsfg_combos)
  for name, path in samples.items():
    with np.load(path) as f:
      images = f["images"] / 255.0
    result["samples"][name] = {"path": path,
                               **summarize(detect(images, nsfg_combos), nsfg_combos)}
  return result


def main(argv):
  del argv
  combos = tuple(int(c) for c in FLAGS.nsfg) or compositional.NSFG_COMBOS
  pairs = [s.split("=", 1) for s in FLAGS.samples]
  if any(len(p) != 2 for p in pairs):
    raise app.UsageError("--samples takes name=path, e.g. --samples=unseen=run/samples/x.npz")
  result = measure(FLAGS.classifier, dict(pairs), combos)
  text = json.dumps(result, indent=1)
  print(text)
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  app.run(main)
