"""msgm_jax/experiments/score_probes.py at the exact score of a point mass: a perfect denoiser."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax.diffusion import exact
from msgm_jax.experiments import score_probes
from msgm_jax.diffusion import sde as sde_lib


@pytest.mark.parametrize("name", ["vpsde", "vesde"])
def test_time_of_std_inverts_the_marginal(name):
  sde = sde_lib.get_sde(name)
  for std in (0.1, 0.5, 0.9):
    t = score_probes.time_of_std(sde, std)
    got = float(sde.marginal_prob(jnp.zeros((1, 1)), jnp.asarray([t]))[1][0])
    assert got == pytest.approx(std, rel=1e-4)


def test_probes_of_the_exact_score_of_the_data_point():
  """At the exact score of a point mass at x0 the model's noise estimate is z itself:
  alignment 1, Tweedie's estimate x0 (mse 0), and the hinged Obtuse term active (its value
  is +1 at the denoising optimum, so margin 1 keeps it on). A score pointing away from x0
  (s = +z / std) has alignment -1 and, at margin 0, switches the hinge off."""
  sde = sde_lib.get_sde("vpsde")
  x0 = jnp.array([[0.3, -0.2, 0.9, 0.1]] * 64)
  score = exact.mixture_score_fn(sde, exact.make_mixture(x0[:1], 0.0))
  out = score_probes.probe_terms(sde, score, x0, jax.random.key(0), 0.4)
  np.testing.assert_allclose(out["alignment"], 1.0, rtol=1e-4)
  np.testing.assert_allclose(out["denoise_mse"], 0.0, atol=1e-8)
  assert bool(jnp.all(out["hinge_active"]))
  away = lambda x, t: -score(x, t)  # pylint: disable=unnecessary-lambda-assignment
  out = score_probes.probe_terms(sde, away, x0, jax.random.key(0), 0.4, margin=0.0)
  np.testing.assert_allclose(out["alignment"], -1.0, rtol=1e-4)
  assert not bool(jnp.any(out["hinge_active"]))
