"""Sample-based metrics of eval mode: what a dataset classifier and feature statistics say
about generated images (docs/method.md section 8).

For uint8 images [N, H, W, C] (generated samples after the data's inverse scaler, as sample
mode saves them; real images go through the same path):
- nsfg_rate: the share the dataset classifier assigns to an NSFG class (argmax in
  data.nsfg_classes; CelebA: P(Bangs) > 0.5), with its Wilson 95% interval (nsfg_rate_ci),
  nsfg_rate_count and nsfg_rate_n; with eval.nsfg_detector='factored' (colour digits only) the
  factored detector decides instead (colour by rule, shape by the digits classifier at
  eval.detector_weights; msgm_jax/evaluation/classifier/factors.py);
- fd_classifier, fd_classifier_nsfg: the Frechet distance (with the mean term) between the
  images' features in the classifier's penultimate layer and those of the real SFG / NSFG
  images of the eval split (eval.bpd_dataset); fd_classifier_no_mean without the mean term;
- fid, fid_nsfg, fid_no_mean: the same with the FID Inception's pool_3 features, against the
  eval.fid_split statistics (FID's usual reference is the training set).
Reference statistics are computed once and cached (metrics.dataset_stats, eval.stats_dir).
`real_rates` is the classifier's NSFG rate on the real SFG images of the eval split (the floor:
what a perfect generator of SFG data would get) and on its real NSFG images (the recall).

Switches, config.eval.nsfg_rate / fd_classifier / fid: 'auto' computes a metric when its
weights are configured (eval.classifier_weights, a classifier's workdir; eval.detector_weights
for the factored nsfg_rate; eval.inception_weights)
and skips it with one logged line otherwise; 'on' requires them (a start-up error naming the
field); 'off' never computes it. Image data only: for toy2d points 'auto' metrics are skipped.
"""

import dataclasses
from typing import Dict, List, Sequence, Tuple

import numpy as np
from absl import logging

from msgm_jax import data
from msgm_jax.config import validate
from msgm_jax.config.validate import NSFG_DETECTORS, SWITCHES
from msgm_jax.evaluation.classifier import load_classifier
from msgm_jax.evaluation.metrics import (classifier_features, extractors, feature_stats, frechet,
                                         rates)

# metric -> the extractor whose weights (eval.<name>_weights) it needs (nsfg_rate with the
# factored detector: "detector", SampleMetricSettings.needs).
NEEDS = {"nsfg_rate": "classifier", "fd_classifier": "classifier", "fid": "inception"}
_WHERE = {"classifier": "a classifier's workdir (train one with python -m msgm_jax.main "
                        "--config=configs/classifier/<dataset>.py --workdir=<dir>)",
          "detector": "the digits classifier's workdir (python -m msgm_jax.main "
                      "--config=configs/classifier/digits.py --workdir=<dir>)",
          "inception": "pytorch-fid's pt_inception-2015-12-05-6726825d.pth (README: FID)"}


@dataclasses.dataclass(frozen=True)
class SampleMetricSettings:
  """switches: (metric, 'auto' | 'on' | 'off') for each of NEEDS; weights: (extractor, path);
  detector: who decides NSFG for nsfg_rate (validate.NSFG_DETECTORS); split: the eval split (floor, recall and the fd_classifier reference); fid_split: FID's
  reference split; stats_dir: the statistics cache ('' -> default); batch_size: the global
  feature batch (a multiple of the local devices)."""

  switches: Tuple[Tuple[str, str], ...] = tuple((m, "auto") for m in NEEDS)
  weights: Tuple[Tuple[str, str], ...] = (("classifier", ""), ("detector", ""),
                                           ("inception", ""))
  detector: str = "classifier"
  split: str = "test"
  fid_split: str = "train"
  stats_dir: str = ""
  batch_size: int = 128

  @classmethod
  def from_config(cls, eval_cfg) -> "SampleMetricSettings":
    return cls(switches=tuple((m, str(eval_cfg.get(m, "auto")).lower()) for m in NEEDS),
               weights=tuple((e, str(eval_cfg.get(f"{e}_weights", "") or ""))
                             for e in ("classifier", "detector", "inception")),
               detector=str(eval_cfg.get("nsfg_detector", "classifier")).lower(),
               split=eval_cfg.bpd_dataset, fid_split=eval_cfg.get("fid_split", "train"),
               stats_dir=eval_cfg.get("stats_dir", ""), batch_size=int(eval_cfg.batch_size))

  def weights_of(self, extractor: str) -> str:
    return dict(self.weights)[extractor]

  def needs(self, metric: str) -> str:
    """The extractor whose weights a metric needs."""
    if metric == "nsfg_rate" and self.detector == "factored":
      return "detector"
    return NEEDS[metric]

  def chosen(self, is_points: bool) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """(the metrics to compute, one notice per 'auto' metric skipped). ValueError (one line
    naming the fix) for an 'on' metric that cannot run."""
    if self.detector not in NSFG_DETECTORS:
      raise ValueError(f"eval.nsfg_detector={self.detector!r} must be one of "
                       f"{', '.join(NSFG_DETECTORS)}")
    todo, notices = [], []
    for metric, switch in self.switches:
      if switch not in SWITCHES:
        raise ValueError(f"eval.{metric}={switch!r} must be one of {', '.join(SWITCHES)}")
      needed = self.needs(metric)
      field = f"eval.{needed}_weights"
      if is_points:
        missing, fix = "image data, not toy2d points", ""
      elif not self.weights_of(needed):
        missing, fix = field, f"set --config.{field}=<{_WHERE[needed]}>, or "
      else:
        missing = fix = ""
      if switch == "off":
        continue
      if not missing:
        todo.append(metric)
      elif switch == "on":
        raise ValueError(f"config field eval.{metric}='on' needs {missing}; {fix}set "
                         f"--config.eval.{metric}=auto to skip it when it cannot run")
      else:
        notices.append(f"eval: {metric} skipped: it needs {missing} (eval.{metric}=off "
                       "silences this line)")
    return tuple(todo), tuple(notices)


