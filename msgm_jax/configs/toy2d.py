"""The README's main job: the paper's first figure on a 2-D toy, every regime side by side.

  python -m msgm_jax.main --config=configs/toy2d.py --workdir=runs/toy2d

Trains Standard, Unseen-by-Re-training and the MSGM variants (VE SDE, a small MLP, SFG blobs at
(-2,-2) and (2,2), NSFG blob at (0,0)), samples each, adds the exact-score and training-free
rows and the default MSGM variant fine-tuned from the Standard row (experiment.finetune_steps),
and writes report.{json,md,png}. Rows: msgm_jax/experiments/regimes.py (trained, fine-tuned,
<row>+free_<method>, sweep suffixes such as obtuse_repel@a0.1p1) and msgm_jax/experiments/toy.py (EXACT).
"""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets

ROWS = ("exact_standard,exact_sfg,standard,unseen,orthogonal_elementwise,orthogonal_inner,"
        "obtuse_release,obtuse_repel,obtuse_repel_hinge,finetuned_obtuse_repel_hinge,"
        "unseen+free_orthogonal,unseen+free_obtuse")


def get_config():
  config = model_presets.mlp(presets.toy2d(presets.ve(presets.base())))
  return presets.toy2d_experiment(config, ROWS)
