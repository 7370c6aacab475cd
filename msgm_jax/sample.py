"""Sample mode: draws eval.num_samples samples from one checkpoint's EMA parameters.

  python -m msgm_jax.main --config=<file> --workdir=<run dir> --mode=sample

Checkpoint: step eval.begin_ckpt when it is non-zero (it must exist), else the latest. The
sampler is config.sampling's (pc or ode), pmapped over the local devices by
parallel.data_parallel_sampler, sampling.batch_size samples per call (rounded up to a multiple
of the devices), repeated until eval.num_samples. Writes <workdir>/samples/eval_<step>.npz with
'samples' (model space, float32 [N, *data shape]) and, for images, 'images' (uint8
[N, H, W, C]: score_sde's clip(x * 255, 0, 255) after the inverse scaler, truncated), and
eval_<step>.png (a grid of the first 256 images, or a scatter plot of all 2-D points).
"""

import contextlib
import os
from typing import Callable, Sequence, Tuple

import jax
import numpy as np

from msgm_jax import data, evaluate, train
from msgm_jax import writer as writer_lib

SAMPLE_STREAM = 2  # folded into the init key (evaluation uses 1; training its own key)
GRID_MAX = 256  # images in the PNG grid


def pick_step(available: Sequence[int], begin: int) -> int:
  """eval.begin_ckpt if non-zero (it must be a kept step), else the latest step."""
  if not begin:
    return max(available)
  if begin not in available:
    raise ValueError(f"eval.begin_ckpt={begin} is not a kept checkpoint; kept steps: "
                     f"{', '.join(map(str, sorted(available)))} (0: the latest)")
  return begin


def draw(sampler: Callable, p_variables, key: jax.Array, num_samples: int) -> np.ndarray:
  """Calls sampler(fold_in(key, i), p_variables) -> [n_devices, b, ...] for i = 0, 1, ...
  until num_samples; returns the first num_samples, [num_samples, ...] numpy."""
  chunks, have, i = [], 0, 0
  while have < num_samples:
    x = np.asarray(sampler(jax.random.fold_in(key, i), p_variables))
    chunks.append(x.reshape((-1,) + x.shape[2:]))
    have, i = have + len(chunks[-1]), i + 1
  return np.concatenate(chunks)[:num_samples]


def to_uint8(images: np.ndarray) -> np.ndarray:
  """[0, 1] floats -> uint8 as score_sde saves samples: clip(x * 255, 0, 255), truncated."""
  return np.clip(np.asarray(images) * 255.0, 0, 255).astype(np.uint8)


def save_samples(outdir: str, step: int, samples: np.ndarray,
                 spec: data.DataSpec) -> Tuple[str, str]:
  """Writes eval_<step>.npz and eval_<step>.png under outdir; returns their paths."""
  os.makedirs(outdir, exist_ok=True)
  npz, png = (os.path.join(outdir, f"eval_{step}.{ext}") for ext in ("npz", "png"))
  inverse = data.get_inverse_scaler(spec)
  arrays = {"samples": samples.astype(np.float32)}
  if not spec.is_points:
    arrays["images"] = to_uint8(inverse(samples))
  np.savez(npz, **arrays)
  shown = samples if spec.is_points else samples[:GRID_MAX]
  writer_lib.save_samples_png(png, shown, inverse, points=spec.is_points,
                              title=f"step {step}, {len(samples)} samples")
  return npz, png


def sample(config, workdir: str) -> Tuple[str, str]:
  """Sample mode (see the module docstring); returns (npz path, png path)."""
  with contextlib.closing(evaluate.open_checkpoints(workdir)) as ckpt:
    step = pick_step(ckpt.all_steps(), int(config.eval.begin_ckpt))
    run = train.build_run(config, workdir)
    p_ema = evaluate.restore_ema(ckpt, step, evaluate.state_template(run), run.devices)
  key = jax.random.fold_in(run.init_key, SAMPLE_STREAM)
  samples = draw(train.make_sampler(run), p_ema, key, int(config.eval.num_samples))
  if jax.process_index() != 0:
    return "", ""
  npz, png = save_samples(os.path.join(workdir, "samples"), step, samples, run.spec)
  print(f"step {step}: {len(samples)} samples -> {npz}\npicture -> {png}", flush=True)
  return npz, png
