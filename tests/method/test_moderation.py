"""Moderation terms against hand computations, and the direction each one moves the score."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax.diffusion import losses
from msgm_jax.method import moderation
from msgm_jax.diffusion.losses import LossConfig, Perturbed
from msgm_jax.method.moderation import MSGMConfig

Z = jnp.array([[1.0, -2.0, 0.5, 0.0], [0.5, 0.5, -1.0, 2.0]])
S = jnp.array([[0.3, 0.1, -0.4, 1.0], [-1.0, 0.2, 0.0, 0.5]])
STD = jnp.array([0.5, 2.0])
MEAN = LossConfig(reduce_mean=True)
HALF_SUM = LossConfig(reduce_mean=False)


def _p(score=S, weight=None):
  return Perturbed(Z, STD, score, jnp.ones(2) if weight is None else weight)


def _term(p, cfg=MEAN, **kw):
  mcfg = MSGMConfig(**kw)
  return np.asarray(moderation.MODERATIONS.get(mcfg.variant)(p, cfg, mcfg))


def test_orthogonal_elementwise_by_hand():
  # Example 0: s * std * z = [0.15, -0.1, -0.1, 0]; squares sum to 0.0425.
  # Example 1: [-1.0, 0.2, 0.0, 2.0]; squares sum to 5.04.
  np.testing.assert_allclose(_term(_p(), variant="orthogonal"), [0.0425 / 4, 5.04 / 4], rtol=1e-6)
  np.testing.assert_allclose(_term(_p(), HALF_SUM, variant="orthogonal"), [0.0425 / 2, 5.04 / 2],
                             rtol=1e-6)


def test_orthogonal_inner_and_cosine_by_hand():
  # <s, std z>: example 0: 0.15 - 0.1 - 0.1 = -0.05; example 1: -1 + 0.2 + 0 + 2 = 1.2.
  np.testing.assert_allclose(_term(_p(), variant="orthogonal", form="inner"),
                             [(-0.05 / 4) ** 2, (1.2 / 4) ** 2], rtol=1e-5)
  s, z = np.asarray(S), np.asarray(Z)
  cos2 = (s * z).sum(1) ** 2 / ((s * s).sum(1) * (z * z).sum(1))
  np.testing.assert_allclose(_term(_p(), variant="orthogonal", form="cosine"), cos2, rtol=1e-5)


def test_obtuse_signs_and_hinge_by_hand():
  release = _term(_p(), variant="obtuse", sign="release")
  np.testing.assert_allclose(release, [-0.05 / 4, 1.2 / 4], rtol=1e-5)
  np.testing.assert_allclose(_term(_p(), variant="obtuse", sign="repel"), -release, rtol=1e-6)
  np.testing.assert_allclose(_term(_p(), variant="obtuse", sign="repel", hinge=True),
                             [0.05 / 4, 0.0], rtol=1e-5)


def test_hinge_margin_asks_for_a_strictly_obtuse_angle():
  # repel values: example 0: 0.05 / 4 = 0.0125; example 1: -1.2 / 4 = -0.3.
  np.testing.assert_allclose(
      _term(_p(), variant="obtuse", sign="repel", hinge=True, margin=0.1), [0.1125, 0.0],
      rtol=1e-5)
  np.testing.assert_allclose(
      _term(_p(), HALF_SUM, variant="obtuse", sign="repel", hinge=True, margin=0.4),
      [2 * 0.4125, 2 * 0.1], rtol=1e-5)


# Every variant, as (MSGMConfig fields, the term as a function of v = s z / std [B, D], the
# score s, the noise z; before the reduction's scale, which the scale-free cosine does not
# take, and g^2). Written out from docs/method.md section 4.
WEIGHTED = [
    (dict(variant="orthogonal", form="elementwise"), lambda v, s, z: np.mean(v**2, 1)),
    (dict(variant="orthogonal", form="inner"), lambda v, s, z: np.mean(v, 1) ** 2),
    (dict(variant="orthogonal", form="cosine"),
     lambda v, s, z: np.sum(s * z, 1) ** 2 / (np.sum(s * s, 1) * np.sum(z * z, 1))),
    (dict(variant="obtuse", sign="release"), lambda v, s, z: np.mean(v, 1)),
    (dict(variant="obtuse", sign="repel"), lambda v, s, z: -np.mean(v, 1)),
    (dict(variant="obtuse", sign="repel", hinge=True, margin=0.3),
     lambda v, s, z: np.maximum(-np.mean(v, 1) + 0.3, 0.0)),
]


def _sde_in_numpy(name, t):
  """(std(t), g(t)^2) of the default VE / VP SDEs, from docs/method.md section 2."""
  if name == "vesde":
    s0, s1 = 0.01, 50.0
    std = s0 * (s1 / s0) ** t
    return std, std**2 * 2 * np.log(s1 / s0)
  b0, b1 = 0.1, 20.0
  return np.sqrt(1 - np.exp(-0.5 * t**2 * (b1 - b0) - t * b0)), b0 + t * (b1 - b0)


@pytest.mark.parametrize("sde_name", ["vesde", "vpsde"])
@pytest.mark.parametrize("fields,formula", WEIGHTED,
                         ids=["-".join(map(str, f.values())) for f, _ in WEIGHTED])
def test_likelihood_weighted_terms_are_the_release_formula(sde_name, fields, formula):
  """With likelihood weighting the release's terms are reduce((s z / std)^2) g^2 and
  reduce(s z / std) g^2 (and so on per variant): weighted by g(t)^2, at every t."""
  from msgm_jax.diffusion import sde as sde_lib  # pylint: disable=import-outside-toplevel
  sde = sde_lib.get_sde(sde_name)
  seen = {}

  def score_fn(x, t):  # a known score; records where it was asked (eager, not jitted)
    seen["x"], seen["t"] = np.asarray(x, np.float64), np.asarray(t, np.float64)
    return jnp.sin(3.0 * x) - 0.5 * x

  n, d = 32, 4
  keys = losses.example_keys(jax.random.key(7), jnp.arange(n))
  for cfg, scale in ((LossConfig(reduce_mean=True, likelihood_weighting=True), 1.0),
                     (LossConfig(reduce_mean=False, likelihood_weighting=True), 0.5 * d)):
    # Clean NSFG data at 0, so x~ = std z (VE and VP alike) and z = x~ / std.
    got = moderation.moderation_loss(keys, jnp.zeros((n, d)), score_fn, sde, cfg,
                                     MSGMConfig(**fields))
    x, t = seen["x"], seen["t"]
    assert t.min() < 0.1 and t.max() > 0.9  # several noise levels, low ones included
    std, g2 = _sde_in_numpy(sde_name, t)
    z = x / std[:, None]
    s = np.sin(3.0 * x) - 0.5 * x
    if fields.get("form") == "cosine":
      scale = 1.0
    expect = scale * formula(s * z / std[:, None], s, z) * g2
    np.testing.assert_allclose(got, expect, rtol=2e-4, atol=1e-6)


def _descend(score, **kw):
  """One gradient step on the term, with the score as a free variable."""
  grad = jax.grad(lambda s: jnp.sum(_term_jax(s, **kw)))(score)
  return score - 0.1 * grad


def _term_jax(score, **kw):
  mcfg = MSGMConfig(**kw)
  return moderation.MODERATIONS.get(mcfg.variant)(_p(score), MEAN, mcfg)


def _along_z(v):
  return np.sum(np.asarray(v) * np.asarray(Z), axis=1)


def test_release_obtuse_moves_score_towards_nsfg_sample_and_repel_away():
  # The direction from x~ back to the clean NSFG sample is -z.
  moved = _descend(S, variant="obtuse", sign="release") - S
  assert np.all(_along_z(moved) < 0), "release sign aligns s with -z: towards the NSFG sample"
  moved = _descend(S, variant="obtuse", sign="repel") - S
  assert np.all(_along_z(moved) > 0), "repel sign turns s away from the NSFG sample"


def test_hinge_stops_once_the_angle_is_obtuse():
  # Example 1 already has <s, -z> < 0 (obtuse): no gradient there; example 0 does not.
  moved = np.asarray(_descend(S, variant="obtuse", sign="repel", hinge=True) - S)
  assert np.allclose(moved[1], 0.0) and _along_z(moved)[0] > 0


def test_orthogonal_forms_shrink_what_they_claim():
  new = np.asarray(_descend(S, variant="orthogonal"))
  s, z = np.asarray(S), np.asarray(Z)
  nz = z != 0
  assert np.all(np.abs(new[nz]) <= np.abs(s[nz]))  # every coordinate shrinks towards 0
  np.testing.assert_allclose(new[~nz], s[~nz])
  new = np.asarray(_descend(S, variant="orthogonal", form="inner"))
  assert np.all(np.abs(_along_z(new)) < np.abs(_along_z(s)))
  unit = z / np.linalg.norm(z, axis=1, keepdims=True)
  perp = lambda v: v - np.sum(v * unit, 1, keepdims=True) * unit
  np.testing.assert_allclose(perp(new), perp(s), atol=1e-6)  # the orthogonal part is untouched


def test_objective_applies_moderation_on_period_only():
  mix_score = lambda x, t: -x
  from msgm_jax.diffusion import sde as sde_lib
  sde = sde_lib.VESDE()
  x = jnp.ones((4, 2))
  keys = losses.example_keys(jax.random.key(0), jnp.arange(4))
  cfg = MSGMConfig(alpha=0.25, period=4)
  on, aux_on = moderation.msgm_objective(jnp.asarray(8), (keys, x), (keys, -x), mix_score, sde,
                                         MEAN, cfg)
  off, aux_off = moderation.msgm_objective(jnp.asarray(9), (keys, x), (keys, -x), mix_score, sde,
                                           MEAN, cfg)
  assert float(aux_off["moderation"]) == 0.0 and float(aux_on["moderation"]) > 0.0
  np.testing.assert_allclose(off, 0.75 * aux_off["dsm"], rtol=1e-6)
  np.testing.assert_allclose(on, 0.75 * aux_on["dsm"] + 0.25 * aux_on["moderation"], rtol=1e-6)


@pytest.mark.parametrize("step", [8, 9])
def test_static_activity_equals_the_run_time_branch(step):
  """active=True/False (fixed at trace time, no lax.cond) gives the cond's loss and gradient."""
  from msgm_jax.diffusion import sde as sde_lib
  sde = sde_lib.VESDE()
  x = jax.random.normal(jax.random.key(3), (4, 2))
  keys = losses.example_keys(jax.random.key(0), jnp.arange(4))
  cfg = MSGMConfig(variant="obtuse", sign="repel", hinge=True, margin=1.0, alpha=0.25, period=4)

  def loss(w, active):
    score = lambda y, t: -w * y / (1.0 + t[:, None])
    return moderation.msgm_objective(jnp.asarray(step), (keys, x), (keys, 2 - x), score, sde,
                                     MEAN, cfg, active=active)[0]

  w = jnp.asarray(0.7)
  dynamic = jax.jit(jax.value_and_grad(lambda w: loss(w, None)))(w)
  static = jax.jit(jax.value_and_grad(lambda w: loss(w, step % 4 == 0)))(w)
  np.testing.assert_allclose(np.asarray(static), np.asarray(dynamic), rtol=1e-6)
  assert float(dynamic[1]) != 0.0


