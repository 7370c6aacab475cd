"""What inpaint and reconstruct mode share: a trained run applied to SFG and NSFG test images,
judged by the dataset classifier, with JSON, TensorBoard and picture outputs.

A zero-shot mode is a per-device function fn(variables, batch {'x': [B, ...]}, key) ->
{'x': [B, ...] outputs in model space, ...}, run data-parallel over the run's devices
(parallel.data_parallel_map: each device draws its own noise, so the outputs depend on the
device count and the batch, eval.batch_size) on the first num_images test images
(eval.bpd_dataset split) of each subset. Per subset the record holds:
- nsfg_rate (with its Wilson 95% interval, count and n): the share of outputs the classifier
  (eval.classifier_weights) assigns to an NSFG class; input_nsfg_rate: the same for the inputs
  (the classifier's floor on SFG inputs, its recall on NSFG inputs);
- class_agreement (with its interval): the share of outputs classified as the input's label;
- mse: the mean squared error between output and input in [0, 1] pixels (inpainting: over
  the completed pixels), and per_image lists (label, predicted class, is_nsfg, mse).
Without a classifier only the errors are reported (one line says so).
"""

import contextlib
import dataclasses
import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import jax
import numpy as np

from msgm_jax import data
from msgm_jax.config import agreement
from msgm_jax.config import builders
from msgm_jax.runtime import parallel
from msgm_jax.training import progress
from msgm_jax.training import restore
from msgm_jax.evaluation import sample_mode as sample_lib
from msgm_jax.training import writer as writer_lib
from msgm_jax.evaluation.classifier import load_classifier
from msgm_jax.training.heldout import subset_source
from msgm_jax.evaluation.metrics import extractors, feature_stats, rates

SUBSETS = ("sfg", "nsfg")
GRID_COLUMNS = 16  # images per row of the pictures
STREAMS = {"inpaint": 3, "reconstruct": 4}  # folded into the run's init key
# Fields that determine a zero-shot mode's outputs (with the mode's own section).
_FIELDS = ("seed", "sampling.", "adjust.", "eval.bpd_dataset", "eval.batch_size",
           "eval.classifier_weights", "training.sde", "training.continuous",
           "training.num_devices", "data.", "model.")


@dataclasses.dataclass(frozen=True)
class Inputs:
  """The first test images of one subset: uint8 [n, H, W, C] and their labels int [n]."""

  images: np.ndarray
  labels: np.ndarray


def test_inputs(spec: data.DataSpec, split: str, subset: str, num_images: int) -> Inputs:
  """The first num_images (0: all) images of `subset` of `split`."""
  source = subset_source(spec, split, subset)
  n = min(len(source), num_images) if num_images else len(source)
  examples = [source[i] for i in range(n)]
  return Inputs(np.stack([np.asarray(ex["image"]) for ex in examples]),
                np.array([ex["label"] for ex in examples], np.int64))


