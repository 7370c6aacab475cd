"""Sample mode: draws eval.num_samples samples from one checkpoint's EMA parameters.

  python -m msgm_jax.main --config=<file> --workdir=<run dir> --mode=sample

Checkpoint: step eval.begin_ckpt when it is non-zero (it must exist and read), else the newest
intact one (a damaged newer one is moved aside, msgm_jax/training/checkpoint.py). The config must agree
with the run's (msgm_jax/config/agreement.py). The sampler is config.sampling's (pc or ode), pmapped
over the devices of every process by parallel.data_parallel_sampler, sampling.batch_size
samples per call (rounded up to a multiple of the devices), repeated until eval.num_samples
in all, with a progress bar; process 0 writes the files.
Writes <workdir>/samples/eval_<step>_<tag>.npz, <tag> naming the settings that determine the
samples (sample_tag: the sampling and adjust sections, eval.num_samples, the seed, the data,
the model and the SDE), with 'samples' (model space, float32 [N, *data shape]), 'settings'
(those fields, a JSON string) and, for images, 'images' (uint8 [N, H, W, C]: score_sde's clip(x * 255, 0, 255)
after the inverse scaler, truncated), and eval_<step>_<tag>.png (a grid of the first 256
images, or a scatter plot of all 2-D points). A rerun with the same checkpoint and settings
prints where the samples are and draws nothing (as every mode's rerun, agreement.STORED);
overwrite (--overwrite) draws and replaces them.

The sampling loop (`draw_samples`, `draw`) is also eval mode's (msgm_jax/evaluation/eval_mode.py), which
passes a store directory: each finished batch is kept on disk there, and a rerun after a
preemption reads them and draws only the rest (the same samples as an uninterrupted run).
"""

import json
import os
from typing import Callable, Optional, Tuple

import jax
import numpy as np
from absl import logging

from msgm_jax import data
from msgm_jax.config import agreement
from msgm_jax.config import builders
from msgm_jax.runtime import distributed
from msgm_jax.runtime import parallel
from msgm_jax.training import progress
from msgm_jax.training import restore
from msgm_jax.training import loop as train
from msgm_jax.training.restore import pick_step  # noqa: F401  (sample.pick_step, as before)
from msgm_jax.training import writer as writer_lib

SAMPLE_STREAM = 2  # folded into the init key (evaluation uses 1; training its own key)
GRID_MAX = 256  # images in the PNG grid


_SAMPLER_FIELDS = ("seed", "sampling.", "adjust.", "training.sde", "training.continuous",
                   "data.", "model.")


def _not_in_tag(config) -> tuple:
  """Fields that do not change the samples: where the data lives, and the sampling fields
  that sampling.method does not read (so that adding them kept the names of earlier runs)."""
  return ("data.data_dir", "data.cache_dir") + builders.unused_sampling_fields(config.sampling)


def sample_tag(config) -> str:
  """Names the settings that determine the samples (see the module docstring)."""
  return agreement.settings_tag(config, _SAMPLER_FIELDS + ("eval.num_samples",),
                                exclude=_not_in_tag(config))


def store_dir(root: str, config, step: int, n_devices: int) -> str:
  """Where draw() keeps the finished batches of one checkpoint's samples: named by the
  settings that determine batch i (the sampler, seed, data, model and SDE, and the device
  count, since each device draws its own stream) but not the number of samples, so a larger
  eval.num_samples reuses the batches drawn before."""
  tag = agreement.settings_tag(config, _SAMPLER_FIELDS, exclude=_not_in_tag(config))
  return os.path.join(root, f"{tag}_{n_devices}dev", f"step_{step}")


def sample_paths(outdir: str, step: int, tag: str) -> Tuple[str, str]:
  return tuple(os.path.join(outdir, f"eval_{step}_{tag}.{ext}") for ext in ("npz", "png"))


def _stored_batch(store: str, i: int) -> Optional[np.ndarray]:
  path = os.path.join(store, f"batch_{i:06d}.npy")
  if not os.path.exists(path):
    return None
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:  # a damaged file: draw that batch again
    logging.warning("sample batch %s is unreadable (%s); drawing it again", path, e)
    return None


def _store_batch(store: str, i: int, x: np.ndarray) -> None:
  """Writes batch i atomically (a temporary file, then a rename): a kill leaves the batch
  complete or absent, never half written."""
  os.makedirs(store, exist_ok=True)
  path = os.path.join(store, f"batch_{i:06d}.npy")
  tmp = f"{path}.tmp{os.getpid()}.npy"
  np.save(tmp, x)
  os.replace(tmp, path)


