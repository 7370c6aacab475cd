"""Fields and helpers shared by the image score networks (DDPM U-Net, NCSN++ family)."""

from typing import Any, ClassVar, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from msgm_jax.models import utils


class ScoreUNet(nn.Module):
  """Common fields of the U-Nets, named as score_sde's config.model keys.

  nf: base channels; ch_mult: channel multiplier per resolution (one level per entry);
  num_res_blocks: residual blocks per level; attn_resolutions: spatial sizes with attention;
  centered: data already in [-1, 1] (else [0, 1] is mapped there); sigma_min / sigma_max /
  num_scales: the SMLD ladder that integer labels index when scale_by_sigma; dtype: compute
  dtype (parameters and the output stay float32); conv_impl: see conv.py.
  """

  nf: int
  ch_mult: Tuple[int, ...]
  num_res_blocks: int
  attn_resolutions: Tuple[int, ...]
  centered: bool
  dropout: float = 0.1
  resamp_with_conv: bool = True
  conditional: bool = True
  scale_by_sigma: bool = False
  sigma_min: float = 0.01
  sigma_max: float = 50.0
  num_scales: int = 1000
  nonlinearity: str = "swish"
  conv_impl: str = "auto"
  dtype: Any = jnp.float32

  # Its dropout layers (models.dropout.Dropout) draw per-example masks in one batched pass.
  example_dropout: ClassVar[bool] = True

  def ladder_sigmas(self, labels: jax.Array) -> jax.Array:
    """labels [B] (integer-valued) -> sigma [B] of the descending SMLD ladder (0 = sigma_max)."""
    sigmas = utils.get_sigmas(self.sigma_min, self.sigma_max, self.num_scales)
    return jnp.asarray(sigmas, jnp.float32)[labels.astype(jnp.int32)]
