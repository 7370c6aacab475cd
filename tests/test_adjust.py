"""Training-free moderation with the exact toy score: NSFG mass goes, SFG stays."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax import adjust, exact, sampling
from msgm_jax import sde as sde_lib
from msgm_jax.data import TOY2D_MIXTURE as MIX
from msgm_jax.toy_metrics import toy_metrics

SDE = sde_lib.VESDE(sigma_min=0.01, sigma_max=10.0, N=300)
SCORE = exact.mixture_score_fn(SDE, exact.make_mixture(MIX.means, MIX.stds, MIX.weights))
REFS = MIX.restrict([2]).sample(np.random.default_rng(0), 64)[0]


def _sample(score_fn):
  run = jax.jit(lambda k: sampling.pc_sample(k, SDE, score_fn, (2000, 2), eps=1e-5)[0])
  return toy_metrics(np.asarray(run(jax.random.key(0))), MIX, [2], n_ref=4000)


@pytest.fixture(scope="module")
def plain():
  return _sample(SCORE)


# Removing the component only stops the pull towards NSFG data (a weak effect, measured 0.33
# -> 0.25); reflecting it pushes samples out (0.33 -> < 0.01).
@pytest.mark.parametrize("name,max_rate", [("obtuse", 0.03), ("orthogonal", 0.29)])
def test_adjustment_removes_nsfg_mass(plain, name, max_rate):
  ref = adjust.NSFGReference.build(REFS, bandwidth=1.0, max_noise=1.0)
  m = _sample(adjust.adjust(name, SCORE, SDE, ref, strength=3.0))
  assert plain["nsfg_rate"] > 0.3  # the exact full-mixture score generates the NSFG blob
  assert m["nsfg_rate"] < max_rate
  assert m["offmanifold"] < 0.01  # not by producing junk
  np.testing.assert_allclose(m["mode_shares"], [0.5, 0.5], atol=0.05)


def test_adjustment_geometry():
  ref = adjust.NSFGReference.build(np.array([[0.0, 0.0], [0.1, 0.0]]), bandwidth=1.0,
                                   max_noise=100.0)
  x = jnp.array([[1.0, 0.0], [1.0, 0.0]])
  t = jnp.full((2,), 1e-3)
  towards = lambda x, t: jnp.array([[-2.0, 1.0], [2.0, 1.0]])  # first points at the refs
  ortho = adjust.adjust("orthogonal", towards, SDE, ref)(x, t)
  obt = adjust.adjust("obtuse", towards, SDE, ref, strength=1.0)(x, t)
  gate = float(np.exp(-0.9**2 / 2 / (1.0 + SDE.sigma(t)[0] ** 2)))
  np.testing.assert_allclose(ortho[0], [-2.0 + 2.0 * gate, 1.0], rtol=1e-4)
  np.testing.assert_allclose(obt[0], [-2.0 + 4.0 * gate, 1.0], rtol=1e-4)
  np.testing.assert_allclose(obt[1], [2.0, 1.0])  # already pointing away: untouched
  np.testing.assert_allclose(ortho[1], [2.0, 1.0])


def test_bad_references_and_names():
  with pytest.raises(ValueError, match="at least 2 NSFG reference samples"):
    adjust.NSFGReference.build(np.zeros((1, 2)))
  ref = adjust.NSFGReference.build(REFS)
  with pytest.raises(ValueError, match="valid names: obtuse, orthogonal"):
    adjust.adjust("project", SCORE, SDE, ref)