def run_batches(p_fn: Callable, p_variables, x: np.ndarray, key: jax.Array, devices: Sequence,
                batch_size: int, desc: str = "", show: bool = False) -> Dict[str, np.ndarray]:
  """p_fn = parallel.data_parallel_map(fn) over x [n, ...] in global batches of batch_size
  (the last one padded, so there is one compilation); batch b gets fold_in(key, b). Returns
  {name: [n, ...]} in input order."""
  outs: List[Dict[str, np.ndarray]] = []
  with progress.Progress(-(-len(x) // batch_size), enabled=show, desc=desc, unit="batch") as bar:
    for b, start in enumerate(range(0, len(x), batch_size)):
      chunk = x[start:start + batch_size]
      pad = np.zeros((batch_size - len(chunk),) + x.shape[1:], x.dtype)
      # This process's rows of the global batch; the outputs of all processes come back.
      out = parallel.map_global_batch(p_fn, p_variables, {"x": np.concatenate([chunk, pad])},
                                      jax.random.fold_in(key, b), devices)
      outs.append({k: v[:len(chunk)] for k, v in out.items()})
      bar.update(b + 1)
  return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}


class Judge:
  """The dataset classifier on uint8 images: (predicted class int [N], is_nsfg bool [N]),
  data-parallel over `devices` in batches of batch_size."""

  def __init__(self, weights: str, spec: data.DataSpec, devices: Sequence, batch_size: int):
    clf = load_classifier(weights, spec)  # ClassifierMismatch (one line) for other data
    self.decide = clf.nsfg_decider(spec)
    logits = extractors.Extractor("classifier_logits", clf.logits, clf.params,
                                  clf.info.num_classes, extractors.tree_digest(clf.params))
    self.runner = extractors.FeatureRunner(logits, devices, batch_size)

  def __call__(self, images: np.ndarray):
    source = data.ArraySource(np.asarray(images), np.zeros(len(images), np.int64))
    logits = np.concatenate(list(feature_stats.source_features(self.runner, source)))
    return np.argmax(logits, axis=-1), np.asarray(self.decide(logits), bool)


def subset_metrics(inputs: Inputs, outputs: np.ndarray, judge: Optional[Judge],
                   weights: Optional[np.ndarray] = None) -> Dict[str, Any]:
  """The record of one subset (see the module docstring). outputs: uint8 like inputs.images;
  weights: [H, W, C] weights of the pixels in the error (inpainting: 1 where completed)."""
  diff = (outputs.astype(np.float64) - inputs.images.astype(np.float64)) / 255.0
  w = np.ones(outputs.shape[1:]) if weights is None else np.asarray(weights, np.float64)
  mse = np.sum(diff**2 * w, axis=(1, 2, 3)) / np.sum(w)
  out = {"num_images": len(outputs), "mse": float(np.mean(mse))}
  per_image = {"label": inputs.labels.tolist(), "mse": mse.tolist()}
  if judge is not None:
    predicted, nsfg = judge(outputs)
    out.update(rates.rate_summary(nsfg))
    out.update(rates.rate_summary(predicted == inputs.labels, name="class_agreement"))
    out["input_nsfg_rate"] = float(np.mean(judge(inputs.images)[1]))
    per_image.update(predicted=predicted.tolist(), is_nsfg=nsfg.tolist())
  return {**out, "per_image": per_image}


def picture(rows: Sequence[Tuple[str, np.ndarray]], title: str) -> np.ndarray:
  """A labelled grid of the first GRID_COLUMNS images of each of `rows` ((label, uint8
  [N, H, W, C]) pairs, e.g. inputs, masked inputs, results), titled `title` and the count
  shown ("first 16 of 64 images") -> uint8 [H', W', C]."""
  n = len(rows[0][1])
  k = min(GRID_COLUMNS, n)
  shown = f"first {k} of {n} images" if k < n else f"all {n} images"
  return writer_lib.labelled_grid(
      [(label, np.asarray(r[:k], np.float32) / 255.0) for label, r in rows],
      f"{title}: {shown}")


def settings_tag(config, section: str) -> str:
  """Names the settings that determine a zero-shot mode's outputs."""
  return agreement.settings_tag(config, _FIELDS + (f"{section}.",),
                                exclude=("data.data_dir", "data.cache_dir") +
                                tuple(builders.METHOD_FIELDS))  # read by no zero-shot mode


def summary_line(mode: str, record: Dict[str, Any], path: str) -> str:
  parts = []
  for subset in SUBSETS:
    r = record[subset]
    text = f"{subset.upper()} {r['num_images']} images mse {r['mse']:.4f}"
    if "nsfg_rate" in r:
      low, high = r["nsfg_rate_ci"]
      text += (f" nsfg_rate {r['nsfg_rate']:.4f} [{low:.4f}, {high:.4f}] class_agreement "
               f"{r['class_agreement']:.4f}")
    parts.append(text)
  return f"{mode} step {record['step']}: {' | '.join(parts)} -> {path}"


def _scalars(mode: str, record: Dict[str, Any]) -> Dict[str, float]:
  return {f"{mode}/{subset}_{k}": v for subset in SUBSETS for k, v in record[subset].items()
          if isinstance(v, (int, float)) and not isinstance(v, bool)}


@dataclasses.dataclass(frozen=True)
class Mode:
  """A zero-shot mode: its name (and output directory, <workdir>/<name>/<tag>/), its config
  section, and how to build its per-device function and read its results.

  make_fn(restored, config) -> fn(variables, batch, key) -> {'x': outputs, ...};
  grid_rows(inputs uint8, outputs uint8) -> the (label, images) rows of its picture;
  weights(config, shape): the pixel weights of its error (None: every pixel);
  describe(config) -> extra record fields (e.g. the mask).
  """

  name: str
  make_fn: Callable
  grid_rows: Callable[[np.ndarray, np.ndarray], Sequence[Tuple[str, np.ndarray]]]
  weights: Callable[[Any, tuple], Optional[np.ndarray]] = lambda config, shape: None
  describe: Callable[[Any], Dict[str, Any]] = lambda config: {}


def _previous(path: str) -> Optional[Dict[str, Any]]:
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def run(mode: Mode, config, workdir: str, *, allow_config_change: bool = False,
        overwrite: bool = False, cache: Optional[dict] = None) -> Dict[str, Any]:
  """Applies `mode` to the EMA weights of a trained run (restore.restore_ema: checkpoint
  eval.begin_ckpt, 0: the newest) and writes <workdir>/<mode>/<tag>/ckpt_<step>.json,
  <subset>_<step>.png pictures, outputs_<step>.npz (uint8 inputs and outputs, labels) and
  TensorBoard scalars <mode>/<subset>_<metric> and images. A checkpoint done before with these
  settings is not done again (its record is returned) unless overwrite. cache: a dict kept
  across calls (an experiment over several runs) so the compiled functions are reused."""
  restored = restore.restore_ema(config, workdir, allow_config_change=allow_config_change)
  r = restored.run
  if r.spec.is_points:
    raise ValueError(f"--mode={mode.name} is for image data, not {r.spec.dataset} points")
  section = config[mode.name]
  outdir = os.path.join(workdir, mode.name, settings_tag(config, mode.name))
  path = os.path.join(outdir, f"ckpt_{restored.step}.json")
  is_main = jax.process_index() == 0
  record = None if overwrite else _previous(path)
  if record is not None:
    if is_main:
      print(f"{summary_line(mode.name, record, path)} ({agreement.STORED})", flush=True)
    return record
  cache = {} if cache is None else cache
  key = (mode.name, settings_tag(config, mode.name), tuple(str(d) for d in r.devices))
  if key not in cache:
    weights = config.eval.classifier_weights
    if not weights and is_main:
      print(f"{mode.name}: nsfg_rate and class_agreement skipped: they need "
            "eval.classifier_weights (a classifier's workdir)", flush=True)
    judge = Judge(weights, r.spec, r.devices, config.eval.batch_size) if weights else None
    cache[key] = (parallel.data_parallel_map(mode.make_fn(restored, config), r.devices), judge)
  p_fn, judge = cache[key]
  p_variables = parallel.replicate(restored.ema_params, r.devices)
  run_key = jax.random.fold_in(r.init_key, STREAMS[mode.name])
  inverse = data.get_inverse_scaler(r.spec)
  record = {"step": restored.step, "params": "ema", "split": config.eval.bpd_dataset,
            **mode.describe(config)}
  arrays, pictures = {}, {}
  for i, subset in enumerate(SUBSETS):
    inputs = test_inputs(r.spec, config.eval.bpd_dataset, subset, section.num_images)
    x = data.model_inputs(dataclasses.replace(r.spec, uniform_dequantization=False),
                          inputs.images)
    out = run_batches(p_fn, p_variables, x, jax.random.fold_in(run_key, i), r.devices,
                      config.eval.batch_size, desc=f"{mode.name} {subset}", show=is_main)
    finite = np.all(np.isfinite(out["x"].reshape(len(x), -1)), axis=1)
    images = sample_lib.to_uint8(inverse(np.where(finite[:, None, None, None], out["x"], 0.0)))
    record[subset] = {**subset_metrics(inputs, images, judge, mode.weights(config, r.shape)),
                      "nonfinite_rate": float(1.0 - finite.mean())}
    if "nfe" in out:
      record[subset]["nfe"] = float(np.mean(out["nfe"]))
    arrays.update({f"{subset}_inputs": inputs.images, f"{subset}_outputs": images,
                   f"{subset}_labels": inputs.labels})
    pictures[subset] = picture(mode.grid_rows(inputs.images, images),
                               f"{mode.name} {subset.upper()} test images, step {restored.step}")
  if is_main:
    _write(outdir, path, record, arrays, pictures, mode.name)
    print(summary_line(mode.name, record, path), flush=True)
  return record


def _write(outdir: str, path: str, record: Dict[str, Any], arrays: Dict[str, np.ndarray],
           pictures: Dict[str, np.ndarray], name: str) -> None:
  step = record["step"]
  os.makedirs(outdir, exist_ok=True)
  np.savez(os.path.join(outdir, f"outputs_{step}.npz"), **arrays)
  for subset, pic in pictures.items():
    writer_lib.save_png(os.path.join(outdir, f"{subset}_{step}.png"), pic)
  with contextlib.closing(writer_lib.MetricWriter(outdir, keep=lambda s: s != step)) as w:
    w.scalars(step, _scalars(name, record))
    for subset, pic in pictures.items():
      w.image(step, f"{name}/{subset}", pic)
  with open(path, "w", encoding="utf-8") as f:  # last: its presence means "done"
    json.dump(record, f, indent=2)
