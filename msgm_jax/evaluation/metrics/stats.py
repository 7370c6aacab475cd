"""The command that computes and caches a dataset's feature statistics (feature_stats.py).

  python -m msgm_jax.evaluation.metrics.stats --config=configs/<file>.py --extractor=inception \\
      --config.eval.inception_weights=<path> [--split=train] [--subsets=sfg,nsfg] \\
      [--num_examples=0] [--batch_size=0] [--overwrite]

Prints one line per subset with the cache file's path. The files go to eval.stats_dir
('' -> <data cache dir>/feature_stats, the data cache dir being $MSGM_JAX_CACHE or
~/.cache/msgm_jax); the extractor's weights come from eval.<extractor>_weights.
"""

import sys
import time
from typing import Optional, Sequence

import jax
from absl import app, flags
from ml_collections import config_flags

from msgm_jax import data
from msgm_jax.evaluation.metrics import classifier_features  # noqa: F401  (registers "classifier")
from msgm_jax.evaluation.metrics import extractors as extractors_lib
from msgm_jax.evaluation.metrics import feature_stats

FLAGS = flags.FLAGS


def _define_flags():
  config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).",
                                  lock_config=True)
  flags.DEFINE_string("extractor", "inception",
                      f"Feature extractor: {', '.join(extractors_lib.EXTRACTORS.names())}.")
  flags.DEFINE_string("split", "train", "Dataset split (FID statistics use 'train').")
  flags.DEFINE_list("subsets", ["sfg", "nsfg"],
                    f"Subsets, of {', '.join(feature_stats.SUBSETS)}.")
  flags.DEFINE_integer("num_examples", 0, "Use the first this many images (0: all).")
  flags.DEFINE_integer("batch_size", 0, "Global feature batch (0: eval.batch_size).")
  flags.DEFINE_bool("overwrite", False, "Recompute even if the cache file exists.")
  flags.mark_flags_as_required(["config"])


def run(config, extractor: str, split: str, subsets: Sequence[str], num_examples: int,
        batch_size: int, overwrite: bool, devices: Optional[Sequence] = None) -> list:
  """The command's work (config sections -> typed objects here); returns the cache paths."""
  spec = data.DataSpec.from_config(config.data)
  devices = devices or jax.local_devices()
  options = extractors_lib.ExtractorOptions.from_config(config.eval, extractor,
                                                        data.data_shape(spec))
  runner = extractors_lib.FeatureRunner(extractors_lib.build_extractor(extractor, options),
                                        devices, batch_size or int(config.eval.batch_size))
  stats_dir = config.eval.get("stats_dir", "") or feature_stats.default_stats_dir(spec)
  paths = []
  for subset in subsets:
    start = time.time()
    stats, path, fresh = feature_stats.dataset_stats(spec, split, subset, runner, stats_dir,
                                                     num_examples=num_examples,
                                                     overwrite=overwrite, progress=True)
    how = f"computed in {time.time() - start:.1f} s" if fresh else "cached"
    print(f"{subset}: {stats.n} images, {stats.dim}-d features, {how}: {path}")
    paths.append(path)
  return paths


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    run(FLAGS.config, FLAGS.extractor, FLAGS.split, FLAGS.subsets, FLAGS.num_examples,
        FLAGS.batch_size, FLAGS.overwrite)
  except (ValueError, FileNotFoundError) as e:
    print(f"msgm_jax.evaluation.metrics.stats: error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
