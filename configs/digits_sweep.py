"""The digits alpha / period sweep (docs/digits_report.md): the release's alpha 0.01 on every
4th step against stronger settings, for the default MSGM term fine-tuned from Standard and
trained from scratch. Writes sweep.{json,md,png}.

  python -m msgm_jax.main --config=configs/digits_sweep.py --workdir=runs/digits

In the workdir of configs/digits_report.py it reuses that report's Standard and Unseen runs
and their evaluations (the same settings), and the other way round.
"""

from msgm_jax import presets
from msgm_jax.models import presets as model_presets

SETTINGS = ("a0.01p4", "a0.1p4", "a0.1p1", "a0.5p1")  # a0.01p4: the release's
ROWS = ",".join(["standard", "unseen"] +
                [f"finetuned_obtuse_repel_hinge@{s}" for s in SETTINGS] +
                [f"obtuse_repel_hinge@{s}" for s in ("a0.01p4", "a0.1p1", "a0.5p1")])


def get_config():
  config = presets.digits(model_presets.tiny(model_presets.ddpm(presets.vp(presets.base()))))
  return presets.digits_report(config, ROWS, report="sweep")
