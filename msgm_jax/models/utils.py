"""Score parametrisation (network output -> score) and small helpers shared by the models.

`make_score_fn` reproduces score_sde's `models/utils.py:get_score_fn` (time labels and output
scaling per SDE); it returns a pure function of (x, t) that samplers and losses can use under
`jit` without knowing about the network.
"""

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from msgm_jax.diffusion import sde as sde_lib
from msgm_jax.models import dropout

Array = jax.Array
ScoreFn = Callable[[Array, Array], Array]


def get_sigmas(sigma_min: float, sigma_max: float, num_scales: int) -> np.ndarray:
  """SMLD noise ladder, geometric and DESCENDING (index 0 = sigma_max), as score_sde's."""
  return np.exp(np.linspace(np.log(sigma_max), np.log(sigma_min), num_scales))


def scale_input(x: Array, centered: bool) -> Array:
  """Maps data in [0, 1] to [-1, 1] unless it is already centred (config.data.centered)."""
  return x if centered else 2 * x - 1.0


def divide_by_sigma(h: Array, sigmas: Array) -> Array:
  """h [B, ...] / sigmas [B], broadcast over the non-batch dimensions."""
  return h / sigmas.reshape((h.shape[0],) + (1,) * (h.ndim - 1)).astype(h.dtype)


def _vp_labels_and_std(sde, x: Array, t: Array, continuous: bool, flow: bool):
  """score_sde: continuous VP and all sub-VP use 999 t and the marginal std; discrete DDPM uses
  t (N - 1) (not rounded) as label and sqrt(1 - alphas_cumprod) at the floored index, except
  under the probability-flow ODE (flow), where the std is the continuous marginal std."""
  if continuous or isinstance(sde, sde_lib.subVPSDE):
    return t * 999, sde.marginal_prob(jnp.zeros_like(x), t)[1]
  labels = t * (sde.N - 1)
  if flow:
    return labels, sde.marginal_prob(jnp.zeros_like(x), t)[1]
  sqrt_1m_alphas_cumprod = jnp.asarray(np.sqrt(1.0 - sde.alphas_cumprod), jnp.float32)
  return labels, sqrt_1m_alphas_cumprod[labels.astype(jnp.int32)]


def _ve_labels(sde, x: Array, t: Array, continuous: bool) -> Array:
  """score_sde: continuous VE uses sigma(t); discrete SMLD uses round((T - t)(N - 1)), the index
  into the descending sigma ladder (t = T is index 0 = sigma_max)."""
  if continuous:
    return sde.marginal_prob(jnp.zeros_like(x), t)[1]
  return jnp.round((sde.T - t) * (sde.N - 1)).astype(jnp.int32).astype(jnp.float32)


def _is_key_batch(rng) -> bool:
  """A [B] array of typed keys (or [B, 2] raw uint32 keys), not a single key."""
  if jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key):
    return rng.ndim == 1
  return rng.ndim == 2


def make_score_fn(apply_fn: Callable[..., Array], params: Any, sde, *, continuous: bool = True,
                  train: bool = False, rng: Optional[Array] = None,
                  flow: bool = False, example_dropout: bool = False) -> ScoreFn:
  """Wraps a network into score_fn(x [B, ...], t [B]) -> score [B, ...].

  apply_fn(variables, x, labels, train=..., rngs=...) is e.g. `model.apply`; `params` is the full
  variables dict ({'params': ...}); train=True enables dropout with rngs={'dropout': rng}, rng
  one key, or [B] typed keys: one per example of the batch the score is then called on (the
  network runs per example under vmap; GroupNorm and attention are per example anyway), or,
  with example_dropout (networks whose dropout is models.dropout.Dropout, e.g. the ScoreUNets),
  batched with the same masks, which is faster.
  VP / sub-VP: the network predicts the noise z (x = mean + std z) and score = -out / std.
  VE: the network output is the score (NCSN++ divides by sigma itself when scale_by_sigma).

  flow: the score for the probability-flow ODE (ODE sampling, likelihoods). score_sde builds it
  with the continuous parametrisation even for discrete-trained models (its likelihood.py and
  ODE sampler pass continuous=True): a DDPM model then gets label t (N - 1), which is score_sde's
  999 t at N = 1000, and std(t) of the VP SDE instead of the piecewise-constant
  sqrt(1 - alphabar_i) (10x larger at t = 1e-5, and jumps that the RK45 must cross). VE models
  trained in discrete time (SMLD) keep their ladder labels round((T - t)(N - 1)): the network
  knows only the integer rungs, not sigma as a label, and the rounding moves sigma by at most
  half a rung, a factor (sigma_max / sigma_min)^(1 / (2 (N - 1))) (0.43% for CIFAR-10's VE).
  """
  if train and rng is None:
    raise ValueError("make_score_fn(train=True) needs rng for dropout")
  rngs = {"dropout": rng} if train else {}

  def model_fn(x: Array, labels: Array) -> Array:
    if train and _is_key_batch(rng):
      # One dropout stream per example: the masks of an example do not depend on the rest of
      # the batch, so a global batch split over devices sees the masks of one device.
      if example_dropout:
        with dropout.example_keys(rng):
          return apply_fn(params, x, labels, train=True, rngs={"dropout": rng[0]})
      one = lambda x1, l1, k: apply_fn(params, x1[None], l1[None], train=True,
                                       rngs={"dropout": k})[0]
      return jax.vmap(one)(x, labels, rng)
    return apply_fn(params, x, labels, train=train, rngs=rngs)

  if isinstance(sde, (sde_lib.VPSDE, sde_lib.subVPSDE)):

    def score_fn(x: Array, t: Array) -> Array:
      labels, std = _vp_labels_and_std(sde, x, t, continuous, flow)
      return sde_lib.batch_mul(-1.0 / std, model_fn(x, labels))

  elif isinstance(sde, sde_lib.VESDE):

    def score_fn(x: Array, t: Array) -> Array:
      return model_fn(x, _ve_labels(sde, x, t, continuous))

  else:
    raise NotImplementedError(f"SDE {type(sde).__name__} is not supported")
  return score_fn
