"""NSFG rates of colour-digit samples against the detector's floor (issue 15, the premise).

  python -m msgm_jax.experiments.colour_rates --classifier=runs/classifier_digits \\
      --samples=standard=runs/cd_standard/samples/eval_6000.npz \\
      --samples=unseen=runs/cd_unseen/samples/eval_6000.npz \\
      [--config=configs/colour_digits_ddpm.py --config.data.nsfg_classes='(27,)'] [--out=rates.json]

Samples are sample mode's npz files (their uint8 'images'). The NSFG combinations are the
config's data.nsfg_classes (give the runs' config and overrides), else the dataset's default
(data/compositional.py NSFG_COMBOS). The detector (msgm_jax/evaluation/classifier/factors.py) also reads
the real test images: its NSFG rate on real SFG images is the floor a perfect SFG generator
would get; on real NSFG images, its recall. Each rate comes with a 95% Wilson interval. Prints one JSON object (also written to --out).
--figure writes a PNG of images the detector calls NSFG: two rows of ten per block, the real
NSFG test images first, then each sample set in the order given.
"""

import json
from typing import Dict, Sequence

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from msgm_jax import data
from msgm_jax.training import writer as writer_lib
from msgm_jax.evaluation.classifier import factors
from msgm_jax.data import compositional
from msgm_jax.evaluation.metrics import rates

FIGURE_BLOCK = 20  # images per block of the figure (two rows of ten)
FLAGS = flags.FLAGS


def _define_flags():
  """Flags of the command, defined only when it runs (so importing the module never clashes
  with another command's flags)."""
  flags.DEFINE_string("classifier", None, "Workdir of a configs/classifier/digits.py run.")
  flags.DEFINE_multi_string("samples", [], "name=path of a sample-mode npz (repeatable).")
  config_flags.DEFINE_config_file("config", None, "The runs' config (for data.nsfg_classes).")
  flags.DEFINE_string("out", None, "Also write the JSON here.")
  flags.DEFINE_string("figure", None, "Also write a PNG of NSFG-detected images here.")
  flags.mark_flags_as_required(["classifier"])


def clear_mask(out: Dict[str, np.ndarray]) -> np.ndarray:
  """bool [N]: clearly drawn (readable, digit confidence >= 0.9, colour leak < 0.25; real test
  images: 95.6%)."""
  return ((np.asarray(out["digit_confidence"]) >= 0.9) & (np.asarray(out["colour_leak"]) < 0.25)
          & ~np.asarray(out["unreadable"]))


def summarize(out: Dict[str, np.ndarray], nsfg_combos: Sequence[int]) -> dict:
  """The detector's output on N images -> NSFG rate with interval (NSFG, SFG and unreadable
  are three classes: an unreadable image counts as neither), the unreadable share, how clear
  the readings are (clear_mask's share; the NSFG rate among those, with interval) and the
  rate per NSFG combination."""
  is_nsfg = np.asarray(out["is_nsfg"])
  n, k = len(is_nsfg), int(is_nsfg.sum())
  clear = clear_mask(out)
  kc, nc = int(is_nsfg[clear].sum()), int(clear.sum())
  unreadable = int(np.asarray(out["unreadable"]).sum())
  combos = np.bincount(np.asarray(out["combo"])[~np.asarray(out["unreadable"])],
                       minlength=compositional.NUM_CLASSES)
  return {"n": n, "nsfg": k, "nsfg_rate": k / n, "nsfg_ci95": rates.wilson_interval(k, n),
          "unreadable": unreadable, "unreadable_share": unreadable / n,
          "clear_share": float(clear.mean()), "clear_n": nc,
          "nsfg_rate_clear": kc / nc if nc else float("nan"),
          "nsfg_rate_clear_ci95": rates.wilson_interval(kc, nc) if nc else None,
          "nsfg_per_combo": {compositional.describe([c]): int(combos[c])
                             for c in nsfg_combos},
          "colour_shares": dict(zip(compositional.COLOUR_NAMES,
                                    np.bincount(np.asarray(out["colour"]),
                                                minlength=compositional.NUM_COLOURS) / n)),
          "digit_shares": (np.bincount(np.asarray(out["digit"]), minlength=10) / n).tolist()}


