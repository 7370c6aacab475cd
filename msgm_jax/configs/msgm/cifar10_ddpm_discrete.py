"""MSGM with the discrete DDPM loss (Ho et al.) on CIFAR-10: the release crashes here; the
moderation terms act on s = -eps_theta / sqrt(1 - alphabar_i) (msgm_jax/diffusion/losses.py)."""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets


def get_config():
  config = presets.cifar10_msgm(model_presets.ddpm(presets.vp(presets.base())))
  config.training.continuous = False
  config.sampling.predictor = "ancestral_sampling"
  return config
