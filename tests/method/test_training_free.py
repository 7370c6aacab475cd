"""Training-free moderation with the exact toy score: NSFG mass goes, SFG stays."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax.method import training_free as adjust
from msgm_jax.diffusion import exact
from msgm_jax.diffusion import sampling
from msgm_jax.diffusion import sde as sde_lib
from msgm_jax.data import TOY2D_MIXTURE as MIX
from msgm_jax.experiments.toy_metrics import toy_metrics

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
  gate = float(np.exp(-0.9**2 / 2 / (1.0 + 2 * SDE.sigma(t)[0] ** 2)))  # w^2 = h^2 + D std^2
  np.testing.assert_allclose(ortho[0], [-2.0 + 2.0 * gate, 1.0], rtol=1e-4)
  np.testing.assert_allclose(obt[0], [-2.0 + 4.0 * gate, 1.0], rtol=1e-4)
  np.testing.assert_allclose(obt[1], [2.0, 1.0])  # already pointing away: untouched
  np.testing.assert_allclose(ortho[1], [2.0, 1.0])


def _gate_in_numpy(x, refs, h, sigma, max_noise):
  """The gate and unit NSFG direction of a VE SDE (m = 1), written out in float64: width^2 =
  h^2 + D sigma^2, the expected squared distance of a point of the perturbed NSFG region."""
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  r = np.asarray(refs, np.float64).reshape(len(refs), -1)
  d2 = ((x[:, None] - r[None]) ** 2).sum(-1)
  gate = np.exp(-d2.min(1) / (2 * (h**2 + x.shape[1] * sigma**2)))
  gate *= np.exp(-sigma**2 / (2 * max_noise**2))
  logw = -d2 / (2 * sigma**2)
  w = np.exp(logw - logw.max(1, keepdims=True))
  w /= w.sum(1, keepdims=True)
  s_u = np.einsum("bm,bmd->bd", w, r[None] - x[:, None])
  return gate, s_u / np.linalg.norm(s_u, axis=1, keepdims=True)


@pytest.mark.parametrize("shape", [(2,), (8, 8, 1)])
@pytest.mark.parametrize("sigma", [0.05, 0.5])
def test_gate_means_the_same_at_any_dimension(shape, sigma):
  """Points drawn from the perturbed NSFG references are inside the gate (about exp(-1/2) or
  more) at D = 2 and at D = 64 alike; points six widths beyond them are outside. At D = 64 and sigma
  0.5 a gate without D in its width is ~1e-3 on the NSFG data itself."""
  rng = np.random.default_rng(0)
  d = int(np.prod(shape))
  refs = (0.1 * rng.normal(size=(16,) + shape)).astype(np.float32)
  ref = adjust.NSFGReference.build(refs, max_noise=100.0)  # bandwidth: median NN distance
  sde = sde_lib.VESDE(sigma_min=0.01, sigma_max=10.0)
  t = jnp.full((64,), np.log(sigma / 0.01) / np.log(10.0 / 0.01), jnp.float32)
  inside = refs[np.arange(64) % 16] + sigma * rng.normal(size=(64,) + shape)
  # Outside: six widths beyond the farthest reference, in random directions, plus noise.
  width = np.sqrt(ref.bandwidth**2 + d * sigma**2)
  radius = np.max(np.linalg.norm(refs.reshape(16, -1), axis=1)) + 6 * width
  away = rng.normal(size=(64, d))
  away *= radius / np.linalg.norm(away, axis=1)[:, None]
  far = away.reshape((64,) + shape) + sigma * rng.normal(size=(64,) + shape)
  for x, lo, hi in ((inside, 0.55, 1.0), (far, 0.0, 1e-4)):
    x = jnp.asarray(x, jnp.float32)
    unit, gate = ref.direction_and_gate(sde, x, t)
    assert unit.shape == x.shape and gate.shape == (64,)
    s = float(sde.sigma(t)[0])
    expect_gate, expect_unit = _gate_in_numpy(x, refs, ref.bandwidth, s, 100.0)
    np.testing.assert_allclose(gate, expect_gate, rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(np.asarray(unit).reshape(64, -1), expect_unit, atol=1e-4)
    assert lo <= float(np.mean(gate)) <= hi


def test_obtuse_adjustment_on_images():
  """On [B, 8, 8, 1] images, inside the NSFG region, a score pointing at the references is
  turned away from them (its component along the NSFG direction becomes non-positive)."""
  rng = np.random.default_rng(1)
  refs = (0.1 * rng.normal(size=(16, 8, 8, 1))).astype(np.float32)
  ref = adjust.NSFGReference.build(refs, max_noise=100.0)
  sde = sde_lib.VESDE(sigma_min=0.01, sigma_max=10.0)
  x = jnp.asarray(refs[:8] + 0.05 * rng.normal(size=(8, 8, 8, 1)), jnp.float32)
  t = jnp.full((8,), np.log(5.0) / np.log(1000.0), jnp.float32)  # sigma 0.05
  towards = lambda x, t: jnp.asarray(refs[:8]) - x
  out = jax.jit(adjust.adjust("obtuse", towards, sde, ref, strength=1.0))(x, t)
  unit, gate = ref.direction_and_gate(sde, x, t)
  along = lambda v: np.sum(np.asarray(v * unit).reshape(8, -1), 1)
  assert out.shape == x.shape and float(np.min(gate)) > 0.3
  assert np.all(along(towards(x, t)) > 0)
  # s - gate (1 + strength) <s, d> d: with gate g the component becomes (1 - 2 g) <s, d>.
  np.testing.assert_allclose(along(out), (1 - 2 * np.asarray(gate)) * along(towards(x, t)),
                             rtol=1e-4, atol=1e-6)


def test_bad_references_and_names():
  with pytest.raises(ValueError, match="at least 2 NSFG reference samples"):
    adjust.NSFGReference.build(np.zeros((1, 2)))
  ref = adjust.NSFGReference.build(REFS)
  with pytest.raises(ValueError, match="valid names: obtuse, orthogonal"):
    adjust.adjust("project", SCORE, SDE, ref)
