"""Loads the FID Inception weights from a user's file into the Flax port's variables.

The file is pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (FID_WEIGHTS_URL; a torch
state dict of 566 tensors named as torchvision's inception_v3), read by the restricted
unpickler of `torch_pickle` (no torch, no code from the file runs), or an `.npz` with the same
names (`np.savez(out, **torch_pickle.load(pth))`). Every name the network needs must be present
with its shape and no others may be (BatchNorm's `num_batches_tracked` counters are ignored),
so a different network's weights fail with a message instead of giving a wrong FID.
"""

import functools
import hashlib
import os
from typing import Any, Dict, Tuple

import jax
import numpy as np
from absl import logging

from msgm_jax.evaluation.metrics import inception
from msgm_jax.training import torch_pickle

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   + FID_WEIGHTS_NAME)
# pytorch-fid names the file after its SHA-256 (torch.hub's convention: the first 8 hex digits,
# "6726825d"). The full digest and size below are those that public projects pinning this file
# record (found by code search; README: "Inception weights"); not verified offline here.
FID_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
FID_WEIGHTS_BYTES = 95_628_359
IGNORED_SUFFIX = ".num_batches_tracked"
_FIX = (f"pass pytorch-fid's {FID_WEIGHTS_NAME} (download it from {FID_WEIGHTS_URL}) as "
        "--config.eval.inception_weights=<path>")

# Flax leaf (collection, module, variable) -> (torch suffix, transpose to the Flax layout).
_LEAVES = {
    ("params", "conv", "kernel"): ("conv.weight", (2, 3, 1, 0)),  # [O, I, kh, kw] -> [kh, kw, I, O]
    ("params", "bn", "scale"): ("bn.weight", None),
    ("params", "bn", "bias"): ("bn.bias", None),
    ("batch_stats", "bn", "mean"): ("bn.running_mean", None),
    ("batch_stats", "bn", "var"): ("bn.running_var", None),
    ("params", "fc", "kernel"): ("weight", (1, 0)),  # nn.Linear's [out, in] -> [in, out]
    ("params", "fc", "bias"): ("bias", None),
}


def file_sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def read_state_dict(path: str) -> Dict[str, np.ndarray]:
  """name -> array from a torch .pth (safe reader) or an .npz; one-line errors naming the fix."""
  if not path:
    raise ValueError(f"no Inception weights given: {_FIX}")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Inception weights {path!r} do not exist: {_FIX}")
  if path.endswith(".npz"):
    with np.load(path, allow_pickle=False) as f:
      return {k: f[k] for k in f.files}
  try:
    state = torch_pickle.load(path)
  except torch_pickle.UnsafePickle as e:
    raise ValueError(f"{path} is not a plain torch state dict ({e}); {_FIX}") from None
  except Exception as e:  # a truncated or foreign file fails in many ways inside pickle/zip
    raise ValueError(f"cannot read {path} as a torch state dict ({type(e).__name__}: {e}); "
                     f"{_FIX}") from None
  if not isinstance(state, dict) or not all(
      isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items()):
    raise ValueError(f"{path} holds a {type(state).__name__}, not a flat state dict of "
                     f"tensors; {_FIX}")
  return dict(state)


def torch_layout() -> Dict[str, Tuple[Tuple[int, ...], Tuple[str, ...], Any]]:
  """torch name -> (torch shape, Flax path, transpose) for every variable of FIDInceptionV3."""
  return dict(_layout_items())


@functools.lru_cache(maxsize=1)
def _layout_items() -> Tuple[Tuple[str, Tuple[Tuple[int, ...], Tuple[str, ...], Any]], ...]:
  # Tracing the network's init for its shapes takes about 2 s: do it once per process.
  layout = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(inception.variable_shapes())[0]:
    keys = tuple(str(getattr(k, "key", k)) for k in path)
    suffix, perm = _LEAVES[(keys[0], keys[-2], keys[-1])]
    name = ".".join(keys[1:-2] + (suffix,)) if keys[-2] != "fc" else f"fc.{suffix}"
    shape = tuple(leaf.shape)
    if perm is not None:
      shape = tuple(shape[perm.index(i)] for i in range(len(shape)))
    layout[name] = (shape, keys, perm)
  return tuple(layout.items())


def to_variables(state: Dict[str, np.ndarray], source: str = "the weights") -> Any:
  """A torch-named state dict -> FIDInceptionV3 variables {'params', 'batch_stats'} (float32)."""
  layout = torch_layout()
  names = {k for k in state if not k.endswith(IGNORED_SUFFIX)}
  missing, unexpected = sorted(set(layout) - names), sorted(names - set(layout))
  if missing or unexpected:
    raise ValueError(f"{source} are not the FID Inception's: {len(missing)} missing (e.g. "
                     f"{missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}); "
                     f"{_FIX}")
  variables: Dict[str, Any] = {}
  for name, (shape, keys, perm) in layout.items():
    value = np.asarray(state[name])
    if value.shape != shape:
      raise ValueError(f"{source}: {name} has shape {value.shape}, the FID Inception's is "
                       f"{shape}; {_FIX}")
    if perm is not None:
      value = value.transpose(perm)
    node = variables
    for key in keys[:-1]:
      node = node.setdefault(key, {})
    node[keys[-1]] = np.ascontiguousarray(value, dtype=np.float32)
  return variables


def load_inception(path: str) -> Tuple[Any, str]:
  """(variables for inception.pool3_features, the file's SHA-256) from a .pth or .npz file.

  A .pth whose digest differs from pytorch-fid's file only gets a warning: its names and
  shapes were checked, but FIDs from it are not comparable with published ones.
  """
  digest = file_sha256(path) if os.path.isfile(path) else ""
  variables = to_variables(read_state_dict(path), source=path)
  if path.endswith(".pth") and digest != FID_WEIGHTS_SHA256:
    logging.warning("%s has SHA-256 %s, not pytorch-fid's %s (%s): FIDs computed with it are "
                    "not comparable with published ones", path, digest, FID_WEIGHTS_SHA256,
                    FID_WEIGHTS_NAME)
  return variables, digest
