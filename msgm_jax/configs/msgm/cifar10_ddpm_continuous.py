"""The authors' release's own CIFAR-10 experiment, reproduced: the DDPM U-Net, the continuous VP
SDE, probability-flow ODE sampling (RK45, rtol = atol = 1e-5) and the release's loss forms
(msgm.preset=release): Orthogonal elementwise, reduce((s std z)^2), by default; with
--config.msgm.variant=obtuse the release's Obtuse, reduce(s std z) (the sign that pulls towards
the NSFG data, no hinge). alpha 0.01 on every 4th step, 400 SFG + 400 NSFG (automobile, dog)
per step, 660k steps. This project's default moderation (obtuse, repel, hinge, margin 1) is
what the other msgm/ configs use.
"""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets


def get_config():
  config = presets.cifar10_msgm(model_presets.ddpm(presets.vp(presets.base())))
  config.msgm.variant = "orthogonal"
  config.msgm.preset = "release"
  config.sampling.method = "ode"
  return config
