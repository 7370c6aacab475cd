"""The data entry points the training and evaluation code call.

`DataSpec.from_config(config.data)` is the one place a config section is read; everything
else takes the typed spec. Shapes: images are [B, H, W, C] float32 in model space ([-1, 1]
when centred, else [0, 1]); toy2d points are [B, 2] float32 (never rescaled).
"""

import dataclasses
import os
from typing import Callable, Iterator, Optional, Sequence, Tuple

import numpy as np

from msgm_jax.data import mixture as mixture_lib
from msgm_jax.data import split as split_lib
from msgm_jax.data import stream as stream_lib
from msgm_jax.data import transforms
from msgm_jax.data.datasets import DatasetDef, canonical_name, get_dataset
from msgm_jax.data.sources import ArraySource, Source

SUBSETS = ("all", "sfg", "nsfg")
_TOY_EVAL_SPLIT_SEEDS = {"train": 0, "test": 1}


def default_cache_dir() -> str:
  """$MSGM_JAX_CACHE, else $XDG_CACHE_HOME/msgm_jax, else ~/.cache/msgm_jax (label caches)."""
  if os.environ.get("MSGM_JAX_CACHE"):
    return os.environ["MSGM_JAX_CACHE"]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "msgm_jax")


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """What data a run uses and how it is preprocessed.

  dataset: any accepted spelling ('CIFAR10', 'celeb_a', 'toy2d'); stored canonical.
  image_size / num_channels: 0 -> the dataset's own (after its centre crop). random_flip:
  horizontal flips in training streams. centered: model space [-1, 1] instead of [0, 1].
  uniform_dequantization: training streams yield (x + u) / 256 (score_sde); evaluation calls
  `transforms.dequantize` explicitly. nsfg_classes / nsfg_attribute: the NSFG criterion;
  datasets with attributes (CelebA) use the attribute (default 'Bangs') and ignore classes,
  others use classes (toy2d: mixture components); empty -> the dataset's default.
  cache_dir: where TFDS label columns are cached (None: no cache). mixture: toy2d's data model
  (None -> TOY2D_MIXTURE). toy_eval_size: points in a toy2d evaluation split.
  """

  dataset: str
  data_dir: str = ""
  image_size: int = 0
  num_channels: int = 0
  random_flip: bool = False
  centered: bool = False
  uniform_dequantization: bool = False
  nsfg_classes: Tuple[int, ...] = ()
  nsfg_attribute: str = ""
  cache_dir: Optional[str] = None
  mixture: Optional[mixture_lib.GaussianMixture] = None
  toy_eval_size: int = 10_000

  def __post_init__(self):
    d = get_dataset(self.dataset)  # ValueError listing valid names
    object.__setattr__(self, "dataset", d.name)
    object.__setattr__(self, "nsfg_classes", tuple(int(c) for c in self.nsfg_classes))
    if d.kind == "image" and self.num_channels and self.num_channels != d.shape[-1]:
      raise ValueError(f"dataset {d.name!r} has {d.shape[-1]} channels; got num_channels="
                       f"{self.num_channels} (set data.num_channels = {d.shape[-1]})")

  @classmethod
  def from_config(cls, data_cfg) -> "DataSpec":
    """Builds the spec from a `config.data` section (presets.base field names).

    Optional extra fields: cache_dir ('' -> default_cache_dir()), toy_means / toy_stds /
    toy_weights (a custom toy2d mixture), toy_eval_size.
    """
    get = data_cfg.get
    toy = None
    if get("toy_means", None) is not None:
      toy = mixture_lib.GaussianMixture(get("toy_means"), get("toy_stds"), get("toy_weights"))
    return cls(
        dataset=data_cfg.dataset, data_dir=get("data_dir", "") or "",
        image_size=int(get("image_size", 0) or 0), num_channels=int(get("num_channels", 0) or 0),
        random_flip=bool(get("random_flip", False)), centered=bool(get("centered", False)),
        uniform_dequantization=bool(get("uniform_dequantization", False)),
        nsfg_classes=tuple(get("nsfg_classes", ()) or ()),
        nsfg_attribute=get("nsfg_attribute", "") or "",
        cache_dir=get("cache_dir", "") or default_cache_dir(), mixture=toy,
        toy_eval_size=int(get("toy_eval_size", 10_000)))

  @property
  def definition(self) -> DatasetDef:
    return get_dataset(self.dataset)

  @property
  def is_points(self) -> bool:
    return self.definition.kind == "points"

  def nsfg_criterion(self) -> Tuple[Tuple[int, ...], str]:
    """(classes, attribute) actually used to split, after dataset defaults; one is empty."""
    d = self.definition
    if d.attributes_key:
      return (), self.nsfg_attribute or d.nsfg_attribute
    if self.nsfg_attribute:
      raise ValueError(f"dataset {d.name!r} has no attributes; use nsfg_classes instead of "
                       f"nsfg_attribute={self.nsfg_attribute!r}")
    classes = self.nsfg_classes or d.nsfg_classes
    if not classes:
      raise ValueError(f"dataset {d.name!r} has no default NSFG classes; set data.nsfg_classes")
    return classes, ""

  def toy_mixture(self) -> mixture_lib.GaussianMixture:
    return self.mixture if self.mixture is not None else mixture_lib.TOY2D_MIXTURE

  def preprocess(self) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 [H, W, C] -> uint8 data_shape(spec): the dataset's centre crop, then resize."""
    crop, size = self.definition.crop, data_shape(self)[0]

    def fn(image: np.ndarray) -> np.ndarray:
      if crop:
        image = transforms.center_crop(image, crop)
      return transforms.resize(image, size)

    return fn