def draw(sampler: Callable, p_variables, key: jax.Array, num_samples: int,
         on_batch: Optional[Callable[[int], None]] = None,
         store: Optional[str] = None) -> np.ndarray:
  """Calls sampler(fold_in(key, i), p_variables) -> [n_local, b, ...] for i = 0, 1, ...
  until num_samples (then on_batch(i + 1), for progress); returns the first num_samples of
  all processes, [num_samples, ...] numpy, on every process (the same as one process over the
  same number of devices draws).

  store: a directory (e.g. store_dir(...)) that keeps each finished batch i; batches found
  there are read instead of drawn, so a rerun after a preemption continues where it stopped
  and ends with the samples of an uninterrupted run (batch i depends on (key, i) only).
  With several processes (a shared store) process 0 writes, and a batch is read only where
  every process can read it (drawing is a collective: all draw it or none).
  """
  chunks, have, i = [], 0, 0
  while have < num_samples:
    x = None if store is None else _stored_batch(store, i)
    if store is None or not distributed.all_agree(x is not None):
      x = parallel.gather(sampler(jax.random.fold_in(key, i), p_variables))
      x = x.reshape((-1,) + x.shape[2:])
      if store is not None and jax.process_index() == 0:
        _store_batch(store, i, x)
    if chunks and x.shape != chunks[0].shape:
      raise ValueError(f"sample batch {i} has shape {x.shape}, batch 0 {chunks[0].shape}; "
                       f"{store} holds batches of other settings: delete it")
    chunks.append(x)
    have, i = have + len(x), i + 1
    if on_batch is not None:
      on_batch(i)
  return np.concatenate(chunks)[:num_samples]


def read_store(store: str, num_samples: int) -> np.ndarray:
  """The first num_samples samples kept in a store by draw(); ValueError if it has fewer."""
  chunks, have, i = [], 0, 0
  while have < num_samples:
    x = _stored_batch(store, i)
    if x is None:
      raise ValueError(f"{store} holds {have} samples, fewer than {num_samples}; draw them first")
    chunks.append(x)
    have, i = have + len(x), i + 1
  return np.concatenate(chunks)[:num_samples]


def sample_key(run: train.Run) -> jax.Array:
  """The samples' stream: sample mode and eval mode draw the same samples of a checkpoint."""
  return jax.random.fold_in(run.init_key, SAMPLE_STREAM)


def draw_samples(run: train.Run, p_ema, num_samples: int, *, desc: str,
                 store: Optional[str] = None, adjust=None,
                 sampler: Optional[Callable] = None) -> np.ndarray:
  """num_samples [N, *data shape] (model space) from replicated EMA variables with the
  config's sampler (adjusted by `adjust`; or a `sampler` built before by train.make_sampler,
  to reuse its compilation), data-parallel over run.devices, sampling.batch_size per call,
  with a progress bar (process 0) and, with `store`, resumable (see draw)."""
  per_call = -(-run.config.sampling.batch_size // run.n_global) * run.n_global
  sampler = sampler or train.make_sampler(run, adjust)
  with progress.Progress(-(-num_samples // per_call), enabled=jax.process_index() == 0,
                         desc=desc, unit="batch") as bar:
    return draw(sampler, p_ema, sample_key(run), num_samples, on_batch=bar.update, store=store)


def to_uint8(images: np.ndarray) -> np.ndarray:
  """[0, 1] floats -> uint8 as score_sde saves samples: clip(x * 255, 0, 255), truncated."""
  return np.clip(np.asarray(images) * 255.0, 0, 255).astype(np.uint8)


def save_samples(paths: Tuple[str, str], step: int, samples: np.ndarray, spec: data.DataSpec,
                 settings: Optional[dict] = None) -> Tuple[str, str]:
  """Writes the npz and the png of `paths` (see sample_paths); returns them."""
  npz, png = paths
  os.makedirs(os.path.dirname(npz) or ".", exist_ok=True)
  inverse = data.get_inverse_scaler(spec)
  arrays = {"samples": samples.astype(np.float32)}
  if settings is not None:
    arrays["settings"] = np.asarray(json.dumps(settings, sort_keys=True))
  if not spec.is_points:
    arrays["images"] = to_uint8(inverse(samples))
  np.savez(npz, **arrays)
  shown = samples if spec.is_points else samples[:GRID_MAX]
  writer_lib.save_samples_png(png, shown, inverse, points=spec.is_points,
                              title=f"step {step}, {len(samples)} samples")
  return npz, png


def _settings(config, step: int) -> dict:
  flat = agreement.flatten(config)
  return {"step": step, "tag": sample_tag(config),
          **{k: v for k, v in flat.items()
             if k.startswith("sampling.") or k in ("seed", "eval.num_samples")}}


def sample(config, workdir: str, *, allow_config_change: bool = False,
           overwrite: bool = False) -> Tuple[str, str]:
  """Sample mode (see the module docstring); returns (npz path, png path)."""
  run, step, ema_params = restore.restore_ema(config, workdir,
                                              allow_config_change=allow_config_change)
  paths = sample_paths(os.path.join(workdir, "samples"), step, sample_tag(config))
  if os.path.exists(paths[0]) and not overwrite:
    if jax.process_index() == 0:
      print(f"sample step {step}: {paths[0]}, picture {paths[1]} ({agreement.STORED})",
            flush=True)
    return paths
  samples = draw_samples(run, parallel.replicate(ema_params, run.devices),
                         int(config.eval.num_samples), desc=f"sample step {step}",
                         adjust=builders.adjustment(config, run.spec, run.sde))
  if jax.process_index() != 0:
    return "", ""
  npz, png = save_samples(paths, step, samples, run.spec, _settings(config, step))
  print(f"step {step}: {len(samples)} samples -> {npz}\npicture -> {png}", flush=True)
  return npz, png
