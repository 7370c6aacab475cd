"""Run outputs: TensorBoard events (tensorboardX, no TensorFlow), a JSON-lines metrics log,
and PNG pictures of samples (image grids, or scatter plots for 2-D points)."""

import json
import math
import os
import time
import uuid
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
from tensorboardX import summary as tb_summary
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto import event_pb2

from msgm_jax.training import logfiles


def image_grid(images: np.ndarray, ncol: Optional[int] = None, pad: int = 2,
               min_size: int = 32) -> np.ndarray:
  """[N, H, W, C] floats in [0, 1] -> one uint8 [H', W', C] grid with `pad` pixel borders.

  Images smaller than min_size pixels are enlarged by an integer factor (nearest neighbour),
  so 8x8 digits stay visible.
  """
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  factor = max(1, -(-min_size // images.shape[1]))
  images = images.repeat(factor, axis=1).repeat(factor, axis=2)
  n, h, w, c = images.shape
  ncol = ncol or int(math.ceil(math.sqrt(n)))
  nrow = int(math.ceil(n / ncol))
  grid = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), np.float32)
  for i in range(n):
    r, q = divmod(i, ncol)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):
         pad + q * (w + pad) + w] = images[i]
  return (grid * 255).round().astype(np.uint8)


def labelled_grid(rows: Sequence[Tuple[str, np.ndarray]], title: str, min_size: int = 48,
                  pad: int = 2, font_size: int = 14) -> np.ndarray:
  """A grid with one row per (label, [K, H, W, C] floats in [0, 1]) pair, the label to the
  left of its row and `title` above -> uint8 [H', W', C] (black text on white).

  Images smaller than min_size pixels are enlarged by an integer factor (nearest neighbour),
  so a 16x16 digit is a 48x48 tile."""
  from PIL import Image, ImageDraw, ImageFont  # pylint: disable=import-outside-toplevel
  images = np.concatenate([np.asarray(r, np.float32) for _, r in rows])
  factor = max(1, -(-min_size // images.shape[1]))
  tile = images.shape[1] * factor
  grid = image_grid(images.repeat(factor, axis=1).repeat(factor, axis=2),
                    ncol=len(rows[0][1]), pad=pad, min_size=0)
  font = ImageFont.load_default(size=font_size)
  measure = ImageDraw.Draw(Image.new("L", (1, 1)))
  left = int(max(measure.textlength(label, font=font) for label, _ in rows)) + 3 * pad
  top = font_size + 4 * pad
  width = max(left + grid.shape[1], int(measure.textlength(title, font=font)) + 4 * pad)
  canvas = Image.new("L" if grid.shape[-1] == 1 else "RGB", (width, top + grid.shape[0]), 255)
  canvas.paste(Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid), (left, top))
  draw = ImageDraw.Draw(canvas)
  draw.text((2 * pad, pad), title, fill=0, font=font)
  for r, (label, _) in enumerate(rows):
    middle = top + pad + r * (tile + pad) + tile // 2
    draw.text((pad, middle), label, fill=0, font=font, anchor="lm")
  out = np.asarray(canvas, np.uint8)
  return out[..., None] if out.ndim == 2 else out


def save_png(path: str, array: np.ndarray) -> None:
  from PIL import Image  # pylint: disable=import-outside-toplevel
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)


def scatter_png(path: str, points: np.ndarray, title: str = "", lim: float = 5.0) -> np.ndarray:
  """A scatter plot of [N, 2] points saved as PNG; returns it as uint8 [H, W, 3]."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
  ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
  ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title=title, aspect="equal")
  fig.tight_layout()
  fig.canvas.draw()
  rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.savefig(path)
  plt.close(fig)
  return rgb


def save_samples_png(path: str, samples: np.ndarray, inverse_scaler: Callable, *, points: bool,
                     title: str = "") -> np.ndarray:
  """Samples in model space -> a PNG: a scatter plot of [N, 2] points, else a grid of
  [N, H, W, C] images mapped to [0, 1] by inverse_scaler. Returns the picture, uint8 [H, W, C]."""
  if points:
    return scatter_png(path, samples, title=title)
  picture = image_grid(inverse_scaler(samples))
  save_png(path, picture)
  return picture


class MetricWriter:
  """Writes scalars to TensorBoard and to <logdir>/metrics.jsonl; images to TensorBoard.

  Events are written synchronously (tensorboardX's SummaryWriter queues them in a thread that
  its flush does not wait for), so `flush()` at each checkpoint puts every logged step up to
  it on disk: a kill loses at most the steps after the last checkpoint, as the parameters do.
  Each writer opens a new event file. keep: records of earlier runs in
  logdir whose step fails keep(step) are dropped first (msgm_jax/training/logfiles.py), e.g. on resume
  from step S, `lambda step: step <= S`. Only process 0 should construct one with
  `enabled=True`; others get a silent writer.
  """

  def __init__(self, logdir: str, enabled: bool = True,
               keep: Optional[Callable[[int], bool]] = None):
    self.logdir = logdir
    self.enabled = enabled
    self._tb = None
    self._jsonl = None
    if enabled:
      if keep is not None:
        logfiles.keep_steps(logdir, keep)
      os.makedirs(os.path.join(logdir, "tensorboard"), exist_ok=True)
      # A name of its own: EventsWriter truncates an existing file of the same name (its
      # names differ only by the second otherwise).
      self._tb = EventsWriter(os.path.join(logdir, "tensorboard", "events"),
                              f".{os.getpid()}.{uuid.uuid4().hex[:8]}")
      self._jsonl = open(os.path.join(logdir, "metrics.jsonl"), "a", encoding="utf-8")

  def _event(self, step: int, summary) -> None:
    self._tb.write_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

  def scalars(self, step: int, values: Dict[str, float]) -> None:
    if not self.enabled:
      return
    values = {k: float(v) for k, v in values.items()}
    for k, v in values.items():
      self._event(step, tb_summary.scalar(k, v))
    self._jsonl.write(json.dumps({"step": int(step), **values}) + "\n")
    self._jsonl.flush()

  def image(self, step: int, tag: str, array: np.ndarray) -> None:
    """array: uint8 [H, W, C]."""
    if self.enabled:
      self._event(step, tb_summary.image(tag, array, dataformats="HWC"))

  def flush(self) -> None:
    if self.enabled:
      self._tb.flush()
      self._jsonl.flush()

  def close(self) -> None:
    if self.enabled:
      self._tb.close()
      self._jsonl.close()