def data_shape(spec: DataSpec) -> Tuple[int, ...]:
  """(2,) for toy2d (the mixture's dimension); (H, W, C) for images after preprocessing."""
  d = spec.definition
  if d.kind == "points":
    return (spec.toy_mixture().dim,)
  size = spec.image_size or d.crop or d.shape[0]
  return (size, size, d.shape[-1])


def get_scaler(spec: DataSpec) -> Callable:
  """[0, 1] images -> model space; identity for toy2d."""
  return transforms.get_data_scaler(spec.centered and not spec.is_points)


def get_inverse_scaler(spec: DataSpec) -> Callable:
  """Model space -> [0, 1] images, for sample grids (not clipped); identity for toy2d."""
  return transforms.get_data_inverse_scaler(spec.centered and not spec.is_points)


def _components(spec: DataSpec) -> Tuple[np.ndarray, np.ndarray]:
  """toy2d: (sfg components, nsfg components) of the mixture."""
  nsfg = np.asarray(spec.nsfg_criterion()[0], dtype=np.int64)
  every = np.arange(spec.toy_mixture().num_components)
  if not np.all(np.isin(nsfg, every)):
    raise ValueError(f"toy2d NSFG components {tuple(nsfg)} are not in 0..{every[-1]}; set "
                     f"data.nsfg_classes, e.g. {mixture_lib.TOY2D_NSFG_COMPONENTS}")
  return np.setdiff1d(every, nsfg), nsfg


def make_train_streams(spec: DataSpec, *, regime: str, batch_size: int,
                       nsfg_batch_size: Optional[int] = None, seed: int,
                       start_position: int = 0, nsfg_start_position: Optional[int] = None,
                       process_index: int = 0, process_count: int = 1
                       ) -> Tuple[stream_lib.Stream, Optional[stream_lib.Stream]]:
  """(main stream, NSFG stream or None) for a training regime (docs/method.md section 1).

  main: all data ('standard') or SFG only ('unseen', 'msgm'); the NSFG stream exists only for
  'msgm'. Batch sizes are global (summed over processes); nsfg_batch_size None or 0 ->
  batch_size. start_position: batches already consumed (the resume point); the NSFG stream
  resumes at nsfg_start_position (default: the same). Each stream's `batch(k)` is
  {'image': float32 [B_local, *data_shape(spec)], 'label': int32 [B_local]}.
  """
  split_lib.check_regime(regime)
  nsfg_batch_size = nsfg_batch_size or batch_size
  nsfg_start = start_position if nsfg_start_position is None else nsfg_start_position
  shard = dict(seed=seed, process_index=process_index, process_count=process_count)
  if spec.is_points:
    sfg_c, nsfg_c = _components(spec)
    every = np.arange(spec.toy_mixture().num_components)
    main_c = every if regime == "standard" else sfg_c
    main = stream_lib.MixtureStream(spec.toy_mixture(), main_c, batch_size=batch_size,
                                    start_position=start_position, **shard)
    nsfg = None
    if regime == "msgm":
      nsfg = stream_lib.MixtureStream(spec.toy_mixture(), nsfg_c, batch_size=nsfg_batch_size,
                                      tag=stream_lib.NSFG_TAG, start_position=nsfg_start, **shard)
    return main, nsfg
  source = spec.definition.load("train", spec.data_dir, spec.cache_dir)
  sfg_idx = nsfg_idx = None
  if regime != "standard":  # 'standard' needs no labels: skip the O(N) label scan
    sfg_idx, nsfg_idx = split_lib.split_indices(source, *spec.nsfg_criterion())
  main_idx, nsfg_set = split_lib.regime_sets(regime, len(source), sfg_idx, nsfg_idx)
  image = dict(preprocess=spec.preprocess(), random_flip=spec.random_flip,
               uniform_dequantization=spec.uniform_dequantization, scaler=get_scaler(spec),
               **shard)
  main = stream_lib.IndexStream(source, main_idx, batch_size=batch_size,
                                start_position=start_position, **image)
  nsfg = None
  if nsfg_set is not None:
    nsfg = stream_lib.IndexStream(source, nsfg_set, batch_size=nsfg_batch_size,
                                  tag=stream_lib.NSFG_TAG, start_position=nsfg_start, **image)
  return main, nsfg


