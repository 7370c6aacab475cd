"""NCSN++ on CIFAR-10 with the VE SDE, continuous (score_sde ve/cifar10_ncsnpp_continuous.py)."""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets


def get_config():
  return model_presets.ncsnpp(presets.ve(presets.base()))