def paired(ref: Dict[str, np.ndarray], row: Dict[str, np.ndarray],
           nsfg_combos: Sequence[int]) -> dict:
  """Two models' samples drawn with the same sampler keys (sample i of each from the same
  noise), read by the detector: McNemar's exact test of the NSFG decisions (all samples, and
  the pairs clear in both), and where the samples the reference draws as NSFG go in `row`
  (counts: the same combination, another NSFG one, an SFG image of the same digit in another
  colour, of the same colour as another digit, of both changed, unreadable)."""
  ref_nsfg, row_nsfg = np.asarray(ref["is_nsfg"]), np.asarray(row["is_nsfg"])
  both_clear = clear_mask(ref) & clear_mask(row)
  out = {"mcnemar": rates.mcnemar_exact(ref_nsfg, row_nsfg),
         "mcnemar_clear": rates.mcnemar_exact(ref_nsfg[both_clear], row_nsfg[both_clear])}
  sel = ref_nsfg
  digit = np.asarray(row["digit"])[sel] == np.asarray(ref["digit"])[sel]
  colour = np.asarray(row["colour"])[sel] == np.asarray(ref["colour"])[sel]
  unread, nsfg = np.asarray(row["unreadable"])[sel], row_nsfg[sel]
  sfg = ~unread & ~nsfg
  out["ref_nsfg_goes_to"] = {
      "n": int(sel.sum()), "same_combination": int((nsfg & digit & colour).sum()),
      "other_nsfg": int((nsfg & ~(digit & colour)).sum()),
      "sfg_same_digit": int((sfg & digit).sum()), "sfg_same_colour": int((sfg & colour).sum()),
      "sfg_both_changed": int((sfg & ~digit & ~colour).sum()), "unreadable": int(unread.sum())}
  return out


def real_images(subset: str, nsfg_combos: Sequence[int]) -> np.ndarray:
  """The colour digits' test images of a subset ('sfg' / 'nsfg'): float [N, 8, 8, 3] in [0, 1]."""
  spec = data.DataSpec("colour_digits", nsfg_classes=tuple(nsfg_combos))
  source = data.make_eval_source(spec, "test", subset)
  return np.stack([source[i]["image"] for i in range(len(source))]) / 255.0


def nsfg_figure(blocks: Sequence[np.ndarray]) -> np.ndarray:
  """Blocks of images [n <= 20, H, W, 3] in [0, 1] -> one uint8 picture, a 2 x 10 grid per
  block (short blocks padded with black), blocks stacked top to bottom."""
  grids = []
  for images in blocks:
    padded = np.zeros((FIGURE_BLOCK,) + images.shape[1:], np.float32)
    padded[:len(images)] = images[:FIGURE_BLOCK]
    grids.append(writer_lib.image_grid(padded, ncol=FIGURE_BLOCK // 2))
  return np.concatenate(grids, axis=0)


def measure(classifier: str, samples: Dict[str, str], nsfg_combos: Sequence[int],
            figure: str = "") -> dict:
  """{'detector': {'floor': ..., 'recall': ...}, 'samples': {name: summary}}; with figure,
  also writes nsfg_figure of the NSFG-detected images there."""
  detect = factors.load_detector(classifier)
  result = {"nsfg_combos": list(nsfg_combos), "detector": {}, "samples": {}}
  blocks = []
  for key, subset in (("floor", "sfg"), ("recall", "nsfg")):
    images = real_images(subset, nsfg_combos)
    out = detect(images, nsfg_combos)
    result["detector"][key] = summarize(out, nsfg_combos)
    if key == "recall":
      blocks.append(images[np.asarray(out["is_nsfg"])])
  for name, path in samples.items():
    with np.load(path) as f:
      images = f["images"] / 255.0
    out = detect(images, nsfg_combos)
    result["samples"][name] = {"path": path, **summarize(out, nsfg_combos)}
    blocks.append(images[np.asarray(out["is_nsfg"])])
  if figure:
    writer_lib.save_png(figure, nsfg_figure(blocks))
  return result


def main(argv):
  del argv
  combos = compositional.NSFG_COMBOS
  if FLAGS.config is not None:
    spec = data.DataSpec.from_config(FLAGS.config.data)
    if spec.dataset != "colourdigits":
      raise app.UsageError(f"--config is for the colour digits; its data are {spec.dataset}")
    combos = spec.nsfg_criterion()[0]
  pairs = [s.split("=", 1) for s in FLAGS.samples]
  if any(len(p) != 2 for p in pairs):
    raise app.UsageError("--samples takes name=path, e.g. --samples=unseen=run/samples/x.npz")
  result = measure(FLAGS.classifier, dict(pairs), combos, FLAGS.figure or "")
  text = json.dumps(result, indent=1)
  print(text)
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
