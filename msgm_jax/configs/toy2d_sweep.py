"""The toy's alpha / period sweep (docs/method.md section 7): the release's alpha = 0.01 and
period = 4 were set for CIFAR-10 over 660k steps; on a short toy run they are re-examined
(alpha 0.1 and 0.5 with the term on every step), and the hinge margin of the repelling term.

  python -m msgm_jax.main --config=configs/toy2d_sweep.py --workdir=runs/toy2d_sweep
"""

import itertools

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets

BASES = ("orthogonal_elementwise", "orthogonal_inner", "obtuse_release", "obtuse_repel")
SETTINGS = ("a0.01p4", "a0.1p1", "a0.5p1")
# The hinged repel term with margins 0 (orthogonality suffices), 0.1 and 1 (strictly obtuse).
HINGED = ("m0", "m0.1", "m1.0")


def get_config():
  rows = ["exact_sfg", "unseen"]
  rows += [f"{b}@{s}" for b, s in itertools.product(BASES, SETTINGS)]
  rows += [f"obtuse_repel_hinge@{s}{m}" for s, m in itertools.product(SETTINGS, HINGED)]
  config = model_presets.mlp(presets.toy2d(presets.ve(presets.base())))
  return presets.toy2d_experiment(config, ",".join(rows))
