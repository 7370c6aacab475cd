"""The train step: one device equals eight for the same global batch; it compiles once."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax.config import builders
from msgm_jax.method import optim
from msgm_jax.runtime import parallel
from msgm_jax.training import loop as train
from msgm_jax.diffusion import sde as sde_lib
from msgm_jax.method import step as ts
from msgm_jax.diffusion.losses import LossConfig
from msgm_jax.method.moderation import MSGMConfig
from tests.helpers import load_config, tiny_toy_config

STEPS = 3


def _run(config, n_devices, steps_per_call=1):
  config.training.num_devices = n_devices
  run = train.build_run(config, "/unused")
  state = train.fresh_state(run)
  build = builders.score_fn_builder(run.model, run.sde, True, train=True)
  chex.clear_trace_counter()  # counts are per code location, shared by every _run
  multi = ts.scan_steps(ts.make_train_step(build, run.sde, run.step_cfg, run.tx,
                                           grad_reduce=parallel.pmean), unroll=True)
  p_step = jax.pmap(chex.assert_max_traces(multi, n=1), axis_name=parallel.AXIS,
                    devices=run.devices, in_axes=(0, 0, None))
  batches = train._Batches(run, 0)  # pylint: disable=protected-access
  p_state = parallel.replicate(state, run.devices)
  losses = []
  for step in range(0, STEPS * steps_per_call, steps_per_call):
    p_state, metrics = p_step(p_state, batches.stacked(step, steps_per_call, run.n_dev), run.key)
    losses.append(np.asarray(metrics["loss"])[0])
  batches.close()
  return jax.device_get(parallel.unreplicate(p_state)), np.concatenate(losses)


def _config(regime):
  config = tiny_toy_config(regime=regime)
  config.msgm.period = 2  # steps 0 and 2 moderate, step 1 does not
  return config


@pytest.mark.parametrize("regime", ["standard", "msgm"])
def test_one_device_equals_eight(regime):
  one, loss1 = _run(_config(regime), 1)
  eight, loss8 = _run(_config(regime), 8)
  np.testing.assert_allclose(loss1, loss8, rtol=1e-5)
  chex.assert_trees_all_close(one.params, eight.params, rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(one.ema_params, eight.ema_params, rtol=1e-5, atol=1e-6)
  assert int(one.step) == int(eight.step) == STEPS


def _digits_dropout_config():
  """The digits DDPM U-Net shrunk further, with dropout on (DSM only: the NSFG pass draws its
  masks the same way, see the probe test below, and would double the compile time)."""
  config = load_config("configs/digits_ddpm.py")
  config.model.dropout = 0.3
  config.model.nf = 8
  config.model.num_groups = 2
  config.model.ch_mult = (1,)  # one resolution, attention only in the middle: half the compile
  config.model.attn_resolutions = ()
  config.training.batch_size = 16
  config.training.steps_per_call = 1
  config.optim.warmup = 0  # the output conv starts at 0: step 0 does not see dropout
  return config


def test_one_device_equals_eight_with_dropout():
  """Dropout masks come from per-example keys, so splitting the batch over devices changes
  nothing (they used to come from one key per device)."""
  one, loss1 = _run(_digits_dropout_config(), 1)
  eight, loss8 = _run(_digits_dropout_config(), 8)
  np.testing.assert_allclose(loss1, loss8, rtol=1e-5)
  chex.assert_trees_all_close(one.params, eight.params, rtol=1e-4, atol=1e-6)


class _DropoutProbe(nn.Module):
  """A "score network" whose output is its dropout mask (0 or 1 / (1 - p)) plus 0 * x."""

  dropout: float = 0.5

  @nn.compact
  def __call__(self, x, labels, train=False):
    w = self.param("w", nn.initializers.zeros, ())
    return nn.Dropout(self.dropout, deterministic=not train)(jnp.ones_like(x)) + w * x


def test_sfg_and_nsfg_passes_draw_independent_dropout_masks():
  """Equal SFG and NSFG batches (same local example ids): the two forward passes of one MSGM
  step must not share dropout masks, and examples must not share them either."""
  probe, sde = _DropoutProbe(), sde_lib.VESDE()
  build = builders.score_fn_builder(probe, sde, True, train=True)
  seen = []

  def recording_build(params, keys):
    score_fn = build(params, keys)

    def recorded(x, t):
      out = score_fn(x, t)
      jax.debug.callback(lambda v: seen.append(np.asarray(v)), out)
      return out

    return recorded

  cfg = ts.StepConfig(loss=LossConfig(reduce_mean=True), optim=optim.OptimConfig(),
                      msgm=MSGMConfig(period=1))
  tx = optim.make_transform(cfg.optim)
  variables = probe.init(jax.random.key(0), jnp.zeros((1, 4)), jnp.ones((1,)))
  batch = {"sfg": jnp.zeros((8, 4)), "sfg_ids": jnp.arange(8, dtype=jnp.int32),
           "nsfg": jnp.ones((8, 4)), "nsfg_ids": jnp.arange(8, dtype=jnp.int32)}
  step = jax.jit(ts.make_train_step(recording_build, sde, cfg, tx))
  jax.block_until_ready(step(ts.create_train_state(variables, tx), batch, jax.random.key(1)))
  sfg_mask, nsfg_mask = seen
  assert set(np.unique(sfg_mask)) == {0.0, 2.0} and set(np.unique(nsfg_mask)) == {0.0, 2.0}
  assert not np.array_equal(sfg_mask, nsfg_mask)
  assert len({row.tobytes() for row in sfg_mask}) > 4  # examples draw their own masks


def test_static_moderation_pattern_equals_the_branch():
  """CPU training fixes which steps moderate at trace time (train.moderation_pattern); the
  parameters equal those of the run-time lax.cond after steps that do and do not moderate."""
  config = _config("msgm")
  config.training.num_devices = 1
  run = train.build_run(config, "/unused")
  build = builders.score_fn_builder(run.model, run.sde, True, train=True)
  step = jax.jit(ts.make_train_step(build, run.sde, run.step_cfg, run.tx), static_argnums=3)
  batches = train._Batches(run, 0)  # pylint: disable=protected-access
  dynamic = static = train.fresh_state(run)
  for i in range(3):
    b = jax.tree.map(jnp.asarray, batches.one(i))
    (pattern,) = train.moderation_pattern(run, i, 1)
    assert pattern == (i % 2 == 0)
    dynamic, m_dyn = step(dynamic, b, run.key, None)
    static, m_sta = step(static, b, run.key, pattern)
    assert float(m_sta["moderation_active"]) == float(m_dyn["moderation_active"])
    np.testing.assert_allclose(float(m_sta["loss"]), float(m_dyn["loss"]), rtol=1e-6)
  batches.close()
  chex.assert_trees_all_close(static.params, dynamic.params, rtol=1e-5, atol=1e-7)


def test_steps_per_call_fuses_identically():
  """Three calls of two fused steps reach the parameters of six single steps."""
  fused, _ = _run(tiny_toy_config(), 1, steps_per_call=2)
  ref, _ = _run_n(tiny_toy_config(), 6)
  chex.assert_trees_all_close(fused.params, ref.params, rtol=1e-6, atol=1e-7)


def _run_n(config, n, collect=False):
  config.training.num_devices = 1
  run = train.build_run(config, "/unused")
  state = train.fresh_state(run)
  build = builders.score_fn_builder(run.model, run.sde, True, train=True)
  step = jax.jit(ts.make_train_step(build, run.sde, run.step_cfg, run.tx))
  batches = train._Batches(run, 0)  # pylint: disable=protected-access
  metrics = []
  for i in range(n):
    b = batches.one(i)
    state, m = step(state, jax.tree.map(jnp.asarray, b), run.key)
    metrics.append(jax.tree.map(float, m))
  batches.close()
  return state, (metrics if collect else None)


def _release_ema_decays(rate, n_updates):
  """The decays of the release's ExponentialMovingAverage.update, written out: the update
  counter is incremented first, then decay = min(rate, (1 + count) / (10 + count))."""
  count, out = 0, []
  for _ in range(n_updates):
    count += 1
    out.append(min(rate, (1 + count) / (10 + count)))
  return out


def test_warmup_and_ema_schedule():
  cfg = optim.OptimConfig(lr=1e-3, warmup=10)
  np.testing.assert_allclose([optim.learning_rate(cfg, s) for s in (0, 5, 10, 50)],
                             [0.0, 5e-4, 1e-3, 1e-3], rtol=1e-6)
  # The decay of the update made at state.step = s is the release's (s + 1)-th decay.
  release = _release_ema_decays(0.999, 20000)
  steps = [0, 1, 9, 100, 19999]
  np.testing.assert_allclose([optim.ema_decay(0.999, s) for s in steps],
                             [release[s] for s in steps], rtol=1e-6)
  assert release[0] == 2 / 11


def test_first_train_step_averages_with_the_release_decay():
  """After one step from a fresh state the EMA is d p0 + (1 - d) p1 with d = 2/11."""
  config = tiny_toy_config()
  config.training.num_devices = 1
  config.optim.warmup = 0  # a non-zero first step, so p1 != p0
  run = train.build_run(config, "/unused")
  fresh = train.fresh_state(run)
  one, _ = _run_n(config, 1)
  d = 2 / 11
  expect = jax.tree.map(lambda p0, p1: d * p0 + (1 - d) * p1, fresh.params, one.params)
  assert not np.allclose(jax.tree.leaves(one.params)[0], jax.tree.leaves(fresh.params)[0])
  chex.assert_trees_all_close(one.ema_params, expect, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("sde_name", ["vpsde", "vesde"])
def test_msgm_with_discrete_ddpm_and_smld_losses(sde_name):
  """The release crashes when MSGM meets the discrete losses; here they train."""
  config = _config("msgm")
  config.training.sde = sde_name
  config.training.continuous = False
  config.model.embedding_type = "positional"
  config.model.scale_by_sigma = False
  state, losses = _run_n(config, 4, collect=True)
  assert int(state.step) == 4 and all(np.isfinite(m["loss"]) for m in losses)
  assert losses[0]["moderation"] != 0.0 and losses[1]["moderation"] == 0.0  # period 2