class SampleMetrics:
  """The sample-based metrics `metrics` (a subset of NEEDS) for one dataset.

  Loads the classifier (checked against spec: ClassifierMismatch for other data) and the
  Inception once, and computes or reads the reference statistics; each call then measures a
  set of images. Extractors run data-parallel over `devices` (metrics.FeatureRunner).
  """

  def __init__(self, spec: data.DataSpec, settings: SampleMetricSettings, devices: Sequence,
               metrics: Sequence[str], *, progress: bool = False):
    self.spec, self.settings, self.metrics, self.progress = spec, settings, tuple(metrics), progress
    clf = None
    if any(settings.needs(m) == "classifier" for m in self.metrics):
      clf = load_classifier(settings.weights_of("classifier"), spec)

    def runner(ex):
      return extractors.FeatureRunner(ex, devices, settings.batch_size)

    self.nsfg = (runner(self._nsfg_extractor(clf)) if "nsfg_rate" in self.metrics else None)
    self.frechet = {}  # name -> (runner, {'sfg': FeatureStats, 'nsfg': FeatureStats})
    if "fd_classifier" in self.metrics:
      self.frechet["fd_classifier"] = self._with_reference(
          runner(classifier_features.feature_extractor(clf)), settings.split)
    if "fid" in self.metrics:
      options = extractors.ExtractorOptions(weights=settings.weights_of("inception"),
                                            image_shape=data.data_shape(spec))
      self.frechet["fid"] = self._with_reference(
          runner(extractors.build_extractor("inception", options)), settings.fid_split)
    self._real = None

  def _nsfg_extractor(self, clf) -> extractors.Extractor:
    if self.settings.detector == "factored":
      digits = load_classifier(self.settings.weights_of("detector"),
                               data.DataSpec("digits", nsfg_classes=(0,)))
      return classifier_features.factored_nsfg_extractor(digits, self.spec)
    return classifier_features.nsfg_extractor(clf, self.spec)

  def _with_reference(self, runner, split: str):
    stats_dir = self.settings.stats_dir or feature_stats.default_stats_dir(self.spec)
    refs = {}
    for subset in ("sfg", "nsfg"):
      refs[subset], path, fresh = feature_stats.dataset_stats(
          self.spec, split, subset, runner, stats_dir, progress=self.progress)
      logging.info("%s reference (%s %s, %d images): %s %s", runner.extractor.name, split,
                   subset, refs[subset].n, "computed" if fresh else "cached", path)
    return runner, refs

  def _flags(self, source: data.Source) -> np.ndarray:
    """bool [N]: the classifier's NSFG decision for each image of a uint8 source."""
    return np.concatenate(list(feature_stats.source_features(self.nsfg, source)))[:, 0] > 0.5

  def real_rates(self) -> Dict[str, Dict]:
    """{'sfg': rate_summary (the floor), 'nsfg': rate_summary (the recall)} of the classifier
    on the real images of the eval split; {} without nsfg_rate. Computed once."""
    if self.nsfg is None:
      return {}
    if self._real is None:
      self._real = {s: rates.rate_summary(self._flags(data.make_eval_source(
          self.spec, self.settings.split, s))) for s in ("sfg", "nsfg")}
    return self._real

  def __call__(self, images: np.ndarray) -> Dict[str, object]:
    """images: uint8 [N, H, W, C] -> {metric: value} (see the module docstring)."""
    source = data.ArraySource(np.asarray(images), np.zeros(len(images), np.int64))
    out = {}
    if self.nsfg is not None:
      out.update(rates.rate_summary(self._flags(source)))
    for name, (runner, refs) in self.frechet.items():
      stats = feature_stats.compute_stats(runner, source)
      terms = frechet.frechet_terms(stats.mu, stats.sigma, refs["sfg"].mu, refs["sfg"].sigma)
      out[name], out[f"{name}_no_mean"] = terms.distance, terms.cov
      out[f"{name}_nsfg"] = frechet.frechet_distance(stats.mu, stats.sigma, refs["nsfg"].mu,
                                                     refs["nsfg"].sigma)
    return out


def build(eval_cfg, spec: data.DataSpec, devices: Sequence, *,
          progress: bool = False) -> Tuple[SampleMetrics, List[str]]:
  """eval config section -> (SampleMetrics or None when no metric is chosen, notices)."""
  settings = SampleMetricSettings.from_config(eval_cfg)
  chosen, notices = settings.chosen(spec.is_points)
  metrics = SampleMetrics(spec, settings, devices, chosen, progress=progress) if chosen else None
  return metrics, list(notices)


@validate.CHECKS.register("sample_metrics")
def _startup_check(config) -> None:
  """Start-up (config/validate.py): an eval metric switched 'on' has its weights and image
  data; FID's split exists."""
  spec = data.DataSpec.from_config(config.data)
  chosen, _ = SampleMetricSettings.from_config(config.eval).chosen(spec.is_points)
  if "fid" in chosen:
    spec.definition.tfds_split(config.eval.get("fid_split", "train"))
