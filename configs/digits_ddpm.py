"""The smallest image config: a tiny DDPM U-Net on the real 8x8 digits that ship in scikit-learn.

Trains on a laptop CPU (2 cores: ~30 steps/s). VP SDE, continuous time, data in [-1, 1].
  python -m msgm_jax.main --config=configs/digits_ddpm.py --workdir=runs/digits
"""

from msgm_jax import presets
from msgm_jax.models import presets as model_presets


def get_config():
  config = model_presets.tiny(model_presets.ddpm(presets.vp(presets.base())))
  data = config.data
  data.dataset = "digits"
  data.image_size = 8
  data.num_channels = 1
  data.random_flip = False
  data.nsfg_classes = (0,)  # for the unseen and msgm regimes
  config.model.attn_resolutions = (4,)
  config.model.ema_rate = 0.999
  training = config.training
  training.batch_size = 64
  training.n_iters = 4000
  training.snapshot_freq = 1000
  training.snapshot_freq_for_preemption = 500
  training.keep_every = 0
  training.log_freq = 50
  training.eval_freq = 500
  training.steps_per_call = 1
  config.optim.lr = 1e-3
  config.optim.warmup = 200
  config.sampling.batch_size = 64
  config.eval.batch_size = 128
  return config
