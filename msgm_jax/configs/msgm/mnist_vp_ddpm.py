"""MSGM on MNIST 28x28 (the CPU-scale image case), VP SDE, a small DDPM U-Net; NSFG digit 1
by default: --config.data.nsfg_classes=7 picks another."""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets


def get_config():
  config = presets.msgm(presets.mnist(model_presets.ddpm(presets.vp(presets.base()))))
  config.model.nf = 32
  config.model.ch_mult = (1, 2, 2)
  config.model.attn_resolutions = (7,)
  config.model.num_res_blocks = 1
  config.training.batch_size = 64
  config.training.n_iters = 50001
  config.training.snapshot_freq = 5000
  config.training.snapshot_freq_for_preemption = 1000
  return config
