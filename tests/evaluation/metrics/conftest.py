"""Shared fixtures of the metrics tests: the seeded stand-in Inception weights."""

import numpy as np
import pytest

from msgm_jax.evaluation.metrics import weights
from tests import inception_recipe


@pytest.fixture(scope="session")
def seeded_inception(tmp_path_factory):
  """(torch-named state dict, the same saved as .npz): tests/inception_recipe's seeded weights
  for every name of the Flax port's layout, plus BatchNorm counters as torch saves them."""
  layout = {name: shape for name, (shape, _, _) in weights.torch_layout().items()}
  state = inception_recipe.seeded_state_dict(layout)
  for name in layout:
    if name.endswith("bn.running_var"):
      state[name[:-len("running_var")] + "num_batches_tracked"] = np.asarray(0, np.int64)
  path = str(tmp_path_factory.mktemp("inception") / "seeded.npz")
  np.savez(path, **state)
  return state, path
