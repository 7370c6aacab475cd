"""msgm_jax/experiments/commitment.py: Tweedie's estimate against the closed form, and the curve."""

import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from msgm_jax.experiments import commitment
from msgm_jax.diffusion import exact
from msgm_jax.diffusion import sde as sde_lib


@pytest.mark.parametrize("name", ["vpsde", "subvpsde", "vesde"])
def test_tweedie_is_the_gaussian_posterior_mean(name):
  """x0 ~ N(mu, s^2 I): E[x0 | x_t] = mu + m s^2 / (m^2 s^2 + std^2) (x_t - m mu)."""
  sde = sde_lib.get_sde(name)
  mu, s = jnp.array([[0.5, -1.0, 2.0]]), 0.7
  score_fn = exact.mixture_score_fn(sde, exact.make_mixture(mu, s))
  x = jax.random.normal(jax.random.key(0), (6, 3)) * 2.0
  t = jnp.linspace(0.05, 0.95, 6)
  m, std = exact._scale_std(sde, t)  # pylint: disable=protected-access
  gain = (m * s**2 / (m**2 * s**2 + std**2))[:, None]
  np.testing.assert_allclose(commitment.tweedie(sde, score_fn, x, t),
                             mu + gain * (x - m[:, None] * mu), rtol=1e-4, atol=1e-5)


def test_commitment_curve_needs_the_final_class_from_frame_k_on():
  classes = np.array([[1, 2, 3, 0],   # frame 0
                      [1, 1, 3, 4],   # frame 1
                      [2, 1, 3, 4],   # frame 2
                      [1, 1, 3, 4]])  # final
  # path 0 leaves its final class at frame 2: committed only at the end; path 1 from frame 1;
  # path 2 always; path 3 from frame 1.
  np.testing.assert_allclose(commitment.commitment_curve(classes), [0.25, 0.75, 0.75, 1.0])


def test_curve_on_a_two_mode_toy_with_the_exact_score():
  """Two well-separated modes, read by the sign of x: every path ends committed, none is at
  the prior, and the final classes split about evenly."""
  sde = sde_lib.VPSDE(N=100)
  mix = exact.make_mixture(jnp.array([[-2.0, 0.0], [2.0, 0.0]]), 0.1)
  sampling = ml_collections.ConfigDict(dict(
      predictor="euler_maruyama", corrector="none", snr=0.16, n_steps_each=1,
      probability_flow=False, eps=1e-3, noise_removal=True))
  fake = types.SimpleNamespace(config=types.SimpleNamespace(sampling=sampling), sde=sde,
                               shape=(2,), score_fn=lambda: exact.mixture_score_fn(sde, mix),
                               to_data=np.asarray)
  out = commitment.curve(fake, lambda x: (x[:, 0] > 0).astype(int), num_samples=200, frames=10,
                         batch_size=100)
  c = np.asarray(out["committed"])
  assert c[-1] == 1.0 and c[0] < 0.8 and np.all(np.diff(c) >= -0.05)
  assert abs(out["final_class_shares"][1] - 0.5) < 0.12
  assert out["std"][0] > 0.9 and out["std"][-1] < 0.05
