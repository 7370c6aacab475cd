"""The training loop: exact resume, fine-tuning, refusals and the non-finite-loss stop."""

import os

import chex
import jax
import numpy as np
import pytest

from msgm_jax.config import agreement
from msgm_jax.training import checkpoint
from msgm_jax.training import loop as train
from tests.helpers import tiny_toy_config


def _restore(workdir, step, like):
  ckpt, _ = checkpoint.Checkpointer.for_reading(workdir)
  state, meta = ckpt.restore(step, like)
  ckpt.close()
  return state, meta


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("straight"))
  state = train.train_and_evaluate(tiny_toy_config(regime="msgm", eval_freq=10), workdir)
  return workdir, state


def test_resume_is_bit_identical(straight, tmp_path):
  """Also: the straight run's eval_loss (every 10 steps) leaves training untouched."""
  _, reference = straight
  workdir = str(tmp_path)
  half = train.train_and_evaluate(tiny_toy_config(regime="msgm", n_iters=10, eval_freq=0),
                                  workdir)
  assert int(half.step) == 10
  resumed = train.train_and_evaluate(tiny_toy_config(regime="msgm", eval_freq=0), workdir)
  assert int(resumed.step) == 20
  chex.assert_trees_all_equal(resumed.params, reference.params)
  chex.assert_trees_all_equal(resumed.ema_params, reference.ema_params)
  chex.assert_trees_all_equal(resumed.opt_state, reference.opt_state)


def test_checkpoints_metrics_and_rerun_is_a_noop(straight):
  workdir, reference = straight
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["10", "20"]
  saved, meta = _restore(workdir, 20, reference)
  chex.assert_trees_all_equal(saved.params, reference.params)
  assert meta["data_position"] == 20 and len(meta["config_digest"]) == 16
  lines = [line for line in open(os.path.join(workdir, "metrics.jsonl")).read().splitlines()
           if '"eval_loss"' not in line]
  assert len(lines) == 4 and '"moderation"' in lines[0] and '"steps_per_sec"' in lines[0]
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  again = train.train_and_evaluate(tiny_toy_config(regime="msgm"), workdir)
  chex.assert_trees_all_equal(again.params, reference.params)


def test_fine_tuning_starts_from_a_standard_checkpoint(straight, tmp_path):
  source, reference = straight
  config = tiny_toy_config(regime="msgm", n_iters=5, init_from=source)
  config.training.snapshot_freq_for_preemption = 5
  config.training.snapshot_freq = 5
  state = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 5  # the step counter (and the warmup) restarted
  moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), state.params, reference.params)
  assert 0 < max(jax.tree.leaves(moved)) < 0.05  # started at the source, then moved a little


def test_resume_with_a_different_model_is_refused(straight):
  workdir, _ = straight
  config = tiny_toy_config(regime="msgm", n_iters=30)
  config.model.hidden = 48
  with pytest.raises(agreement.ConfigMismatch,
                     match=r"model.hidden=48 \(the run's: 32\).*--allow_config_change"):
    train.train_and_evaluate(config, workdir)
  # Allowed to go ahead, the parameters still cannot be loaded into the other shape.
  with pytest.raises(checkpoint.CheckpointMismatch, match="different shape.*new --workdir"):
    train.train_and_evaluate(config, workdir, allow_config_change=True)


def test_non_finite_loss_stops_and_names_the_step(tmp_path):
  config = tiny_toy_config(n_iters=20)
  config.optim.lr = 1e30
  config.optim.grad_clip = 0.0
  config.optim.warmup = 0
  with pytest.raises(train.NonFiniteLoss, match=r"non-finite at step \d+; the last good "):
    train.train_and_evaluate(config, str(tmp_path))


def test_schedule_must_align_with_fused_calls(tmp_path):
  config = tiny_toy_config(log_freq=7)
  with pytest.raises(ValueError, match="training.log_freq=7 is not a multiple"):
    train.train_and_evaluate(config, str(tmp_path))


def test_a_short_run_ends_with_its_eval_loss_and_a_picture(tmp_path):
  """n_iters below snapshot_freq and eval_freq: the last step still writes a sample picture
  and logs eval_loss (a newcomer's first run shows what it learned)."""
  import json  # pylint: disable=import-outside-toplevel
  workdir = str(tmp_path)
  config = tiny_toy_config(regime="unseen", n_iters=15, snapshot_freq=1000, eval_freq=1000,
                           snapshot_freq_for_preemption=1000, snapshot_sampling=True)
  config.model.num_scales = 10
  train.train_and_evaluate(config, workdir)
  assert os.listdir(os.path.join(workdir, "samples")) == ["samples_00000015.png"]
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    records = [json.loads(line) for line in f]
  assert [r["step"] for r in records if "eval_loss" in r] == [15]
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["15"]
