"""The train step: one device equals eight for the same global batch; it compiles once."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax import builders, parallel, train
from msgm_jax import train_step as ts
from tests.helpers import tiny_toy_config

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
  from msgm_jax import optim
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
