"""MSGM on CelebA 64x64, VE SDE (sigma_max 90), NSFG = Bangs; score_sde's CelebA NCSN++ layout."""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets


def get_config():
  config = presets.msgm(presets.celeba64(model_presets.ncsnpp(presets.ve(presets.base()))))
  config.model.ch_mult = (1, 1, 2, 2, 2, 2, 2)
  config.model.num_res_blocks = 2
  config.training.batch_size = 64
  config.msgm.nsfg_batch_size = 64
  return config
