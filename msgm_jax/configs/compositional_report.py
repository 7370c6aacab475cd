"""The compositional report (issue 15 phase 2): every regime on the colour digits.

  python -m msgm_jax.main --config=configs/compositional_report.py --workdir=runs/compositional

NSFG: digit d in colour d mod 7 (msgm_jax/data/compositional.py), every factor value of which
the SFG data show. Rows: Standard, Unseen, the MSGM default (obtuse, repel, hinge; alpha 0.5
on every step), the release's two forms at the release's alpha 0.01 on every 4th step, the
default at alpha 0.1, the default fine-tuned from Standard, and the training-free obtuse
moderation on Unseen. Trains the digits classifier (the factored detector's shape reader) and
the 70-combination classifier (fd_classifier's features) into the workdir, evaluates each row
and writes report.{json,md,png}. Results: docs/compositional_report.md.
"""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets

ROWS = ("standard,unseen,obtuse_repel_hinge,orthogonal_elementwise@a0.01p4,"
        "obtuse_release@a0.01p4,obtuse_repel_hinge@a0.1p1,finetuned_obtuse_repel_hinge,"
        "unseen+free_obtuse")


def get_config():
  config = presets.colour_digits(
      model_presets.tiny(model_presets.ddpm(presets.vp(presets.base()))))
  return presets.compositional_report(config, ROWS)
