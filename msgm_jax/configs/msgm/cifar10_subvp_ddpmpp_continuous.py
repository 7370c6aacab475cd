"""MSGM on CIFAR-10, sub-VP SDE, DDPM++ (NSFG = automobile, dog)."""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets


def get_config():
  return presets.cifar10_msgm(model_presets.ddpmpp(presets.subvp(presets.base())))
