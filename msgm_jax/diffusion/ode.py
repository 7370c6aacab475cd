"""An adaptive Dormand-Prince RK45 integrator that runs inside the compiled graph.

score_sde integrates the probability-flow ODE with scipy on the host, round-tripping every
function evaluation. Here the whole solve is one `lax.while_loop`, so it compiles once, runs on
any accelerator, and nests under `jit`, `vmap` and `pmap`. Step-size control is scipy's
`solve_ivp(method="RK45")` (Hairer, Norsett & Wanner, "Solving ODEs I", II.4): RMS error norm,
safety 0.9, growth clipped to [0.2, 10] but never above 1 on a step accepted after a rejection,
an initial step from `select_initial_step` capped by the interval (so the function is never
evaluated outside it), and failure when the step falls below 10 ulps of t. Same accepted steps
and function evaluations as scipy, up to float32 rounding (scipy computes in float64).
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

# Dormand-Prince 5(4) tableau.
_C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0])
_A = [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
]
_B = np.array([35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0])
# Fifth- minus fourth-order weights: the embedded error estimate (scipy's RK45.E, negated).
_E = _B - np.array(
    [5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40])
_SAFETY, _MIN_FACTOR, _MAX_FACTOR, _ORDER = 0.9, 0.2, 10.0, 4


class ODEResult(NamedTuple):
  """y: the state at t1 (same pytree as y0); nfe: function evaluations; n_steps: accepted
  steps; success: False when max_steps ran out before reaching t1, or when rejections drove
  the step below scipy's minimum (10 ulps of t)."""

  y: Any
  nfe: jax.Array
  n_steps: jax.Array
  success: jax.Array


def _rms(v: jax.Array) -> jax.Array:
  return jnp.sqrt(jnp.mean(jnp.square(v)))


def _initial_step(f, t0, y0, f0, direction, interval, rtol, atol):
  """scipy's select_initial_step for an order-4 error estimator (costs one evaluation).

  Both the probe step h0 and the result are capped by the interval length, as scipy does: the
  probe f(t0 + h0) must stay inside [t0, t1] (a VP std is NaN at t < 0)."""
  scale = atol + jnp.abs(y0) * rtol
  d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
  h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1)
  h0 = jnp.minimum(h0, interval)
  f1 = f(t0 + direction * h0, y0 + direction * h0 * f0)
  d2 = _rms((f1 - f0) / scale) / h0
  h1 = jnp.where((d1 <= 1e-15) & (d2 <= 1e-15), jnp.maximum(1e-6, h0 * 1e-3),
                 (0.01 / jnp.maximum(d1, d2)) ** (1.0 / (_ORDER + 1)))
  return jnp.minimum(jnp.minimum(100 * h0, h1), interval)


def _min_step(t: jax.Array, direction: jax.Array) -> jax.Array:
  """scipy's smallest allowed step: 10 ulps of t in the direction of integration."""
  return 10 * jnp.abs(jnp.nextafter(t, direction * jnp.inf) - t)


def _dopri_step(f, t, y, f0, h):
  """One Dormand-Prince step of signed size h -> (y_new, f_new, error estimate)."""
  ks = [f0]
  for i in range(1, 6):
    dy = sum(a * k for a, k in zip(_A[i], ks))
    ks.append(f(t + _C[i] * h, y + h * dy))
  y_new = y + h * sum(b * k for b, k in zip(_B[:6], ks))
  f_new = f(t + h, y_new)  # first-same-as-last: reused as the next step's k1
  ks.append(f_new)
  err = h * sum(e * k for e, k in zip(_E, ks))
  return y_new, f_new, err


def odeint_dopri5(fun: Callable[[jax.Array, Any], Any], y0: Any, t0: float, t1: float, *,
                  rtol: float = 1e-5, atol: float = 1e-5, max_steps: int = 10_000) -> ODEResult:
  """Integrates dy/dt = fun(t, y) from t0 to t1 (either direction) for a pytree y.

  fun: (scalar t, pytree y) -> pytree dy/dt with y's structure. The state is flattened into
  one vector so the error norm covers every leaf, as scipy's solve_ivp does on a flat vector.
  """
  flat0, unravel = ravel_pytree(y0)
  flat0 = flat0.astype(jnp.float32)
  t0 = jnp.asarray(t0, jnp.float32)
  t1 = jnp.asarray(t1, jnp.float32)
  direction = jnp.sign(t1 - t0)

  def f(t, flat):
    return ravel_pytree(fun(t, unravel(flat)))[0].astype(jnp.float32)

  f0 = f(t0, flat0)
  h_abs = _initial_step(f, t0, flat0, f0, direction, jnp.abs(t1 - t0), rtol, atol)

  def cond(state):
    t, _, _, h_abs, _, _, n_iter, rejected = state
    too_small = rejected & (h_abs < _min_step(t, direction))
    return (direction * (t1 - t) > 0) & (n_iter < max_steps) & ~too_small

  def body(state):
    t, y, fy, h_abs, nfe, n_steps, n_iter, rejected = state
    # scipy raises a new step's size to the minimum; it fails only when rejections go below.
    h_abs = jnp.where(rejected, h_abs, jnp.maximum(h_abs, _min_step(t, direction)))
    last = h_abs >= jnp.abs(t1 - t)
    h = jnp.where(last, t1 - t, direction * h_abs)
    y_new, f_new, err = _dopri_step(f, t, y, fy, h)
    scale = atol + rtol * jnp.maximum(jnp.abs(y), jnp.abs(y_new))
    err_norm = _rms(err / scale)
    accept = err_norm < 1.0
    factor = jnp.where(err_norm == 0, _MAX_FACTOR,
                       _SAFETY * jnp.maximum(err_norm, 1e-10) ** (-1.0 / (_ORDER + 1)))
    # scipy: a step accepted after a rejection (within the same step) may not grow.
    factor = jnp.clip(factor, _MIN_FACTOR, jnp.where(accept & ~rejected, _MAX_FACTOR, 1.0))
    t_new = jnp.where(last, t1, t + h)
    return (jnp.where(accept, t_new, t), jnp.where(accept, y_new, y),
            jnp.where(accept, f_new, fy), jnp.abs(h) * factor, nfe + 6,
            n_steps + accept.astype(jnp.int32), n_iter + 1, ~accept)

  init = (t0, flat0, f0, h_abs, jnp.asarray(2, jnp.int32), jnp.asarray(0, jnp.int32),
          jnp.asarray(0, jnp.int32), jnp.asarray(False))
  t, y, _, _, nfe, n_steps, _, _ = jax.lax.while_loop(cond, body, init)
  success = direction * (t1 - t) <= 0
  return ODEResult(unravel(y), nfe, n_steps, success)
