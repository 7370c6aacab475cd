"""The README's main job: the paper's first figure on a 2-D toy, every regime side by side.

  python -m msgm_jax.main --config=configs/toy2d.py --workdir=runs/toy2d

Trains Standard, Unseen-by-Re-training and the MSGM variants (VE SDE, a small MLP, SFG blobs at
(-2,-2) and (2,2), NSFG blob at (0,0)), samples each, adds the exact-score and training-free
rows, and writes report.{json,md,png}. Rows: msgm_jax/toy2d.py (TRAINED, EXACT, FREE); a
trained row may carry an alpha/period sweep suffix, e.g. obtuse_repel@a0.1p1.
"""

import ml_collections

from msgm_jax import presets
from msgm_jax.models import presets as model_presets


def get_config():
  config = model_presets.mlp(presets.toy2d(presets.ve(presets.base())))
  config.experiment = exp = ml_collections.ConfigDict()
  exp.name = "toy2d"
  exp.rows = ("exact_standard,exact_sfg,standard,unseen,orthogonal_elementwise,orthogonal_inner,"
              "obtuse_release,obtuse_repel,unseen+free_orthogonal,unseen+free_obtuse")
  exp.num_samples = 4000
  exp.seed = 0
  exp.disc_radius = 1.0
  exp.nsfg_refs = 64  # NSFG reference samples for the training-free rows
  exp.free_strength = 3.0
  exp.free_bandwidth = 1.0  # 0: median nearest-neighbour distance of the references
  exp.free_max_noise = 1.0
  return config
