"""A tiny DDPM and a tiny NCSN++ take a few Adam steps on CPU: the denoising loss decreases."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from msgm_jax.diffusion import sde as sde_lib
from msgm_jax.models import get_model, make_score_fn

# Kept small because a U-Net's gradient compiles for ~5-12 s of CPU per level: no attention (its
# numerics are tested in test_models_nets.py), a one-level DDPM, a two-level FIR NCSN++.
TINY = dict(nf=16, num_res_blocks=1, attn_resolutions=(), centered=True)
CASES = {
    "ddpm": (get_model("ddpm", **TINY, ch_mult=(1,), num_groups=4), sde_lib.VPSDE()),
    "ncsnpp": (get_model("ncsnpp", **TINY, ch_mult=(1, 2), fir=True,
                         progressive_input="residual", scale_by_sigma=True),
               sde_lib.VESDE(sigma_min=0.01, sigma_max=5.0)),
}


def dsm_loss(model, sde, variables, key, x0, t, z):
  """Denoising score matching, lambda(t) = std^2: |std * score + z|^2 (score_sde's loss)."""
  mean, std = sde.marginal_prob(x0, t)
  x = mean + std[:, None, None, None] * z
  score = make_score_fn(model.apply, variables, sde, train=True, rng=key)(x, t)
  return jnp.mean(jnp.square(std[:, None, None, None] * score + z))


@pytest.mark.parametrize("name", sorted(CASES))
def test_few_adam_steps_reduce_the_loss(name, random_variables, fast_jit):
  model, sde = CASES[name]
  k0, k1 = jax.random.split(jax.random.PRNGKey(0))
  grid = jnp.linspace(-1, 1, 8)
  x0 = jnp.stack([jnp.sin(3 * a * grid)[:, None] * jnp.cos(2 * grid)[None, :]
                  for a in jnp.linspace(0.5, 1.5, 8)])[..., None]  # [8, 8, 8, 1] images
  t = jnp.linspace(0.1, 0.9, 8)
  z = jax.random.normal(k1, x0.shape)
  variables = random_variables(model, x0, t)
  tx = optax.adam(1e-3)

  @fast_jit
  def step(variables, opt_state, key):
    loss, grads = jax.value_and_grad(
        lambda v: dsm_loss(model, sde, v, key, x0, t, z))(variables)
    updates, opt_state = tx.update(grads, opt_state, variables)
    return optax.apply_updates(variables, updates), opt_state, loss

  opt_state = tx.init(variables)
  losses = []
  for i in range(6):
    variables, opt_state, loss = step(variables, opt_state, jax.random.fold_in(k0, i))
    losses.append(float(loss))
  assert np.all(np.isfinite(losses)), losses
  assert losses[-1] < 0.9 * losses[0], losses
