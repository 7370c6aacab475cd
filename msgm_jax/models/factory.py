"""The model registry and the translation of a score_sde-style `config.model` into typed fields.

Library code never sees a ConfigDict: `model_from_config` reads the section once and builds a
module with explicit, typed fields.
"""

import dataclasses
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from msgm_jax.registry import Registry

MODELS: Registry = Registry("model")

# Module fields that are not architecture: set by Flax itself.
_FLAX_FIELDS = ("parent", "name")
# Config keys of score_sde's model section with one supported value only.
FIXED = {"normalization": "GroupNorm", "attention_type": "ddpm", "conv_size": 3}


def get_model(name: str, **fields) -> nn.Module:
  """Builds a registered model ("ddpm", "ncsnpp", "mlp") from explicit fields."""
  return MODELS.get(name)(**fields)


def model_fields(cls) -> Sequence[dataclasses.Field]:
  return [f for f in dataclasses.fields(cls) if f.name not in _FLAX_FIELDS]


def _convert(name: str, value: Any) -> Any:
  """Config value -> field value: dtype names to dtypes, lists to tuples, names lower-cased."""
  if name == "dtype":
    return jnp.dtype(value).type if isinstance(value, str) else value
  if isinstance(value, list):
    return tuple(value)
  return value.lower() if isinstance(value, str) else value


def _check_data_shape(cls, data_shape: Sequence[int], cfg: ml_collections.ConfigDict):
  image = "ch_mult" in {f.name for f in model_fields(cls)}  # the U-Nets; the MLP takes [D]
  if image and len(data_shape) != 3:
    raise ValueError(f"model {cfg.name!r} wants image data [H, W, C], got data_shape {data_shape}")
  if not image and len(data_shape) != 1:
    raise ValueError(f"model {cfg.name!r} wants vector data [D], got data_shape {data_shape}")
  if image and "ch_mult" in cfg:
    factor = 2**(len(cfg.ch_mult) - 1)
    if data_shape[0] % factor or data_shape[1] % factor:
      raise ValueError(f"image size {data_shape[:2]} is not divisible by 2^(len(ch_mult)-1)"
                       f" = {factor}")


def model_from_config(model_cfg: ml_collections.ConfigDict, *, data_shape: Sequence[int],
                      centered: Optional[bool] = None) -> nn.Module:
  """Builds config.model.name from the score_sde-style section `model_cfg`.

  Keys that name a field of the model are taken (lists become tuples, "float32"/"bfloat16"
  become dtypes); others (ema_rate, beta_min, ...) are ignored. `data_shape` excludes the batch
  dimension: (H, W, C) for images, (D,) for the MLP. `centered` is config.data.centered (data in
  [-1, 1]; else [0, 1] and the image models rescale), needed by image models: pass it unless
  model_cfg has a `centered` key. A required field that is missing raises a one-line ValueError.
  """
  if "name" not in model_cfg:
    raise ValueError("config.model.name is required (one of: " + ", ".join(MODELS.names()) + ")")
  cls = MODELS.get(model_cfg.name)
  _check_data_shape(cls, tuple(data_shape), model_cfg)
  for key, value in FIXED.items():
    if key in model_cfg and _convert(key, model_cfg[key]) != _convert(key, value):
      raise ValueError(f"config.model.{key}={model_cfg[key]!r} is not supported (only {value!r})")
  values = dict(model_cfg)
  if centered is not None:
    values["centered"] = centered
  kwargs = {}
  for field in model_fields(cls):
    if field.name in values:
      kwargs[field.name] = _convert(field.name, values[field.name])
    elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
      hint = " (pass centered=config.data.centered)" if field.name == "centered" else ""
      raise ValueError(f"model {model_cfg.name!r} needs config.model.{field.name}{hint}")
  return cls(**kwargs)