def test_bad_settings_are_refused():
  with pytest.raises(ValueError, match="valid names: obtuse, orthogonal"):
    MSGMConfig(variant="parallel")
  with pytest.raises(ValueError, match="msgm.sign='away' is not one of release, repel"):
    MSGMConfig(variant="obtuse", sign="away")
  with pytest.raises(ValueError, match="msgm.form"):
    MSGMConfig(form="outer")
  with pytest.raises(ValueError, match="msgm.period >= 1"):
    MSGMConfig(period=0)


# --- redirect and the noise window (docs/compositional_report.md phase 3) ---

REFS = np.array([[1.0, 0.0, -1.0, 0.5], [-0.5, 1.0, 0.0, 0.0], [0.2, -0.3, 0.8, -1.0]],
                np.float32)


def test_sfg_posterior_mean_is_bayes_over_the_references():
  x_t = jnp.array([[0.4, 0.1, -0.6, 0.3], [-0.1, 0.2, 0.5, -0.4]])
  m, std = jnp.array([0.8, 0.3]), jnp.array([0.6, 0.95])
  got = np.asarray(moderation.sfg_posterior_mean(x_t, m, std, jnp.asarray(REFS)))
  for b in range(2):
    d2 = ((np.asarray(x_t[b])[None] - float(m[b]) * REFS) ** 2).sum(1)
    w = np.exp(-d2 / (2 * float(std[b]) ** 2))
    np.testing.assert_allclose(got[b], (w / w.sum()) @ REFS, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sde_name,continuous", [("vpsde", True), ("subvpsde", True),
                                                 ("vesde", True), ("vpsde", False),
                                                 ("vesde", False)])
