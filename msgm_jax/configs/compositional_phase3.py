"""The compositional report's phase 3 (issue 19): the redirect moderation on the colour digits.

  python -m msgm_jax.main --config=configs/compositional_phase3.py --workdir=runs/c3

The phase-2 recipe (presets.compositional_report: 2000 training steps, 500 fine-tuning
steps, 500 Euler-Maruyama sampler steps, the factored detector) with 2000 samples per row, all
drawn from the same sampler keys so that rows pair sample by sample with `unseen` (McNemar's
exact test in report.md). Rows: Unseen and Standard, then the redirect variant
(msgm_jax/method/moderation.py) over alpha, the NSFG batch's noise window (w<lo>[_<hi>]) and its
SFG references (the step's SFG batch, or r9000: all 9000 SFG training images, what
msgm.preset=redirect's num_refs=-1 takes on this set), from scratch and fine-tuned from Unseen
and from Standard. About 70 minutes on 2 cores; rerunning reuses finished rows. Results:
docs/compositional_report.md, phase 3.
"""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets

ROWS = ("unseen,standard,"
        "redirect@a0.5p1w0.3,redirect@a0.5p1w0.1,redirect@a0.5p1w0.3_0.9,"
        "redirect@a0.2p1w0.3,redirect@a0.2p1w0.2,redirect@a0.3p1w0.3,redirect@a0.2p1w0.3r9000,"
        "unseen_finetuned_redirect@a0.2p1w0.3,finetuned_redirect@a0.2p1w0.3,"
        "unseen_finetuned_redirect@a0.2p1w0.3r9000,finetuned_redirect@a0.2p1w0.3r9000")


def get_config():
  config = presets.colour_digits(
      model_presets.tiny(model_presets.ddpm(presets.vp(presets.base()))))
  config = presets.compositional_report(config, ROWS)
  config.eval.num_samples = 2000
  return config
