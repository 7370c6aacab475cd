"""NCSN++ (deep) on CIFAR-10 with the VE SDE (score_sde ve/cifar10_ncsnpp_deep_continuous.py)."""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets


def get_config():
  return model_presets.deep(model_presets.ncsnpp(presets.ve(presets.base())))