def test_redirect_vanishes_at_the_exact_score_of_the_references(sde_name, continuous):
  """The term's minimiser is the exact score of the perturbed reference distribution (a
  mixture of point masses at the SFG references, exact.mixture_score): 0 there, at NSFG data
  and any noise level, while the exact score of the NSFG data itself is penalised."""
  from msgm_jax.diffusion import exact  # pylint: disable=import-outside-toplevel
  from msgm_jax.diffusion import sde as sde_lib
  sde = sde_lib.get_sde(sde_name)
  refs = jnp.asarray(REFS)
  nsfg = jnp.array([[0.9, 0.9, 0.9, 0.9]] * 16)

  def point_masses(points):
    if continuous:
      return exact.mixture_score_fn(sde, exact.make_mixture(points, 0.0))

    def score(x, t):  # the discrete ladder's (m, std) at the step t names
      m, std = losses._discrete_scale(sde, sde.timestep(t))  # pylint: disable=protected-access
      x0 = moderation.sfg_posterior_mean(x, m, std, points)
      return -(x - m[:, None] * x0) / (std**2)[:, None]
    return score

  sfg_score, nsfg_score = point_masses(refs), point_masses(nsfg[:1])
  cfg = LossConfig(continuous=continuous, reduce_mean=True)
  keys = losses.example_keys(jax.random.key(3), jnp.arange(16))
  mcfg = MSGMConfig(variant="redirect", std_min=0.2)
  at_sfg = moderation.moderation_loss(keys, nsfg, sfg_score, sde, cfg, mcfg, refs=refs)
  at_nsfg = moderation.moderation_loss(keys, nsfg, nsfg_score, sde, cfg, mcfg, refs=refs)
  assert float(jnp.max(at_sfg)) < 1e-6 * float(jnp.mean(at_nsfg))
  assert float(jnp.min(at_nsfg)) > 0


