"""trained.train_run and trained.load: a run trained by the API reads back as the training
loop left it, interpreted with the config stored in its checkpoint."""

import os

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax import trained
from msgm_jax.diffusion import exact
from msgm_jax.training import loop as train
from msgm_jax.config import validate
from msgm_jax.models.utils import make_score_fn
from tests.helpers import ROOT, tiny_toy_config

# tiny_toy_config's settings as overrides of configs/toy2d_single.py (regime unseen).
SHRINK = {"model.hidden": 32, "model.n_layers": 2, "training.batch_size": 64,
          "training.n_iters": 20, "training.steps_per_call": 5, "training.snapshot_freq": 20,
          "training.snapshot_freq_for_preemption": 10, "training.log_freq": 5,
          "training.snapshot_sampling": False, "model.num_scales": 50,
          "sampling.batch_size": 64, "training.regime": "unseen"}
TOY = os.path.join(ROOT, "configs", "toy2d_single.py")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
  """(the run as trained.load reads it, the final state of the same run trained in memory)."""
  workdir = trained.train_run(TOY, str(tmp_path_factory.mktemp("api")), SHRINK)
  reference = train.train_and_evaluate(tiny_toy_config(regime="unseen"),
                                       str(tmp_path_factory.mktemp("loop")))
  return trained.load(workdir), reference


def test_load_gives_the_runs_ema_weights_and_config(toy):
  run, reference = toy
  assert run.step == 20 and run.shape == (2,)
  chex.assert_trees_all_equal(run.ema_params, reference.ema_params)
  assert run.config.training.regime == "unseen" and run.config.model.hidden == 32
  assert run.config.data.nsfg_classes == (2,)  # stored as a JSON list, read back as a tuple
  assert run.sde.sigma_max == 10.0 and run.sde.N == 50
  x, t = jnp.array([[0.5, -1.0], [2.0, 2.0]]), jnp.array([0.3, 0.7])
  direct = make_score_fn(run.model.apply, reference.ema_params, run.sde)
  np.testing.assert_array_equal(run.score_fn()(x, t), direct(x, t))


def test_exact_mixture_is_the_toy_data(toy):
  run, _ = toy
  sfg, nsfg = run.exact_mixture("sfg"), run.exact_mixture("nsfg")
  np.testing.assert_array_equal(sfg.means, [[-2.0, -2.0], [2.0, 2.0]])
  np.testing.assert_allclose(sfg.weights, [0.5, 0.5])
  np.testing.assert_array_equal(nsfg.means, [[0.0, 0.0]])
  np.testing.assert_array_equal(run.exact_mixture("all").stds, [0.5, 0.5, 0.5])
  # At a tiny noise level next to the NSFG blob, its score is -(x - 0) / 0.5^2.
  x, t = jnp.array([[0.1, -0.2]]), jnp.array([0.0])
  np.testing.assert_allclose(exact.mixture_score(run.sde, nsfg, x, t), -x / 0.25, rtol=1e-3)
  with pytest.raises(ValueError, match="subset='safe' is not one of sfg, nsfg, all"):
    run.exact_mixture("safe")


def test_nsfg_references_are_nsfg_points(toy):
  run, _ = toy
  refs = run.nsfg_references(16)
  assert refs.shape == (16, 2)
  assert np.all(np.linalg.norm(refs, axis=1) < 2.5)  # the (0, 0) blob, std 0.5
  np.testing.assert_array_equal(run.to_data(refs), refs)  # points: no scaling


def test_mistakes_get_one_line_naming_the_fix(tmp_path):
  with pytest.raises(validate.ConfigError, match="did you mean --config.training.n_iters"):
    trained.train_run(TOY, str(tmp_path / "typo"), {"training.n_itres": 5})
  with pytest.raises(FileNotFoundError, match="no checkpoints in .*; train first"):
    trained.load(str(tmp_path))
