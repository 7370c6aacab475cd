"""Exact log-likelihoods through the probability-flow ODE (Song et al. 2021, appendix D.2).

log p_eps(x) = log p_T(z) + int_eps^T div f~(x(t), t) dt, where f~ is the probability-flow drift
and z = x(T). The ODE and the divergence integral are solved together by the in-graph RK45 of
msgm_jax/diffusion/ode.py. Dequantisation is the caller's business: pass already-dequantised data and the
matching `offset` to `bits_per_dim`.
"""

from typing import Callable, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from msgm_jax.diffusion.ode import odeint_dopri5
from msgm_jax.registry import Registry
from msgm_jax.diffusion.sampling import probability_flow_drift

Array = jax.Array
DriftFn = Callable[[Array, Array], Array]

# A divergence estimator: (key, x [B, ...]) -> div_fn(drift, x, t) -> [B].
DIVERGENCES: Registry = Registry("divergence")


def _hutchinson(noise_fn):
  """Hutchinson-Skilling: div f = E[v^T (df/dx) v]; one v per example, fixed along the ODE."""

  def make(key, x):
    v = noise_fn(key, x.shape)

    def div(drift: DriftFn, x, t):
      _, jv = jax.jvp(lambda y: drift(y, t), (x,), (v,))
      return jnp.sum((jv * v).reshape(x.shape[0], -1), axis=-1)

    return div

  return make


DIVERGENCES.add("hutchinson_rademacher", _hutchinson(
    lambda key, shape: jax.random.rademacher(key, shape, jnp.float32)))
DIVERGENCES.add("hutchinson_gaussian", _hutchinson(
    lambda key, shape: jax.random.normal(key, shape, jnp.float32)))


@DIVERGENCES.register("exact")
def _exact(key, x):
  """The trace of the Jacobian, one JVP per data dimension (cheap for 2-D, costly for images)."""
  del key, x

  def div(drift: DriftFn, x, t):
    d = int(np.prod(x.shape[1:]))

    def body(i, acc):
      e = jax.nn.one_hot(i, d, dtype=x.dtype)
      e = jnp.broadcast_to(e, (x.shape[0], d)).reshape(x.shape)
      _, je = jax.jvp(lambda y: drift(y, t), (x,), (e,))
      return acc + je.reshape(x.shape[0], d)[:, i]

    return jax.lax.fori_loop(0, d, body, jnp.zeros((x.shape[0],), x.dtype))

  return div


def log_likelihood(key: Array, sde, score_fn: Callable[[Array, Array], Array], x: Array, *,
                   rtol: float = 1e-5, atol: float = 1e-5, eps: float = 1e-5,
                   divergence: str = "hutchinson_rademacher",
                   max_steps: int = 10_000) -> Tuple[Array, Array, Array]:
  """log p_eps(x) under the model, by the probability-flow ODE from eps to T.

  x: [B, ...] data in the model's space. Returns (logp [B] in nats, z = x(T) [B, ...], nfe).
  Each example gets its own Hutchinson probe vector, held fixed along the trajectory. When the
  solver runs out of `max_steps` before reaching T, logp and z are NaN: never a silently wrong
  number.
  """
  div_fn = DIVERGENCES.get(divergence)(key, x)
  drift = probability_flow_drift(sde, score_fn)

  def ode(t, state):
    y, _ = state
    tv = jnp.full((y.shape[0],), t)
    return drift(y, tv), div_fn(drift, y, tv)

  init = (x.astype(jnp.float32), jnp.zeros((x.shape[0],), jnp.float32))
  result = odeint_dopri5(ode, init, eps, sde.T, rtol=rtol, atol=atol, max_steps=max_steps)
  z, delta_logp = result.y
  z = jnp.where(result.success, z, jnp.nan)
  return sde.prior_logp(z) + delta_logp, z, result.nfe


def bits_per_dim(logp: Array, x_shape, offset: float = 7.0) -> Array:
  """-log2 p / D + offset, the discrete-data bits/dim of score_sde.

  logp: [B] continuous log-density (nats) of dequantised data; x_shape: the data shape, batch
  first or not (only prod of the non-batch part counts when len > 1 and the batch is included:
  pass x.shape[1:]). offset converts a density over the model's data range into a probability of
  8-bit pixels: log2(256 / range width) -> 8 for data in [0, 1], 7 for data centred in [-1, 1]
  (score_sde's `7 - inverse_scaler(-1)`).
  """
  d = int(np.prod(x_shape))
  return -logp / (d * np.log(2.0)) + offset
