"""Inpaint and reconstruct mode (msgm_jax/zero_shot/common.py, inpaint.py, reconstruct.py) from the
command line, on a checkpoint of a tiny digits model's initial weights (the modes do not care
how the weights were made; compiling a train step would double the time)."""

import contextlib
import glob
import json
import os

import numpy as np
import pytest
from PIL import Image

from msgm_jax.training import checkpoint
from msgm_jax.zero_shot import inpaint
from msgm_jax.data import masks
from msgm_jax.zero_shot import reconstruct
from msgm_jax.training import loop as train
from msgm_jax.training import writer
from msgm_jax.zero_shot import common as zero_shot
from tests.helpers import load_config, run_cli

OVERRIDES = {"model.nf": 8, "model.ch_mult": (1,), "model.num_scales": 4,
             "data.nsfg_classes": (3,), "eval.batch_size": 8, "inpaint.num_images": 12,
             "reconstruct.num_images": 6}
# The CLI on 8 devices, as the session's tiny classifier was trained (its checkpoint does not
# restore on another device count: Orbax's "Topology mismatch"); also data parallelism.
EIGHT = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}


def _cli_args(workdir, mode, *extra):
  args = ["--config=configs/digits_ddpm.py", f"--workdir={workdir}", f"--mode={mode}"]
  for k, v in OVERRIDES.items():
    v = f"'{v}'" if isinstance(v, tuple) else v
    args.append(f"--config.{k}={v}".replace("'", "").replace(" ", ""))
  return args + list(extra)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  config = load_config("configs/digits_ddpm.py")
  config.update_from_flattened_dict(OVERRIDES)
  path = str(tmp_path_factory.mktemp("zero_shot"))
  run = train.build_run(config, path)
  state = train.fresh_state(run)
  with contextlib.closing(checkpoint.Checkpointer(os.path.join(path, "checkpoints"))) as c:
    c.save(5, state, train.checkpoint_meta(run, state, 5))
  return path


def _record(workdir, mode):
  (path,) = glob.glob(os.path.join(workdir, mode, "*", "ckpt_5.json"))
  with open(path, encoding="utf-8") as f:
    return json.load(f), os.path.dirname(path)


