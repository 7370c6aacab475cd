"""The digits alpha / period sweep (docs/digits_report.md): the release's alpha 0.01 on every
4th step against alpha 0.1 and 0.5 on every step, for the default MSGM term fine-tuned from
Standard and trained from scratch. Writes sweep.{json,md,png}.

  python -m msgm_jax.main --config=configs/digits_sweep.py --workdir=runs/digits

In the workdir of configs/digits_report.py it reuses that report's Standard and Unseen runs
and their evaluations (the same settings), and the other way round.
"""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets

# The report's own obtuse_repel_hinge rows are alpha 0.5 on every step (period 1); the sweep adds
# the release's alpha 0.01 on every 4th step and alpha 0.1 on every step, from scratch and
# fine-tuned from Standard.
SETTINGS = ("a0.01p4", "a0.1p1")
ROWS = ",".join(["standard", "unseen"] +
                [f"{base}@{s}" for base in ("obtuse_repel_hinge", "finetuned_obtuse_repel_hinge")
                 for s in SETTINGS] + ["obtuse_repel_hinge", "finetuned_obtuse_repel_hinge"])


def get_config():
  config = presets.digits(model_presets.tiny(model_presets.ddpm(presets.vp(presets.base()))))
  return presets.digits_report(config, ROWS, report="sweep")
