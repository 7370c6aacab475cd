"""A tiny DDPM U-Net on the colour digits (every digit in 7 colours, 8x8x3; embedded).

VP SDE, continuous time, data in [-1, 1]. Standard by default; Unseen by re-training with
--config.training.regime=unseen (NSFG: digit d in colour d mod 7, msgm_jax/data/compositional.py).
  python -m msgm_jax.main --config=configs/colour_digits_ddpm.py --workdir=runs/colour_digits
"""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets


def get_config():
  return presets.colour_digits(model_presets.tiny(model_presets.ddpm(presets.vp(presets.base()))))
