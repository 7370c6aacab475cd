"""MSGM moderation terms on perturbed NSFG samples and the combined objective (docs/method.md
section 4).

At x~ = m x_u + std z (x_u an NSFG sample) the true conditional score is -z / std: it points
back to x_u. The terms act on the model score s there, through the product s * (std z). With
likelihood weighting every term takes s * (z / std) instead and is multiplied by g(t)^2, as the
authors' release does (e.g. reduce((s z / std)^2) g^2): by g^2 alone, not by the DSM's weight
g^2 / std^2, which would add a factor 1 / std^2 (up to 1e4 at low noise).

- orthogonal / elementwise (the release): reduce((s std z)^2). Drives every coordinate of s
  towards 0 where z is non-zero, i.e. towards s = 0, not only towards orthogonality.
- orthogonal / inner: (<s, std z> / D)^2 scaled like reduce: only the component of s along the
  direction to the NSFG sample is penalised (the geometric reading of the paper).
- orthogonal / cosine: cos^2(s, z): the same, scale-free.
- obtuse / sign=release: reduce(s std z). Minimising it makes <s, z> negative, aligning s with
  -z, which points TOWARDS x_u, and it is unbounded below.
- obtuse / sign=repel: -reduce(s std z): makes <s, -z> negative, an obtuse angle with the
  direction to x_u (the geometric reading). hinge=True bounds either sign with relu(. + margin)
  (margin per data dimension, before the loss's reduce scale): with margin 0 the term stops
  pushing once the angle is right (repel: once s no longer points towards x_u); a positive
  margin asks for a strictly obtuse angle, <s std, -z> / D <= -margin.
"""

import dataclasses
from typing import Dict, Optional, Tuple

import jax
import jax.numpy as jnp

from msgm_jax.diffusion.losses import (LossConfig, Perturbed, dsm_loss, flat_mean, noise_window, perturb,
                             reduce_scale)
from msgm_jax.registry import Registry
from msgm_jax.diffusion.sde import batch_mul

Array = jax.Array

MODERATIONS: Registry = Registry("moderation variant")
ORTHOGONAL_FORMS = ("elementwise", "inner", "cosine")
NEEDS_REFS = ("redirect",)  # variants that read the SFG reference batch
OBTUSE_SIGNS = ("release", "repel")
# msgm.preset: named settings that override the msgm fields they name on any config (the
# others stay as configured). "release": the authors' loss forms, literally (variant, alpha
# and period as configured). "redirect": the setting that stops compositional NSFG generation
# on images (docs/compositional_report.md, phase 3): redirect towards every SFG training
# image's posterior mean, alpha 0.2 on every step, NSFG noise std >= 0.3.
PRESETS = {
    "release": dict(form="elementwise", sign="release", hinge=False, margin=0.0),
    "redirect": dict(variant="redirect", alpha=0.2, period=1, std_min=0.3, std_max=0.0,
                     num_refs=-1),
}


