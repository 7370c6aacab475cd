"""DDPM++ on CIFAR-10 with the VP SDE, continuous (score_sde vp/cifar10_ddpmpp_continuous.py)."""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets


def get_config():
  return model_presets.ddpmpp(presets.vp(presets.base()))
