"""Config agreement with a run, and the names of outputs of given settings."""

import pytest

from msgm_jax.config import agreement
from msgm_jax.training import checkpoint
from tests.helpers import load_config, tiny_toy_config


def test_model_and_sde_fields_must_agree_and_each_difference_is_named():
  saved = checkpoint.dumps_config(tiny_toy_config())
  config = tiny_toy_config(sde="vpsde", n_iters=99)
  config.model.sigma_max = 50.0
  config.sampling.snr = 0.2
  with pytest.raises(agreement.ConfigMismatch) as e:
    agreement.check(saved, config, "runs/x/checkpoints/20")
  message = str(e.value)
  assert "\n" not in message and "runs/x/checkpoints/20" in message
  assert "training.sde='vpsde' (the run's: 'vesde')" in message
  assert "model.sigma_max=50.0 (the run's: 10.0)" in message
  assert "n_iters" not in message and "snr" not in message  # may differ
  assert "--allow_config_change" in message
  changed = agreement.check(saved, config, "x", allow=True)
  assert "training.n_iters: 20 -> 99" in changed and "sampling.snr: 0.16 -> 0.2" in changed


def test_sampler_eval_and_schedule_fields_may_differ():
  saved = checkpoint.dumps_config(tiny_toy_config())
  config = tiny_toy_config(n_iters=40, log_freq=10)
  config.sampling.method = "ode"
  config.eval.batch_size = 8
  config.model.ema_rate = 0.5  # training hyper-parameters of the model section, too
  config.model.num_scales = 1000  # the sampler's N under continuous training
  assert len(agreement.check(saved, config, "x")) == 6


def test_num_scales_defines_a_discrete_time_model():
  config = load_config("configs/msgm/cifar10_ddpm_discrete.py")
  saved = checkpoint.dumps_config(config)
  config.model.num_scales = 10
  with pytest.raises(agreement.ConfigMismatch, match="model.num_scales=10"):
    agreement.check(saved, config, "x")


def test_settings_tags_differ_exactly_when_the_named_fields_do():
  a, b = tiny_toy_config(), tiny_toy_config(n_iters=1234)
  tag = agreement.settings_tag(a, ("sampling.", "seed"))
  assert len(tag) == 8 and tag == agreement.settings_tag(b, ("sampling.", "seed"))
  b.sampling.snr = 0.3
  assert agreement.settings_tag(b, ("sampling.", "seed")) != tag
  assert agreement.settings_tag(b, ("sampling.", "seed"), exclude=("sampling.snr",)) == \
      agreement.settings_tag(a, ("sampling.", "seed"), exclude=("sampling.snr",))
