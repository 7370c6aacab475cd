"""Every config file loads and translates into typed objects (no data, no tracing)."""

import glob
import os

import pytest

from msgm_jax import builders, data
from msgm_jax.models import model_from_config
from tests.helpers import ROOT, load_config

CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "configs", "**",
                                                                           "*.py"), recursive=True))


def test_configs_were_found():
  assert len(CONFIGS) >= 15 and "configs/toy2d.py" in CONFIGS


@pytest.mark.parametrize("path", CONFIGS)
def test_config_translates(path):
  config = load_config(path)
  spec = data.DataSpec.from_config(config.data)
  model_from_config(config.model, data_shape=data.data_shape(spec), centered=spec.centered)
  builders.sde_from_config(config.training, config.model)
  step_cfg = builders.step_config(config)
  assert (step_cfg.msgm is not None) == (config.training.regime == "msgm")
  builders.SamplerSpec.from_config(config.sampling)
  assert config.training.n_iters > 0 and config.optim.lr > 0


def test_msgm_configs_use_the_papers_splits():
  assert load_config("configs/msgm/cifar10_ve_ncsnpp_continuous.py").data.nsfg_classes == (1, 5)
  celeba = load_config("configs/msgm/celeba64_ve_ncsnpp.py")
  assert celeba.data.nsfg_attribute == "Bangs" and celeba.model.sigma_max == 90.0
  assert load_config("configs/msgm/stl10_ve_ncsnpp.py").data.nsfg_classes == (0,)
  discrete = load_config("configs/msgm/cifar10_ddpm_discrete.py")
  assert not discrete.training.continuous and discrete.training.regime == "msgm"
