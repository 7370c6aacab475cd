"""The smallest image config: a tiny DDPM U-Net on the real 8x8 digits that ship in scikit-learn.

Trains on a laptop CPU (2 cores: ~10-20 steps/s). VP SDE, continuous time, data in [-1, 1].
  python -m msgm_jax.main --config=configs/digits_ddpm.py --workdir=runs/digits

The regime is Standard (training.regime=standard): it trains on every digit. Digit 0 is
declared NSFG (data.nsfg_classes=(0,)) only so that eval reports SFG and NSFG numbers
separately and the unseen / msgm regimes know what to leave out
(`--config.training.regime=unseen` trains without the zeros).
"""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets


def get_config():
  return presets.digits(model_presets.tiny(model_presets.ddpm(presets.vp(presets.base()))))
