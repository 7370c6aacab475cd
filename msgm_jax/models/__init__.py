"""Score networks (Flax Linen): DDPM U-Net, the NCSN++ / DDPM++ family and a 2-D score MLP.

Call convention: model.apply(variables, x, labels, train=bool, rngs={'dropout': key}) with x
[B, H, W, C] (images) or [B, D] (mlp) and labels [B] float; returns x's shape in float32.
"""

from msgm_jax.models.factory import MODELS, get_model, model_from_config
from msgm_jax.models import ddpm, mlp, ncsnpp  # noqa: F401  (registers the models)
from msgm_jax.models.summary import summarize
from msgm_jax.models.utils import make_score_fn

__all__ = ["MODELS", "get_model", "model_from_config", "summarize", "make_score_fn"]
