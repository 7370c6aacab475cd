"""score_sde_pytorch state dicts -> the parameter trees of msgm_jax's DDPM and NCSN++ networks.

score_sde_pytorch keeps every layer of a network in one flat `all_modules` list, in the order
its forward pass uses them ("all_modules.<i>.<sub>.<leaf>"), and names the layers inside a
block as score_sde's Flax code does (GroupNorm_0, Conv_0, Dense_0, NIN_0, Conv2d_0, ...). This
network creates its top-level layers in the same order, so the i-th torch layer that holds
parameters is the i-th top-level Flax module that does, in call order (recorded with
flax.linen.intercept_methods), and the names inside a layer are the same. Layouts differ:
  nn.Conv2d / StyleGAN2 Conv2d 'weight' [out, in, kh, kw] -> 'kernel' / 'weight' [kh, kw, in, out];
  nn.Linear 'weight' [out, in] -> Dense 'kernel' [in, out];  GroupNorm 'weight' -> 'scale';
  NIN 'W' [in, out], 'b' and GaussianFourierProjection 'W' are the same.
The buffer 'sigmas' (the noise ladder, computed from the config) is not a parameter.
"""

import re
from typing import Dict, List, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from msgm_jax.models.summary import param_shapes

_TORCH_LEAF = {"kernel": "weight", "scale": "weight", "weight": "weight", "bias": "bias",
               "W": "W", "b": "b"}
_KEY = re.compile(r"all_modules\.(\d+)\.(.+)$")
BUFFERS = ("sigmas",)


class LayoutMismatch(ValueError):
  """The state dict does not fit the network the config builds (one line naming why)."""


def _kind(module_name: str) -> str:
  return module_name.rsplit("_", 1)[0]


def to_flax(kind: str, value: np.ndarray) -> np.ndarray:
  """One torch tensor of a layer of `kind` ('Conv', 'Dense', ...) in the Flax layout."""
  if kind in ("Conv", "Conv2d") and value.ndim == 4:
    return np.transpose(value, (2, 3, 1, 0))
  if kind == "Dense" and value.ndim == 2:
    return value.T
  return value


def call_order(model: nn.Module, input_shape: Sequence[int]) -> List[str]:
  """Names of the model's top-level submodules in the order its forward pass first calls them."""
  seen: List[str] = []

  def record(next_fun, args, kwargs, context):
    path = context.module.scope.path if context.module.scope is not None else ()
    if len(path) == 1 and path[0] not in seen:
      seen.append(path[0])
    return next_fun(*args, **kwargs)

  x = jnp.zeros((1, *input_shape), jnp.float32)
  with nn.intercept_methods(record):
    jax.eval_shape(lambda: model.init({"params": jax.random.key(0), "dropout":
                                       jax.random.key(0)}, x, jnp.ones((1,)), train=False))
  return seen


