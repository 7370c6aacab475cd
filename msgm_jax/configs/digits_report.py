"""The digits reproduction (issue 9): every regime on the real 8x8 digits, NSFG digit 9.

  python -m msgm_jax.main --config=configs/digits_report.py --workdir=runs/digits

Trains the digits classifier (unless --config.eval.classifier_weights=<its workdir>),
Standard, Unseen, the MSGM default (obtuse, repel, hinge), the release's two forms
(orthogonal elementwise; obtuse with the release's sign, no hinge), the MSGM default
fine-tuned from the Standard checkpoint, and the training-free obtuse moderation on Unseen and
on Standard; evaluates each (nsfg_rate with its 95% interval, fd_classifier, bpd on SFG and
NSFG test digits) and writes report.{json,md,png}. Results and how to read them:
docs/digits_report.md. The alpha / period sweep is configs/digits_sweep.py (same workdir: it
reuses the Standard and Unseen runs).
"""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets

ROWS = ("standard,unseen,obtuse_repel_hinge,orthogonal_elementwise,obtuse_release,"
        "finetuned_obtuse_repel_hinge,unseen+free_obtuse,standard+free_obtuse")


def get_config():
  config = presets.digits(model_presets.tiny(model_presets.ddpm(presets.vp(presets.base()))))
  return presets.digits_report(config, ROWS)
