"""MSGM on CIFAR-10, VE SDE, NCSN++ (NSFG = automobile, dog). Variant/options on the command line:
  --config.msgm.variant=obtuse --config.msgm.sign=repel; --config.training.regime=unseen|standard
Fine-tune a Standard run instead: --config.training.init_from=<its workdir>.
"""

from msgm_jax.config import presets
from msgm_jax.models import presets as model_presets


def get_config():
  return presets.cifar10_msgm(model_presets.ncsnpp(presets.ve(presets.base())))
