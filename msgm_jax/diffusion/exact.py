"""Closed-form perturbed densities and scores of Gaussian mixtures under any SDE.

If p_0 = sum_k w_k N(mu_k, s_k^2 I), then under an SDE with marginal N(m(t) x0, std(t)^2 I)
p_t = sum_k w_k N(m(t) mu_k, (m(t)^2 s_k^2 + std(t)^2) I) exactly. These give true scores for
testing samplers and likelihoods, for the 2-D toy's reference rows, and for the training-free
moderation (the score of the perturbed empirical NSFG distribution: s_k -> 0).
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class Mixture(NamedTuple):
  """means [K, D] (D = prod of the data shape), stds [K] (isotropic), weights [K] (sum 1)."""

  means: Array
  stds: Array
  weights: Array


def make_mixture(means, stds, weights=None) -> Mixture:
  means = jnp.asarray(means, jnp.float32)
  k = means.shape[0]
  stds = jnp.broadcast_to(jnp.asarray(stds, jnp.float32), (k,))
  weights = jnp.full((k,), 1.0 / k) if weights is None else jnp.asarray(weights, jnp.float32)
  return Mixture(means, stds, weights / jnp.sum(weights))


def _scale_std(sde, t: Array):
  """m(t) and std(t) of the SDE's Gaussian transition kernel, each [B]."""
  mean, std = sde.marginal_prob(jnp.ones((t.shape[0], 1)), t)
  return mean[:, 0], std


def component_log_joint(sde, mix: Mixture, x: Array, t: Array) -> Array:
  """log w_k + log N(x; m mu_k, v_k I) for x [B, ...] at times t [B] -> [B, K]."""
  flat = x.reshape(x.shape[0], -1)
  m, std = _scale_std(sde, t)
  var = (m[:, None] * mix.stds[None]) ** 2 + std[:, None] ** 2  # [B, K]
  diff = flat[:, None, :] - m[:, None, None] * mix.means[None]  # [B, K, D]
  d = flat.shape[1]
  sq = jnp.sum(diff**2, axis=-1)
  return jnp.log(mix.weights)[None] - 0.5 * d * jnp.log(2 * np.pi * var) - 0.5 * sq / var


def mixture_logp(sde, mix: Mixture, x: Array, t: Array) -> Array:
  """log p_t(x) -> [B]."""
  return jax.nn.logsumexp(component_log_joint(sde, mix, x, t), axis=-1)


def mixture_score(sde, mix: Mixture, x: Array, t: Array) -> Array:
  """grad_x log p_t(x), shaped like x: sum_k r_k(x) (m mu_k - x) / v_k."""
  flat = x.reshape(x.shape[0], -1)
  resp = jax.nn.softmax(component_log_joint(sde, mix, x, t), axis=-1)  # [B, K]
  m, std = _scale_std(sde, t)
  var = (m[:, None] * mix.stds[None]) ** 2 + std[:, None] ** 2
  diff = m[:, None, None] * mix.means[None] - flat[:, None, :]
  return jnp.sum((resp / var)[..., None] * diff, axis=1).reshape(x.shape)


def mixture_score_fn(sde, mix: Mixture) -> Callable[[Array, Array], Array]:
  """A score_fn(x, t) for the mixture perturbed by `sde`."""
  return lambda x, t: mixture_score(sde, mix, x, t)
