"""The optimiser of score_sde: global-norm clipping, Adam, linear warmup (docs/method.md section 5).

The learning rate is a pure function of the train step held in the train state, not of a
counter inside the optax state, so fine-tuning can restart the warmup by restarting the step,
and hyper-parameters stay in the config rather than in the checkpoint.
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  lr: float = 2e-4
  beta1: float = 0.9
  beta2: float = 0.999
  eps: float = 1e-8
  weight_decay: float = 0.0
  warmup: int = 5000
  grad_clip: float = 1.0

  @classmethod
  def from_config(cls, optim_cfg) -> "OptimConfig":
    if optim_cfg.optimizer.lower() != "adam":
      raise ValueError(f"optim.optimizer={optim_cfg.optimizer!r} is not supported; use 'Adam'")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in optim_cfg.items() if k in names})


def learning_rate(cfg: OptimConfig, step: jax.Array) -> jax.Array:
  """lr * min(step / warmup, 1), with step counted from 0 as in score_sde (first step: lr 0)."""
  step = jnp.asarray(step, jnp.float32)
  if cfg.warmup > 0:
    return cfg.lr * jnp.minimum(step / cfg.warmup, 1.0)
  return jnp.asarray(cfg.lr, jnp.float32)


def make_transform(cfg: OptimConfig) -> optax.GradientTransformation:
  """Clip (when grad_clip > 0), Adam moments, decoupled weight decay; lr applied by the caller."""
  parts = []
  if cfg.grad_clip > 0:
    parts.append(optax.clip_by_global_norm(cfg.grad_clip))
  parts.append(optax.scale_by_adam(b1=cfg.beta1, b2=cfg.beta2, eps=cfg.eps))
  if cfg.weight_decay > 0:
    parts.append(optax.add_decayed_weights(cfg.weight_decay))
  return optax.chain(*parts)


def apply_updates(params, updates, lr: jax.Array):
  return jax.tree.map(lambda p, u: p - lr * u, params, updates)


def ema_decay(rate: float, step: jax.Array) -> jax.Array:
  """min(rate, (1 + n) / (10 + n)): a short memory early in training.

  step: optimisation steps taken before this update (TrainState.step). n counts the updates
  including this one, n = step + 1, because the release's ExponentialMovingAverage increments
  its counter before computing the decay: the first update uses 2/11, not 1/10.
  """
  n = jnp.asarray(step, jnp.float32) + 1.0
  return jnp.minimum(rate, (1.0 + n) / (10.0 + n))


def ema_update(ema, params, decay: jax.Array):
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


LrFn = Callable[[jax.Array], jax.Array]
