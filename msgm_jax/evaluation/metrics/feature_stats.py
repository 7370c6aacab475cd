"""Feature statistics of a dataset's SFG and NSFG images, computed once and cached.

The command is msgm_jax/evaluation/metrics/stats.py. For each subset, the images of the split (the
dataset's preprocessing: crop and resize to data.image_size, values / 255, no flips, no
dequantisation) go through the extractor data-parallel over the local devices, and the mean and
unbiased covariance of the features are accumulated in float64 (msgm_jax.evaluation.metrics.moments). The
result is written to <stats dir>/<name>.npz (eval.stats_dir, default <data cache
dir>/feature_stats), the name encoding dataset and resolution, split, subset with its NSFG
criterion, example count, extractor and weights digest (`cache_name`); an existing file is
reused (`dataset_stats(..., overwrite=False)`). `load_stats` also reads
pytorch-fid's statistics files (mu, sigma) and score_sde's `cifar10_stats.npz` (raw pool_3
activations under 'pool_3', turned into mean and covariance here).
"""

import os
import sys
from typing import Iterator, Tuple

import numpy as np

from msgm_jax import data
from msgm_jax.data import transforms
from msgm_jax.data.pipeline import default_cache_dir
from msgm_jax.evaluation.metrics import extractors as extractors_lib
from msgm_jax.evaluation.metrics.moments import FeatureStats, Moments, stats_of

SUBSETS = ("sfg", "nsfg", "all")
STATS_DIR_NAME = "feature_stats"


def cache_name(spec: data.DataSpec, split: str, subset: str, extractor: str, digest: str,
               num_examples: int = 0) -> str:
  """e.g. 'cifar10-32x32x3_train_sfg-nsfg1+5_all_inception-6726825d0af5f729.npz'."""
  h, w, c = data.data_shape(spec)
  if subset == "all":
    part = "all"
  else:
    classes, attribute = spec.nsfg_criterion()
    part = f"{subset}-nsfg{attribute or '+'.join(str(k) for k in classes)}"
  count = f"n{num_examples}" if num_examples else "all"
  return f"{spec.dataset}-{h}x{w}x{c}_{split}_{part}_{count}_{extractor}-{digest[:16]}.npz"


def default_stats_dir(spec: data.DataSpec) -> str:
  return os.path.join(spec.cache_dir or default_cache_dir(), STATS_DIR_NAME)


def save_stats(path: str, stats: FeatureStats, **meta: str) -> None:
  """Writes mu, sigma (float64), n and string metadata; atomically (tmp file, then rename)."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}.npz"
  np.savez(tmp, mu=stats.mu, sigma=stats.sigma, n=np.int64(stats.n),
           **{k: np.str_(v) for k, v in meta.items()})
  os.replace(tmp, path)


def load_stats(path: str) -> FeatureStats:
  """FeatureStats from this module's files, pytorch-fid's (mu, sigma) or score_sde's
  (pool_3 activations [N, D]: their mean and unbiased covariance in float64)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no feature statistics at {path}; compute them with python -m "
                            "msgm_jax.evaluation.metrics.stats --config=<config> --extractor=<name>")
  with np.load(path, allow_pickle=False) as f:
    if "mu" in f.files and "sigma" in f.files:
      n = int(f["n"]) if "n" in f.files else 0
      return FeatureStats(mu=f["mu"].astype(np.float64), sigma=f["sigma"].astype(np.float64),
                          n=n)
    if "pool_3" in f.files:
      return stats_of(f["pool_3"].reshape(len(f["pool_3"]), -1))
    raise ValueError(f"{path} has neither 'mu' and 'sigma' nor 'pool_3' (it has "
                     f"{', '.join(f.files)})")


def source_features(runner: extractors_lib.FeatureRunner, source: data.Source,
                    num_examples: int = 0, progress: bool = False) -> Iterator[np.ndarray]:
  """Features [B, D] of the first num_examples (0: all) uint8 images of a source (an eval
  source, or data.ArraySource over generated images), batch by batch, in order."""
  n = min(len(source), num_examples) if num_examples else len(source)
  batches = data.eval_batches(source, runner.batch_size, indices=np.arange(n))
  if progress:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    batches = tqdm(batches, total=-(-n // runner.batch_size), unit="batch", file=sys.stderr)
  for batch in batches:
    yield runner(transforms.to_unit_interval(batch["image"][batch["mask"]]))


def compute_stats(runner: extractors_lib.FeatureRunner, source: data.Source,
                  num_examples: int = 0, progress: bool = False) -> FeatureStats:
  """Feature statistics of the first num_examples (0: all) uint8 images of a source."""
  moments = Moments()
  for features in source_features(runner, source, num_examples, progress):
    moments.update(features)
  return moments.stats()


def dataset_stats(spec: data.DataSpec, split: str, subset: str,
                  runner: extractors_lib.FeatureRunner, stats_dir: str, *,
                  num_examples: int = 0, overwrite: bool = False,
                  progress: bool = False) -> Tuple[FeatureStats, str, bool]:
  """(stats, cache path, whether they were computed now) of one subset of a split."""
  if spec.is_points:
    raise ValueError(f"feature statistics are for image datasets, not {spec.dataset}")
  if subset not in SUBSETS:
    raise ValueError(f"unknown subset {subset!r}; valid: {', '.join(SUBSETS)}")
  ex = runner.extractor
  path = os.path.join(stats_dir, cache_name(spec, split, subset, ex.name, ex.digest,
                                            num_examples))
  if os.path.isfile(path) and not overwrite:
    return load_stats(path), path, False
  source = data.make_eval_source(spec, split, subset)
  if len(source) < 2:
    raise ValueError(f"the {subset.upper()} part of the {split!r} split of {spec.dataset} has "
                     f"{len(source)} images; check data.nsfg_classes / data.nsfg_attribute")
  stats = compute_stats(runner, source, num_examples, progress)
  save_stats(path, stats, dataset=spec.dataset, split=split, subset=subset,
             nsfg=str(spec.nsfg_criterion()), extractor=ex.name, digest=ex.digest,
             image_shape=str(data.data_shape(spec)))
  return stats, path, True
