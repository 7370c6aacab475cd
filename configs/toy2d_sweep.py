"""The toy's alpha / period sweep (method.md section 7): the release's alpha = 0.01 and
period = 4 were set for CIFAR-10 over 660k steps; on a short toy run they are re-examined
(alpha 0.1 and 0.5 with the term on every step).

  python -m msgm_jax.main --config=configs/toy2d_sweep.py --workdir=runs/toy2d_sweep
"""

import itertools

from msgm_jax import presets
from msgm_jax.models import presets as model_presets

BASES = ("orthogonal_elementwise", "orthogonal_inner", "obtuse_release", "obtuse_repel",
         "obtuse_repel_hinge")
SETTINGS = ((0.01, 4), (0.1, 1), (0.5, 1))


def get_config():
  rows = ["exact_sfg", "unseen"] + [f"{b}@a{a}p{p}" for b, (a, p) in
                                    itertools.product(BASES, SETTINGS)]
  config = model_presets.mlp(presets.toy2d(presets.ve(presets.base())))
  return presets.toy2d_experiment(config, ",".join(rows))
