"""MSGM on the colour digits (8x8x3, embedded): NSFG digit d in colour d mod 7, Obtuse (repel)."""

from msgm_jax import presets
from msgm_jax.models import presets as model_presets


def get_config():
  config = presets.colour_digits(
      model_presets.tiny(model_presets.ddpm(presets.vp(presets.base()))))
  return presets.msgm(config, variant="obtuse", sign="repel")
