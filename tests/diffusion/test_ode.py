"""The in-graph RK45 against analytic solutions and scipy's function-evaluation counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from msgm_jax.diffusion.ode import odeint_dopri5


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


@pytest.mark.parametrize("lam,expected_nfe", [(30.0, 386), (50.0, 518), (100.0, 818)])
def test_rejections_follow_scipy_on_a_stiffish_relaxation(lam, expected_nfe):
  """y' = -lam (y - cos t): RK45 runs at its stability limit, so steps get rejected. After a
  rejection scipy lets the accepted step's successor grow by at most 1x; NFE and solution
  must match scipy's (rejections included)."""
  y0 = np.array([0.0, 2.0])
  ref = solve_ivp(lambda t, y: -lam * (y - np.cos(t)), (0.0, 3.0), y0, rtol=1e-5, atol=1e-5)
  assert ref.nfev == expected_nfe and (ref.nfev - 2) // 6 > len(ref.t) - 1  # it did reject
  res = jax.jit(lambda y: odeint_dopri5(lambda t, y: -lam * (y - jnp.cos(t)), y, 0.0, 3.0))(
      jnp.asarray(y0, jnp.float32))
  assert bool(res.success)
  assert int(res.nfe) == ref.nfev and int(res.n_steps) == len(ref.t) - 1
  np.testing.assert_allclose(res.y, ref.y[:, -1], rtol=0, atol=1e-6)
  # And the closed form: y = (lam^2 cos t + lam sin t) / (lam^2 + 1) + transient.
  steady = (lam**2 * np.cos(3.0) + lam * np.sin(3.0)) / (lam**2 + 1)
  np.testing.assert_allclose(res.y, steady + (y0 - lam**2 / (lam**2 + 1)) * np.exp(-3 * lam),
                             atol=2e-5)


def test_initial_step_stays_inside_a_short_interval():
  """scipy caps the initial step (and its probe evaluation) by the interval: here f is NaN
  beyond t1 = 0.01, where an uncapped probe lands (h0 = 0.01 |y| / |f| = 0.1)."""
  fun = lambda t, y: y * jnp.sqrt(0.01 - t)
  res = jax.jit(lambda y: odeint_dopri5(fun, y, 0.0, 0.01))(jnp.array([1.0, 2.0]))
  ref = solve_ivp(lambda t, y: y * np.sqrt(0.01 - t), (0.0, 0.01), [1.0, 2.0], rtol=1e-5,
                  atol=1e-5)
  assert bool(res.success) and int(res.nfe) == ref.nfev
  np.testing.assert_allclose(res.y, ref.y[:, -1], rtol=1e-6)
  # y = y0 exp(2/3 (0.01^1.5 - (0.01 - t)^1.5)); one step near the sqrt's kink is 2e-5 off.
  np.testing.assert_allclose(res.y, np.array([1.0, 2.0]) * np.exp(2 / 3 * 0.01**1.5), rtol=3e-5)
