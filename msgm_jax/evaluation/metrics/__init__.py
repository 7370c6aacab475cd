"""Sample-quality metrics: Frechet distances, the FID Inception, dataset feature statistics.

  frechet.py        the Frechet distance (with and without the mean term), float64
  moments.py        streaming mean / covariance of features, float64
  inception.py      the FID Inception-v3 (pytorch-fid's graph) in Flax
  torch_pickle.py   a torch.save reader that runs no code from the file
  weights.py        pytorch-fid's weights file (.pth or .npz) -> the Flax variables
  extractors.py     the feature-extractor registry and a data-parallel runner
  classifier_features.py  a dataset classifier as extractors ("classifier", the NSFG decision)
  rates.py          a rate with its Wilson 95% interval (the NSFG rate)
  feature_stats.py  a dataset split's SFG / NSFG statistics, cached; stats files of other tools
  stats.py          the command: python -m msgm_jax.evaluation.metrics.stats --config=... --extractor=...
"""

from msgm_jax.evaluation.metrics import classifier_features  # registers the "classifier" extractor
from msgm_jax.evaluation.metrics.extractors import (EXTRACTORS, Extractor, ExtractorOptions,
                                         FeatureRunner, build_extractor, tree_digest)
from msgm_jax.evaluation.metrics.feature_stats import cache_name, dataset_stats, load_stats, save_stats
from msgm_jax.evaluation.metrics.frechet import (FrechetTerms, frechet_distance, frechet_distance_no_mean,
                                      frechet_terms)
from msgm_jax.evaluation.metrics.moments import FeatureStats, Moments, stats_of
from msgm_jax.evaluation.metrics.rates import rate_summary, wilson_interval

__all__ = [
    "EXTRACTORS", "Extractor", "ExtractorOptions", "FeatureRunner", "FeatureStats",
    "FrechetTerms", "Moments", "build_extractor", "cache_name", "classifier_features",
    "dataset_stats", "frechet_distance", "frechet_distance_no_mean", "frechet_terms",
    "load_stats", "rate_summary", "save_stats", "stats_of", "tree_digest", "wilson_interval",
]
