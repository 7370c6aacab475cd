"""One regime on the 2-D toy (docs/method.md section 7): the unit the toy2d experiment repeats.

  python -m msgm_jax.main --config=configs/toy2d_single.py --workdir=runs/toy_msgm \
      --config.training.regime=msgm --config.msgm.variant=obtuse --config.msgm.sign=repel
"""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets


def get_config():
  config = model_presets.mlp(presets.toy2d(presets.ve(presets.base())))
  return config