class SubsetSource:
  """The examples `indices` of a Source, with images passed through `preprocess`."""

  def __init__(self, source: Source, indices: np.ndarray, preprocess: Callable):
    self.source, self.indices, self.preprocess = source, np.asarray(indices, np.int64), preprocess

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i: int) -> dict:
    ex = self.source[int(self.indices[i])]
    return {"image": self.preprocess(np.asarray(ex["image"])), "label": int(ex["label"])}

  def labels(self) -> np.ndarray:
    return self.source.labels()[self.indices]

  def attribute(self, name: str) -> np.ndarray:
    return self.source.attribute(name)[self.indices]


def make_eval_source(spec: DataSpec, split: str = "test", subset: str = "all") -> Source:
  """A finite, ordered Source for likelihood evaluation; no flips, no dequantisation.

  Images: uint8 data_shape(spec) (cropped / resized); convert with `model_inputs`. toy2d:
  `toy_eval_size` float32 points [2], fixed per split, drawn from the subset's components.
  subset: 'all', 'sfg' or 'nsfg'.
  """
  if subset not in SUBSETS:
    raise ValueError(f"unknown subset {subset!r}; valid: {', '.join(SUBSETS)}")
  if spec.is_points:
    spec.definition.tfds_split(split)  # validates the split name
    sfg_c, nsfg_c = _components(spec)
    comps = {"all": np.arange(spec.toy_mixture().num_components), "sfg": sfg_c, "nsfg": nsfg_c}
    sub = spec.toy_mixture().restrict(comps[subset])
    rng = stream_lib.rng_for(_TOY_EVAL_SPLIT_SEEDS[split])
    x, c = sub.sample(rng, spec.toy_eval_size)
    return ArraySource(x.astype(np.float32), comps[subset][c])
  source = spec.definition.load(split, spec.data_dir, spec.cache_dir)
  if subset == "all":
    indices = np.arange(len(source))
  else:
    sfg_idx, nsfg_idx = split_lib.split_indices(source, *spec.nsfg_criterion())
    indices = sfg_idx if subset == "sfg" else nsfg_idx
  return SubsetSource(source, indices, spec.preprocess())


def model_inputs(spec: DataSpec, images: np.ndarray,
                 rng: Optional[np.random.Generator] = None) -> np.ndarray:
  """Evaluation images (uint8 values) -> float32 model space.

  With spec.uniform_dequantization an explicit rng is required: (x + u) / 256 then scaler.
  toy2d points pass through unchanged.
  """
  if spec.is_points:
    return np.asarray(images, dtype=np.float32)
  if spec.uniform_dequantization:
    if rng is None:
      raise ValueError("uniform_dequantization needs an explicit numpy Generator rng")
    x = transforms.dequantize(images, rng)
  else:
    x = transforms.to_unit_interval(images)
  return np.asarray(get_scaler(spec)(x), dtype=np.float32)


def eval_batches(source: Source, batch_size: int, *, process_index: int = 0,
                 process_count: int = 1, indices: Optional[Sequence[int]] = None
                 ) -> Iterator[dict]:
  """Ordered global batches of `source` (all of it, or `indices`), this process's rows.

  Yields {'image': [B_local, ...] (source dtype), 'label': int32 [B_local], 'mask': bool
  [B_local]}. The last batch is padded by repeating the first example, with mask False, so
  every batch has one shape (one compilation) and no example is counted twice.
  """
  rows = stream_lib.local_rows(batch_size, process_index, process_count)
  order = np.arange(len(source)) if indices is None else np.asarray(indices, np.int64)
  for start in range(0, len(order), batch_size):
    chunk = order[start:start + batch_size]
    mask = np.arange(batch_size) < len(chunk)
    padded = np.concatenate([chunk, np.full(batch_size - len(chunk), order[0])])
    examples = [source[int(i)] for i in padded[rows]]
    yield {"image": np.stack([np.asarray(ex["image"]) for ex in examples]),
           "label": np.array([ex["label"] for ex in examples], np.int32), "mask": mask[rows]}
