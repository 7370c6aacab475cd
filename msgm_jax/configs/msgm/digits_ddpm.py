"""MSGM on the embedded 8x8 digits (runs on a laptop CPU): NSFG digit 0, Obtuse (repel)."""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets


def get_config():
  config = presets.digits(model_presets.tiny(model_presets.ddpm(presets.vp(presets.base()))))
  return presets.msgm(config, variant="obtuse", sign="repel")
