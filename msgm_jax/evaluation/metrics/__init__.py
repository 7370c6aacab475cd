"""Sample-quality metrics: Frechet distances, the FID Inception, dataset feature statistics.

  frechet.py        the Frechet distance (with and without the mean term), float64
  moments.py        streaming mean / covariance of features, float64
  inception.py      the FID Inception-v3 (pytorch-fid's graph) in Flax
  weights.py        pytorch-fid's weights file (.pth or .npz) -> the Flax variables
  extractors.py     the feature-extractor registry and a data-parallel runner
  classifier_features.py  a dataset classifier as extractors ("classifier", the NSFG decision)
  rates.py          a rate with its Wilson 95% interval (the NSFG rate)
  feature_stats.py  a dataset split's SFG / NSFG statistics, cached; stats files of other tools
  stats.py          the command: python -m msgm_jax.evaluation.metrics.stats --config=... --extractor=...
"""

from msgm_jax import lazy

# Public names, imported on first use (msgm_jax/lazy.py).
_WHERE = {
    "EXTRACTORS": "msgm_jax.evaluation.metrics.extractors",
    "Extractor": "msgm_jax.evaluation.metrics.extractors",
    "ExtractorOptions": "msgm_jax.evaluation.metrics.extractors",
    "FeatureRunner": "msgm_jax.evaluation.metrics.extractors",
    "FeatureStats": "msgm_jax.evaluation.metrics.moments",
    "FrechetTerms": "msgm_jax.evaluation.metrics.frechet",
    "Moments": "msgm_jax.evaluation.metrics.moments",
    "build_extractor": "msgm_jax.evaluation.metrics.extractors",
    "cache_name": "msgm_jax.evaluation.metrics.feature_stats",
    "classifier_features": "msgm_jax.evaluation.metrics.classifier_features",
    "dataset_stats": "msgm_jax.evaluation.metrics.feature_stats",
    "frechet_distance": "msgm_jax.evaluation.metrics.frechet",
    "frechet_distance_no_mean": "msgm_jax.evaluation.metrics.frechet",
    "frechet_terms": "msgm_jax.evaluation.metrics.frechet",
    "load_stats": "msgm_jax.evaluation.metrics.feature_stats",
    "rate_summary": "msgm_jax.evaluation.metrics.rates",
    "save_stats": "msgm_jax.evaluation.metrics.feature_stats",
    "stats_of": "msgm_jax.evaluation.metrics.moments",
    "tree_digest": "msgm_jax.evaluation.metrics.extractors",
    "wilson_interval": "msgm_jax.evaluation.metrics.rates",
}
__getattr__, __all__ = lazy.exports(__name__, _WHERE)