@pytest.mark.parametrize("sde_name,continuous,window", [
    ("vpsde", True, (0.3, 0.9)), ("subvpsde", True, (0.1, 0.5)), ("vesde", True, (1.0, 0.0)),
    ("vpsde", False, (0.3, 0.9)), ("vesde", False, (0.5, 5.0))])
def test_noise_window_draws_only_noise_levels_inside_it(sde_name, continuous, window):
  from msgm_jax.diffusion import sde as sde_lib  # pylint: disable=import-outside-toplevel
  sde = sde_lib.get_sde(sde_name)
  cfg = LossConfig(continuous=continuous)
  bounds = losses.noise_window(sde, cfg, *window)
  seen = {}

  def score_fn(x, t):
    seen["t"] = t
    return jnp.zeros_like(x)

  keys = losses.example_keys(jax.random.key(0), jnp.arange(2000))
  p = losses.perturb(keys, jnp.zeros((2000, 2)), score_fn, sde, cfg, bounds)
  std = np.asarray(p.std)
  lo, hi = window[0], window[1] or np.inf
  assert std.min() >= lo * (1 - 1e-3) and std.max() <= hi * (1 + 1e-3)
  # the window is filled: the drawn std reaches both ends (to the grid's resolution)
  full = np.asarray(losses.perturb(keys, jnp.zeros((2000, 2)), score_fn, sde, cfg).std)
  assert std.min() < np.quantile(full[full >= lo], 0.02)
  assert std.max() > np.quantile(full[full <= hi], 0.98)