class Mapping:
  """torch name ('all_modules.<i>.<sub>.<leaf>', no 'module.' prefix) <-> Flax leaf path.

  Built from the network alone. `frozen`: the torch names of parameters without gradients
  (the Fourier features), which score_sde's EMA leaves out of its shadow list.
  """

  def __init__(self, model: nn.Module, input_shape: Sequence[int]):
    template = param_shapes(model, input_shape)["params"]
    order = [n for n in call_order(model, input_shape) if n in template]
    self.paths: Dict[str, Tuple[str, ...]] = {}
    self.shapes: Dict[str, Tuple[int, ...]] = {}
    self.module_of: Dict[int, str] = dict(enumerate(order))
    for i, top in enumerate(order):
      flat = jax.tree_util.tree_flatten_with_path(template[top])[0]
      for path, leaf in flat:
        keys = [k.key for k in path]
        torch = ".".join([f"all_modules.{i}"] + keys[:-1] + [_TORCH_LEAF[keys[-1]]])
        self.paths[torch] = (top, *keys)
        self.shapes[torch] = tuple(leaf.shape)
    self.frozen = {k for k, p in self.paths.items()
                   if _kind(p[-2] if len(p) > 1 else p[0]) == "GaussianFourierProjection"}

  def kind(self, torch_name: str) -> str:
    path = self.paths[torch_name]
    return _kind(path[-2])

  def check_names(self, names: Sequence[str]) -> None:
    """LayoutMismatch naming the first torch name that this network lacks, or the first layer
    the checkpoint lacks."""
    names = [n for n in names if n not in BUFFERS]
    for n in names:
      if not _KEY.match(n):
        raise LayoutMismatch(f"tensor {n!r} is not an 'all_modules.<i>.*' layer of a "
                             "score_sde_pytorch DDPM / NCSN++ network")
    theirs = sorted({int(_KEY.match(n).group(1)) for n in names})
    ours = len(self.module_of)
    if theirs != list(range(len(theirs))):
      raise LayoutMismatch(f"the checkpoint's layers are not numbered 0..{len(theirs) - 1}")
    for n in names:
      if n not in self.paths:
        i = int(_KEY.match(n).group(1))
        mine = self.module_of.get(i, "nothing")
        raise LayoutMismatch(
            f"tensor {n} has no counterpart: layer {i} of this config is {mine} "
            f"({len(theirs)} layers with parameters in the file, {ours} in the config); "
            f"likely differs: {_structure_hint(n, mine, len(theirs) == ours)}")
    missing = [k for k in self.paths if k not in set(names)]
    if missing:
      raise LayoutMismatch(f"the checkpoint has no tensor {missing[0]} ({len(theirs)} layers "
                           f"with parameters in the file, {ours} in the config); likely "
                           f"differs: {_structure_hint(missing[0], self.paths[missing[0]][0], len(theirs) == ours)}")

  def tree(self, tensors: Dict[str, np.ndarray]) -> dict:
    """{'params': tree} of float32 arrays from torch-named tensors (check_names first)."""
    out: dict = {}
    for name, path in self.paths.items():
      value = np.asarray(tensors[name])
      mapped = to_flax(self.kind(name), value)
      if tuple(mapped.shape) != self.shapes[name]:
        want = self.shapes[name]
        raise LayoutMismatch(
            f"tensor {name} has shape {tuple(value.shape)} (torch layout; "
            f"{tuple(mapped.shape)} as {'/'.join(path)}), the config's network needs {want}; "
            f"likely differs: {_shape_hint(name, mapped.shape, want, path)}")
      node = out
      for key in path[:-1]:
        node = node.setdefault(key, {})
      node[path[-1]] = mapped.astype(np.float32)
    return {"params": out}


def _structure_hint(name: str, module: str, same_count: bool) -> str:
  """The config field that most likely differs when layers do not line up."""
  if name.endswith(".W") and name.count(".") == 2 or module.startswith("GaussianFourier"):
    return "model.embedding_type"
  if not same_count:
    return ("model.num_res_blocks, model.ch_mult or model.attn_resolutions (or "
            "model.progressive / model.progressive_input / model.resblock_type)")
  if ".NIN_0" in name or ".Conv_2" in name:
    return "model.resblock_type (or model.ch_mult)"
  return "model.resblock_type, model.progressive or model.progressive_input"


def _shape_hint(name: str, have, want, path) -> str:
  if name.startswith("all_modules.") and path[-1] in ("kernel", "weight") and len(want) == 4:
    if have[:2] != tuple(want[:2]):
      return "model.conv_size or model.fir_kernel"
  ratios = {h / w for h, w in zip(have, want) if w}
  if len(ratios) == 1 and path[0].startswith("GaussianFourier"):
    return "model.nf"
  if path[0] == "Conv_0" and len(want) == 4 and have[2] != want[2]:
    return "data.num_channels"
  if len(want) == 4 and have[3] != want[3] and path[0].startswith("Conv"):
    return "data.num_channels"
  if len(ratios) == 1:
    return "model.nf"
  return "model.ch_mult (or model.nf)"
