"""DDPM on CIFAR-10 with the VP SDE, continuous time (score_sde vp/ddpm/cifar10_continuous.py)."""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets


def get_config():
  return model_presets.ddpm(presets.vp(presets.base()))
