"""A time-conditional score MLP for 2-D toy data."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from msgm_jax.models import utils
from msgm_jax.models.factory import MODELS
from msgm_jax.models.layers import GaussianFourierProjection, dense, get_act, get_timestep_embedding


@MODELS.register("mlp")
class ScoreMLP(nn.Module):
  """x [B, D], labels [B] -> [B, D] float32.

  labels: sigma for embedding_type "fourier" (VE; Fourier features of log sigma, as NCSN++),
  any time label for "positional". scale_by_sigma divides the output by the label (= sigma), so
  the network only has to predict -z for the VE score -z / sigma. The time embedding enters
  every hidden layer as a bias.
  """

  hidden: int = 128
  n_layers: int = 3
  embedding_type: str = "fourier"
  fourier_scale: float = 16.0
  scale_by_sigma: bool = False
  nonlinearity: str = "swish"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array, train: bool = False) -> jax.Array:
    del train  # no dropout
    act = get_act(self.nonlinearity)
    if self.embedding_type == "fourier":
      emb = GaussianFourierProjection(self.hidden // 2, self.fourier_scale)(jnp.log(labels))
    elif self.embedding_type == "positional":
      emb = get_timestep_embedding(labels, self.hidden)
    else:
      raise ValueError(f"embedding_type must be 'fourier' or 'positional', got "
                       f"{self.embedding_type!r}")
    temb = dense(act(dense(emb, self.hidden, self.dtype)), self.hidden, self.dtype)
    h = dense(x, self.hidden, self.dtype)
    for _ in range(self.n_layers):
      h = h + dense(act(temb), self.hidden, self.dtype)
      h = dense(act(h), self.hidden, self.dtype)
    out = dense(act(h), x.shape[-1], self.dtype).astype(jnp.float32)
    if self.scale_by_sigma:
      out = utils.divide_by_sigma(out, labels)
    return out