def test_inpaint_cli_writes_rates_pictures_and_keeps_the_known_pixels(workdir, tiny_classifier):
  args = _cli_args(workdir, "inpaint", "--config.inpaint.mask=top_half",
                   f"--config.eval.classifier_weights={tiny_classifier[0]}")
  proc = run_cli(*args, env=EIGHT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "inpaint step 5: SFG 12 images" in proc.stdout
  record, outdir = _record(workdir, "inpaint")
  assert record["mask"] == "top_half" and record["completed_pixels"] == 32
  for subset in ("sfg", "nsfg"):
    r = record[subset]
    assert r["num_images"] == r["nsfg_rate_n"] == 12 and r["nonfinite_rate"] == 0.0
    assert 0 <= r["nsfg_rate_ci"][0] <= r["nsfg_rate"] <= r["nsfg_rate_ci"][1] <= 1
    assert len(r["per_image"]["predicted"]) == 12
    with Image.open(os.path.join(outdir, f"{subset}_5.png")) as picture:
      width, height = picture.size  # 12 tiles of 8 px enlarged to 48, 3 rows, labels, title
    assert width >= 12 * 48 + 60 and height >= 3 * 48 + 14, (width, height)
  assert set(record["nsfg"]["per_image"]["label"]) == {3}
  assert 3 not in record["sfg"]["per_image"]["label"]
  out = np.load(os.path.join(outdir, "outputs_5.npz"))
  known = masks.make_mask("top_half", (8, 8, 1)).astype(bool)
  for subset in ("sfg", "nsfg"):  # m(eps) x at eps = 1e-3: within one grey level
    diff = out[f"{subset}_outputs"].astype(int) - out[f"{subset}_inputs"].astype(int)
    assert np.abs(diff[:, known]).max() <= 1
    assert np.abs(diff[:, ~known]).max() > 10  # the completed half is new
  assert glob.glob(os.path.join(outdir, "tensorboard", "events*"))
  # The same command again finds the record and does nothing.
  again = run_cli(*args, env=EIGHT)
  assert again.returncode == 0 and "already stored with these settings" in again.stdout


def test_reconstruct_cli_without_perturbation_returns_the_inputs(workdir):
  proc = run_cli(*_cli_args(workdir, "reconstruct", "--config.reconstruct.perturb_t=0.0"),
                 env=EIGHT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "nsfg_rate and class_agreement skipped" in proc.stdout
  record, _ = _record(workdir, "reconstruct")
  assert record["perturb_t"] == 0.0
  for subset in ("sfg", "nsfg"):
    r = record[subset]
    assert r["num_images"] == 6 and r["nfe"] > 10 and "nsfg_rate" not in r
    assert r["mse"] < 1e-4, r["mse"]  # a round trip to solver tolerance (and uint8 rounding)


def test_bad_mask_file_ends_in_one_line(workdir, tmp_path):
  """The other mask errors: tests/data/test_masks.py; a bad name: tests/config/test_validate.py's rules."""
  np.save(tmp_path / "wrong.npy", np.ones((4, 4)))
  proc = run_cli(*_cli_args(workdir, "inpaint", f"--config.inpaint.mask={tmp_path}/wrong.npy"))
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert lines[-1].startswith("msgm_jax: error: inpaint.mask=") and \
      "has shape (4, 4, 1), but the images are (8, 8, 1)" in lines[-1], lines[-1]


def test_subset_metrics_by_hand():
  """Errors over the weighted pixels, rates of the judge's decisions, per-image lists."""
  inputs = zero_shot.Inputs(np.zeros((2, 2, 2, 1), np.uint8), np.array([3, 5]))
  outputs = np.zeros((2, 2, 2, 1), np.uint8)
  outputs[0, 0, 0, 0] = 255  # image 0: one wrong pixel, completed (weight 1)
  outputs[1, 1, 1, 0] = 51  # image 1: 0.2 off at a known pixel (weight 0)
  weights = np.array([[1.0, 1.0], [0.0, 0.0]])[..., None]

  def judge(images):  # "class 3 and NSFG" for images with a bright pixel
    bright = images.reshape(len(images), -1).max(1) > 100
    return np.where(bright, 3, 7), bright

  r = zero_shot.subset_metrics(inputs, outputs, judge, weights)
  assert r["per_image"]["mse"] == [0.5, 0.0] and r["mse"] == 0.25
  assert r["nsfg_rate"] == 0.5 and r["nsfg_rate_count"] == 1
  assert r["class_agreement"] == 0.5 and r["input_nsfg_rate"] == 0.0
  assert r["per_image"]["predicted"] == [3, 7] and r["per_image"]["is_nsfg"] == [True, False]
  plain = zero_shot.subset_metrics(inputs, outputs, None)
  assert "nsfg_rate" not in plain and plain["mse"] == pytest.approx((1 + 0.04) / 8)


def test_inpaint_refuses_points():
  with pytest.raises(ValueError, match="--mode=inpaint is for image data, not toy2d points"):
    inpaint.mode(load_config("configs/toy2d_single.py"))


def test_pictures_name_their_rows_and_count_the_images_shown(monkeypatch):
  drawn = []
  monkeypatch.setattr(zero_shot.writer_lib, "labelled_grid",
                      lambda rows, title: drawn.append(([label for label, _ in rows], title)))
  images = np.zeros((64, 8, 8, 1), np.uint8)
  zero_shot.picture(inpaint.mode(load_config("configs/digits_ddpm.py")).grid_rows(images, images),
                    "inpaint SFG")
  zero_shot.picture(reconstruct.MODE.grid_rows(images[:6], images[:6]), "reconstruct NSFG")
  assert drawn == [(["input", "masked", "completion"], "inpaint SFG: first 16 of 64 images"),
                   (["input", "reconstruction"], "reconstruct NSFG: all 6 images")]


def test_labelled_grid_enlarges_small_images_and_writes_its_texts():
  rows = [("input", np.ones((5, 16, 16, 1))), ("completion", np.ones((5, 16, 16, 1)))]
  grid = writer.labelled_grid(rows, "a title")
  blank = writer.labelled_grid([("", r) for _, r in rows], "")
  assert grid.dtype == np.uint8 and grid.shape[-1] == 1
  tiles = grid.shape[1] - (5 * 50 + 2)  # 48-px tiles with 2-px borders; the rest: labels
  assert tiles > 40 and grid.shape[0] >= 2 * 50 + 2 + 14
  assert (grid[:, :tiles] < 128).sum() > 50  # the labels are drawn (white images: no ink)
  assert (grid[14:, :tiles] < 128).sum() > 50 and (grid[:14] < 128).sum() > 20  # and the title
  assert (blank < 128).sum() == 0
