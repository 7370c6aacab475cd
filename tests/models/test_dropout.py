"""dropout.Dropout: flax's masks, and per example in one batched pass the vmapped pass's masks."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax.diffusion import sde as sde_lib
from msgm_jax.models import dropout, get_model, make_score_fn


class _Block(nn.Module):
  """Two dropout layers in a named submodule, the second called twice (counter > 1)."""

  impl: type

  @nn.compact
  def __call__(self, x):
    h = self.impl(0.5)(x, deterministic=False)
    d = self.impl(0.3)
    return d(d(h, deterministic=False), deterministic=False)


class _Net(nn.Module):
  impl: type

  @nn.compact
  def __call__(self, x):
    return _Block(self.impl)(x) + _Block(self.impl)(2.0 * x)


def test_one_key_gives_flax_dropout_masks():
  x = jnp.ones((4, 3, 5))
  key = jax.random.key(3)
  ours = _Net(dropout.Dropout).apply({}, x, rngs={"dropout": key})
  theirs = _Net(nn.Dropout).apply({}, x, rngs={"dropout": key})
  np.testing.assert_array_equal(ours, theirs)
  assert 0.2 < float(jnp.mean(ours == 0)) < 0.9  # masks are drawn at all


@pytest.mark.parametrize("raw", [False, True])
def test_example_keys_give_the_vmapped_masks_batched(raw):
  """Example i's masks in the batched pass are those of flax's Dropout run on example i alone
  with key i (the vmapped pass), whatever else is in the batch."""
  x = jnp.ones((5, 3, 4))
  keys = jax.random.split(jax.random.key(1), 5)
  if raw:
    keys = jax.random.key_data(keys)
  vmapped = jax.vmap(lambda k, x1: _Net(nn.Dropout).apply({}, x1[None], rngs={"dropout": k})[0])(
      keys, x)
  with dropout.example_keys(keys):
    batched = _Net(dropout.Dropout).apply({}, x, rngs={"dropout": keys[0]})
  np.testing.assert_array_equal(batched, vmapped)
  with dropout.example_keys(keys[2:4]):  # a sub-batch keeps its examples' masks
    part = _Net(dropout.Dropout).apply({}, x[2:4], rngs={"dropout": keys[0]})
  np.testing.assert_array_equal(part, vmapped[2:4])
  assert not np.array_equal(batched[0], batched[1])  # examples do not share masks


def test_example_keys_must_match_the_batch():
  with dropout.example_keys(jax.random.split(jax.random.key(0), 3)):
    with pytest.raises(ValueError, match="3 keys for a batch of 4"):
      _Net(dropout.Dropout).apply({}, jnp.ones((4, 2)), rngs={"dropout": jax.random.key(0)})


def test_score_unet_batched_equals_vmapped_with_dropout():
  """The DDPM U-Net's train-mode score with per-example keys: one batched pass
  (example_dropout) equals the per-example vmapped pass."""
  model = get_model("ddpm", nf=8, ch_mult=(1,), num_res_blocks=1, attn_resolutions=(),
                    centered=True, num_groups=2, dropout=0.5)
  assert model.example_dropout
  sde = sde_lib.VPSDE()
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 1))
  t = jnp.array([0.2, 0.5, 0.9])
  variables = model.init({"params": jax.random.key(1), "dropout": jax.random.key(2)}, x, t,
                         train=False)
  variables = jax.tree.map(lambda v: v + 0.05, variables)  # the output conv starts at zero
  keys = jax.random.split(jax.random.key(4), 3)
  score = lambda batched: jax.jit(lambda x, t: make_score_fn(
      model.apply, variables, sde, train=True, rng=keys, example_dropout=batched)(x, t))(x, t)
  np.testing.assert_allclose(score(True), score(False), rtol=1e-5, atol=1e-5)
  no_dropout = make_score_fn(model.apply, variables, sde)(x, t)
  assert float(jnp.max(jnp.abs(score(True) - no_dropout))) > 1e-3  # dropout acted