def test_noise_window_outside_the_sde_is_refused():
  from msgm_jax.diffusion import sde as sde_lib  # pylint: disable=import-outside-toplevel
  with pytest.raises(ValueError, match="std runs from"):
    losses.noise_window(sde_lib.get_sde("vpsde"), LossConfig(), 1.5, 0.0)
  with pytest.raises(ValueError, match="std_min < msgm.std_max"):
    MSGMConfig(variant="redirect", std_min=0.5, std_max=0.4)
  with pytest.raises(ValueError, match="num_refs=-2 must be >= -1"):
    MSGMConfig(variant="redirect", num_refs=-2)


def test_redirect_objective_trains_under_jit_with_a_window():
  """The MSGM objective with redirect: its gradient moves a score model's output towards the
  references' exact score at NSFG points (one linear model, a few steps of gradient descent)."""
  from msgm_jax.diffusion import sde as sde_lib  # pylint: disable=import-outside-toplevel
  sde = sde_lib.get_sde("vpsde")
  refs, nsfg = jnp.asarray(REFS), jnp.full((8, 4), 0.9)
  cfg, mcfg = LossConfig(reduce_mean=True), MSGMConfig(variant="redirect", alpha=1.0, period=1,
                                                       std_min=0.3)
  keys = losses.example_keys(jax.random.key(1), jnp.arange(8))

  def loss(w):
    score_fn = lambda x, t: x @ w  # pylint: disable=unnecessary-lambda-assignment
    return moderation.msgm_objective(jnp.asarray(0), (keys[:3], refs), (keys, nsfg), score_fn, sde,
                                     cfg, mcfg, active=True)[0]

  step = jax.jit(jax.value_and_grad(loss))
  w = jnp.zeros((4, 4))
  first, _ = step(w)
  for _ in range(50):
    value, g = step(w)
    w = w - 0.5 * g
  assert float(value) < 0.5 * float(first)


def test_redirect_reference_bank_replaces_the_sfg_batch():
  """refs=None uses the step's SFG batch; an explicit bank equal to it gives the same loss, a
  bigger bank another; builders.sfg_reference_bank takes the first num_refs SFG examples."""
  from msgm_jax import data  # pylint: disable=import-outside-toplevel
  from msgm_jax.config import builders
  from msgm_jax.diffusion import sde as sde_lib
  from msgm_jax.method.step import StepConfig  # pylint: disable=import-outside-toplevel
  from msgm_jax.method.optim import OptimConfig  # pylint: disable=import-outside-toplevel
  sde = sde_lib.get_sde("vpsde")
  cfg, mcfg = LossConfig(reduce_mean=True), MSGMConfig(variant="redirect", alpha=0.5, period=1,
                                                       std_min=0.3)
  refs, nsfg = jnp.asarray(REFS), jnp.full((8, 4), 0.9)
  keys = losses.example_keys(jax.random.key(1), jnp.arange(8))
  score_fn = lambda x, t: -x  # pylint: disable=unnecessary-lambda-assignment

  def loss(bank):
    return float(moderation.msgm_objective(jnp.asarray(0), (keys[:3], refs), (keys, nsfg),
                                           score_fn, sde, cfg, mcfg, active=True, refs=bank)[0])

  assert loss(None) == loss(refs)
  assert loss(jnp.concatenate([refs, nsfg[:2] * 0.9])) != loss(None)
  spec = data.DataSpec("colour_digits")
  step_cfg = StepConfig(loss=cfg, optim=OptimConfig(), msgm=MSGMConfig(variant="redirect",
                                                                       num_refs=5))
  bank = builders.sfg_reference_bank(step_cfg, spec)
  assert bank.shape == (5, 8, 8, 3) and bank.dtype == np.float32
  np.testing.assert_array_equal(bank, builders.nsfg_references(spec, 5, subset="sfg"))
  assert builders.sfg_reference_bank(StepConfig(loss=cfg, optim=OptimConfig()), spec) is None
  every = builders.sfg_reference_bank(dataclasses.replace(
      step_cfg, msgm=MSGMConfig(variant="redirect", num_refs=-1)), spec)
  assert every.shape == (9000, 8, 8, 3)  # 1500 digits x 7 colours, less the 10 NSFG combos
  np.testing.assert_array_equal(every[:5], bank)