@dataclasses.dataclass(frozen=True)
class MSGMConfig:
  """variant: orthogonal | obtuse | redirect; form (orthogonal); sign, hinge and margin
  (obtuse); alpha: weight of the moderation term; period: applied when step % period == 0;
  std_min, std_max: the noise window of the NSFG batch (std_max 0: no upper end);
  num_refs (redirect): 0 takes the step's SFG batch as the references, n > 0 the first n SFG
  training examples, -1 all of them: a fixed bank (compiled_step in msgm_jax/training/loop.py
  builds it; the same on every device).

  Field defaults are the release's literal forms (for hand checks and notebooks); the project's
  default, which configs get from presets.base(), is obtuse / repel / hinge / margin 1.0."""

  variant: str = "orthogonal"
  form: str = "elementwise"
  sign: str = "release"
  hinge: bool = False
  margin: float = 0.0
  alpha: float = 0.01
  period: int = 4
  std_min: float = 0.0
  std_max: float = 0.0
  num_refs: int = 0

  @property
  def windowed(self) -> bool:
    return self.std_min > 0 or self.std_max > 0

  def __post_init__(self):
    MODERATIONS.get(self.variant)  # raises with the valid names
    if self.variant == "orthogonal" and self.form not in ORTHOGONAL_FORMS:
      raise ValueError(f"msgm.form={self.form!r} is not one of {', '.join(ORTHOGONAL_FORMS)}")
    if self.variant == "obtuse" and self.sign not in OBTUSE_SIGNS:
      raise ValueError(f"msgm.sign={self.sign!r} is not one of {', '.join(OBTUSE_SIGNS)}")
    if not 0.0 <= self.alpha <= 1.0 or self.period < 1:
      raise ValueError(f"need 0 <= msgm.alpha <= 1 and msgm.period >= 1; got alpha="
                       f"{self.alpha}, period={self.period}")
    if self.num_refs < -1:
      raise ValueError(f"msgm.num_refs={self.num_refs} must be >= -1 (0: the step's SFG "
                       "batch, n > 0: the first n SFG training examples, -1: all of them)")
    if self.std_min < 0 or self.std_max < 0 or (0 < self.std_max <= self.std_min):
      raise ValueError(f"the noise window needs 0 <= msgm.std_min < msgm.std_max (or "
                       f"std_max=0: no upper end); got std_min={self.std_min}, "
                       f"std_max={self.std_max}")

  @classmethod
  def from_config(cls, msgm_cfg) -> "MSGMConfig":
    """config.msgm -> MSGMConfig; msgm.preset (when set) overrides the fields it names."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in msgm_cfg.items() if k in names}
    preset = msgm_cfg.get("preset", "")
    if preset:
      if preset not in PRESETS:
        raise ValueError(f"msgm.preset={preset!r} is not one of {', '.join(PRESETS)} (or '' "
                         "to use the msgm fields as set)")
      values.update(PRESETS[preset])
    return cls(**values)


def _direction(p: Perturbed, cfg: LossConfig) -> Array:
  """std z, or z / std under likelihood weighting (the release's two forms)."""
  return batch_mul(1.0 / p.std if cfg.likelihood_weighting else p.std, p.z)


def _weight(p: Perturbed, cfg: LossConfig) -> Array:
  """g(t)^2 under likelihood weighting, else 1 [B]. p.weight is the DSM's g^2 / std^2."""
  return p.weight * p.std**2 if cfg.likelihood_weighting else p.weight


@MODERATIONS.register("orthogonal")
def orthogonal(p: Perturbed, cfg: LossConfig, mcfg: MSGMConfig, refs=None) -> Array:
  """Per-example orthogonal moderation [B]."""
  v = _direction(p, cfg)
  scale = reduce_scale(cfg, p.z.shape)
  if mcfg.form == "elementwise":
    value = scale * flat_mean((p.score * v) ** 2)
  elif mcfg.form == "inner":
    value = scale * flat_mean(p.score * v) ** 2
  else:  # cosine
    s, d = p.score.reshape(p.z.shape[0], -1), v.reshape(p.z.shape[0], -1)
    dot = jnp.sum(s * d, -1)
    value = dot**2 / (jnp.sum(s * s, -1) * jnp.sum(d * d, -1) + 1e-12)
  return value * _weight(p, cfg)


@MODERATIONS.register("obtuse")
def obtuse(p: Perturbed, cfg: LossConfig, mcfg: MSGMConfig, refs=None) -> Array:
  """Per-example obtuse moderation [B]."""
  sign = 1.0 if mcfg.sign == "release" else -1.0
  value = sign * flat_mean(p.score * _direction(p, cfg))
  if mcfg.hinge:
    value = jax.nn.relu(value + mcfg.margin)
  return reduce_scale(cfg, p.z.shape) * value * _weight(p, cfg)


def sfg_posterior_mean(x_t: Array, mean_scale: Array, std: Array, refs: Array) -> Array:
  """E[x0 | x~] [B, ...] under the empirical distribution of refs [R, ...] (x0 uniform over
  refs, x~ = m x0 + std z): sum_j softmax_j(-|x~ - m r_j|^2 / 2 std^2) r_j."""
  b, r = x_t.shape[0], refs.shape[0]
  xf, rf = x_t.reshape(b, -1), refs.reshape(r, -1).astype(x_t.dtype)
  m, var = mean_scale[:, None], (std**2)[:, None]
  # |x - m r|^2 = |x|^2 - 2 m <x, r> + m^2 |r|^2; |x|^2 is the same for every j.
  logits = (2.0 * m * (xf @ rf.T) - m**2 * jnp.sum(rf * rf, -1)[None, :]) / (2.0 * var)
  w = jax.nn.softmax(logits, axis=-1)
  return (w @ rf).reshape(x_t.shape)


@MODERATIONS.register("redirect")
def redirect(p: Perturbed, cfg: LossConfig, mcfg: MSGMConfig, refs=None) -> Array:
  """Per-example redirect term [B]: DSM at x~ towards the SFG references' posterior mean."""
  del mcfg
  if refs is None:
    raise ValueError("msgm.variant=redirect needs the SFG reference batch (refs)")
  x0 = jax.lax.stop_gradient(sfg_posterior_mean(p.x_t, p.mean_scale, p.std, refs))
  target = batch_mul(1.0 / p.std, p.x_t - batch_mul(p.mean_scale, x0))  # -std s*(x~)
  resid = batch_mul(p.std, p.score) + target
  return reduce_scale(cfg, p.z.shape) * flat_mean(resid**2) * p.weight


def moderation_loss(keys: Array, x: Array, score_fn, sde, cfg: LossConfig,
                    mcfg: MSGMConfig, refs: Optional[Array] = None) -> Array:
  """Per-example moderation term [B] on NSFG data x [B, ...], with its own t and z (t in the
  noise window when one is set); refs: the SFG reference batch (redirect)."""
  window = noise_window(sde, cfg, mcfg.std_min, mcfg.std_max) if mcfg.windowed else None
  return MODERATIONS.get(mcfg.variant)(perturb(keys, x, score_fn, sde, cfg, window), cfg, mcfg,
                                       refs)


def msgm_objective(step: Array, sfg: Tuple[Array, Array], nsfg: Tuple[Array, Array], score_fn,
                   sde, cfg: LossConfig, mcfg: MSGMConfig, active: Optional[bool] = None,
                   nsfg_score_fn=None, refs: Optional[Array] = None
                   ) -> Tuple[Array, Dict[str, Array]]:
  """(1 - alpha) DSM(SFG) + alpha [step % period == 0] moderation(NSFG).

  sfg, nsfg: (keys [B], x [B, ...]) pairs; their t and z are drawn independently.
  nsfg_score_fn: the score on the NSFG batch (default score_fn), e.g. with its own dropout.
  refs: the SFG references of variants in NEEDS_REFS (default: the SFG batch, sfg[1]).
  active: None decides from `step` at run time and skips the moderation branch on off-period
  steps with lax.cond; True / False decides at trace time (no branch in the graph). Both give
  the same loss and gradients. XLA:CPU runs the convolutions inside a cond's branch 4-16x
  slower, so CPU training compiles one step per pattern instead (compiled_step in
  msgm_jax/training/loop.py).
  Returns (scalar loss, {"dsm", "moderation", "moderation_active"} for logging).
  """
  dsm = jnp.mean(dsm_loss(*sfg, score_fn, sde, cfg))

  def moderation():
    return jnp.mean(moderation_loss(*nsfg, nsfg_score_fn or score_fn, sde, cfg, mcfg,
                                    refs=sfg[1] if refs is None else refs))

  if active is None:
    on = (step % mcfg.period) == 0
    mod = jax.lax.cond(on, moderation, lambda: jnp.zeros((), jnp.float32))
  else:
    on = jnp.asarray(active)
    mod = moderation() if active else jnp.zeros((), jnp.float32)
  loss = (1.0 - mcfg.alpha) * dsm + mcfg.alpha * mod
  return loss, {"dsm": dsm, "moderation": mod, "moderation_active": on.astype(jnp.float32)}
