"""Eval mode's sample metrics on a tiny digits model: the record, and a preempted eval that
resumes from its stored sample batches to the samples of an uninterrupted draw."""

import contextlib
import glob
import json
import os

import numpy as np
import pytest

from msgm_jax.training import checkpoint
from msgm_jax.evaluation import eval_mode as evaluate
from msgm_jax.runtime import parallel
from msgm_jax.training import restore
from msgm_jax.evaluation import sample_mode as sample
from msgm_jax.training import loop as train
from tests.helpers import load_config


def _config(classifier_dir):
  config = load_config("configs/digits_ddpm.py")
  config.data.nsfg_classes = (3,)
  config.training.num_devices = 2  # two of the 8 fake devices: multi-device, half the work
  config.model.num_scales = 10  # sampler steps
  config.eval.enable_bpd = False
  config.eval.num_batches = 1
  config.eval.num_samples = 36  # 5 batches of 8 (4 per device), the last one cut
  config.sampling.batch_size = 8
  config.eval.classifier_weights = classifier_dir
  return config


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory, tiny_classifier):
  classifier_dir = tiny_classifier[0]
  workdir = str(tmp_path_factory.mktemp("digits"))
  config = _config(classifier_dir)
  config.eval.stats_dir = str(tmp_path_factory.mktemp("stats"))
  # A checkpoint of the initial weights at step 10: eval does not care how they were made, and
  # compiling a train step would triple the test's time.
  run = train.build_run(config, workdir)
  state = train.fresh_state(run)
  with contextlib.closing(checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))) as c:
    c.save(10, state, train.checkpoint_meta(run, state, 10))
  return config, workdir


def _stored(workdir):
  return sorted(glob.glob(os.path.join(workdir, "eval", "samples", "*", "step_10", "*.npy")))


def test_preempted_eval_resumes_to_the_uninterrupted_samples(run_dirs, monkeypatch, capsys):
  config, workdir = run_dirs
  real_store, stored = sample._store_batch, []

  def store_then_preempt(store, i, x):
    real_store(store, i, x)
    stored.append(i)
    if len(stored) == 2:
      raise KeyboardInterrupt  # as a preemption right after batch 1 reached the disk

  monkeypatch.setattr(sample, "_store_batch", store_then_preempt)
  with pytest.raises(KeyboardInterrupt):
    evaluate.evaluate(config, workdir)
  assert len(_stored(workdir)) == 2 and not glob.glob(os.path.join(workdir, "eval", "*",
                                                                   "ckpt_10.json"))
  stored.clear()
  monkeypatch.setattr(sample, "_store_batch", lambda *a: stored.append(a[1]) or real_store(*a))
  record = evaluate.evaluate(config, workdir)[10]
  assert stored == [2, 3, 4]  # only the missing batches were drawn
  out = capsys.readouterr().out
  assert "eval: fid skipped: it needs eval.inception_weights" in out
  assert "SAMPLES 36 nsfg_rate" in out

  # The uninterrupted draw of the same checkpoint, without a store.
  run = train.build_run(config, workdir)
  with contextlib.closing(restore.open_checkpoints(workdir)) as ckpt:
    state, _ = ckpt.restore(10, restore.state_template(run))
  p_ema = parallel.replicate(state.ema_params, run.devices)
  fresh = sample.draw(train.make_sampler(run), p_ema, sample.sample_key(run), 36)
  kept = np.concatenate([np.load(p) for p in _stored(workdir)])[:36]
  np.testing.assert_array_equal(kept, fresh)

  s = record["samples"]
  assert s["num_samples"] == 36 and s["nonfinite_rate"] == 0.0
  assert s["nsfg_rate_n"] == 36 and 0 <= s["nsfg_rate_ci"][0] <= s["nsfg_rate"]
  assert s["fd_classifier"] >= s["fd_classifier_no_mean"] > 0 and s["fd_classifier_nsfg"] > 0
  assert "fid" not in s
  # The floor and the recall sit with the real test data's other metrics.
  assert {"dsm_loss", "nsfg_rate", "nsfg_rate_ci"} <= set(record["sfg"])
  assert record["nsfg"]["nsfg_rate_n"] == 22  # the test split's 3s
  outdir = os.path.join(workdir, "eval", evaluate.eval_tag(config))
  with open(os.path.join(outdir, "metrics.jsonl"), encoding="utf-8") as f:
    logged = json.loads(f.readlines()[-1])
  assert logged["eval/samples_nsfg_rate"] == s["nsfg_rate"]
  assert logged["eval/sfg_nsfg_rate"] == record["sfg"]["nsfg_rate"]
  assert logged["eval/samples_fd_classifier"] == s["fd_classifier"]


def test_every_metric_can_be_switched_off(run_dirs, capsys):
  config, workdir = run_dirs
  config = config.copy_and_resolve_references()
  config.eval.update(dict(enable_loss=False, nsfg_rate="off", fd_classifier="off", fid="off"))
  record = evaluate.evaluate(config, workdir)[10]
  assert record["sfg"] == record["nsfg"] == {} and "samples" not in record
  assert "skipped" not in capsys.readouterr().out
