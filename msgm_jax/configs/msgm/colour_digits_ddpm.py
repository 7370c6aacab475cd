"""MSGM on the colour digits (8x8x3, embedded): NSFG digit d in colour d mod 7, the redirect
moderation (msgm_jax/method/moderation.py) with the setting that meets issue 19's goal here.

The fields are moderation.PRESETS["redirect"], spelled out: alpha 0.2 every step, the NSFG
batch's noise window std >= 0.3, and all SFG training images as the references. Measured in
docs/compositional_report.md (phase 3): Unseen's 6.85% NSFG samples fall to 2.2% at
fd_classifier 1.03x (3 seeds / NSFG sets / budgets in that section). The phase-2 default
(Obtuse, repelling, hinged) is `--config.msgm.variant=obtuse --config.msgm.alpha=0.01
--config.msgm.period=4 --config.msgm.std_min=0 --config.msgm.num_refs=0`.
"""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets


def get_config():
  config = presets.colour_digits(
      model_presets.tiny(model_presets.ddpm(presets.vp(presets.base()))))
  return presets.msgm(config, variant="redirect", alpha=0.2, period=1, std_min=0.3,
                      std_max=0.0, num_refs=-1)
