"""The in-graph RK45 against analytic solutions and scipy's function-evaluation counts."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

from msgm_jax.ode import odeint_dopri5


def test_backwards_gaussian_decay_matches_closed_form_and_scipy_nfe():
  # dy/dt = -2 t y  ->  y(t) = y(t0) exp(t0^2 - t^2); integrate from 1 down to 0.
  fun = lambda t, y: -2 * t * y
  y0 = jnp.array([1.0, -2.0, 0.5])
  res = jax.jit(lambda y: odeint_dopri5(fun, y, 1.0, 0.0))(y0)
  np.testing.assert_allclose(res.y, np.e * np.asarray(y0), rtol=2e-5)
  ref = solve_ivp(lambda t, y: -2 * t * y, (1.0, 0.0), np.asarray(y0), rtol=1e-5, atol=1e-5)
  assert int(res.nfe) == ref.nfev
  assert bool(res.success)


def test_pytree_state_and_stiffish_linear_system():
  a = jnp.array([[-3.0, 1.0], [0.0, -0.5]])
  fun = lambda t, s: {"x": a @ s["x"], "clock": jnp.ones(())}
  res = odeint_dopri5(fun, {"x": jnp.array([1.0, 1.0]), "clock": jnp.zeros(())}, 0.0, 2.0,
                      rtol=1e-6, atol=1e-8)
  expect = jax.scipy.linalg.expm(2.0 * a) @ jnp.array([1.0, 1.0])
  np.testing.assert_allclose(res.y["x"], expect, rtol=1e-4)
  np.testing.assert_allclose(res.y["clock"], 2.0, rtol=1e-6)


def test_max_steps_reports_failure():
  res = odeint_dopri5(lambda t, y: jnp.cos(50 * t) * y, jnp.ones(2), 0.0, 10.0, max_steps=3)
  assert not bool(res.success)
