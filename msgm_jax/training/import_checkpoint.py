"""--mode=import: a score_sde_pytorch checkpoint becomes an ordinary Orbax checkpoint of a run.

The file is read by training/torch_pickle.py (no torch; nothing in the file is executed). Layouts:
  * score_sde_pytorch's run_lib checkpoint: {'optimizer', 'model', 'ema', 'step'}, the model's
    state dict with or without DataParallel's 'module.' prefix, 'ema' as its
    ExponentialMovingAverage.state_dict() (shadow_params in model.parameters() order, without
    the parameters that take no gradient: the Fourier features);
  * a bare state dict ('all_modules.<i>...' names, prefixed or not).
The network is the one the config builds (models/from_torch.py maps the names); the checkpoint
is written at the file's step with the parameters, the EMA parameters (the model's when the
file has none), the config, and Adam's moments and count when the file has them (else a fresh
optimiser state), and one line says which. Every other mode then opens it as any run.
"""

import os
from typing import Any, Dict, List, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from msgm_jax.training import checkpoint
from msgm_jax.training import loop as train
from msgm_jax.training import torch_pickle
from msgm_jax.models import from_torch
from msgm_jax.method.step import TrainState

RUN_KEYS = ("optimizer", "model", "ema", "step")


class UnknownLayout(ValueError):
  """The file holds something other than a score_sde_pytorch checkpoint or state dict."""


class Source(NamedTuple):
  """A checkpoint's content with torch names (no 'module.' prefix), in the file's order."""

  model: Dict[str, np.ndarray]
  ema: Optional[Any]  # shadow list, or a state dict
  optimizer: Optional[dict]
  step: int


def _strip(state: dict) -> Dict[str, np.ndarray]:
  prefixed = all(k.startswith("module.") for k in state)
  return {(k[len("module."):] if prefixed else k): v for k, v in state.items()}


def _is_state_dict(obj) -> bool:
  return (isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) for k in obj)
          and all(isinstance(v, np.ndarray) for v in obj.values()))


def _describe(obj) -> str:
  if isinstance(obj, dict):
    keys = list(obj)
    more = f", ... ({len(keys)} keys)" if len(keys) > 6 else ""
    return "a dict with keys " + ", ".join(map(repr, keys[:6])) + more
  return f"a {type(obj).__name__}"


def split_layout(obj: Any, where: str = "the file") -> Source:
  """The parts of a loaded checkpoint; UnknownLayout naming what was found otherwise."""
  if isinstance(obj, dict) and "model" in obj and _is_state_dict(obj["model"]):
    unknown = [k for k in obj if k not in RUN_KEYS]
    if unknown:
      raise UnknownLayout(f"{where} has keys {unknown} besides score_sde's {list(RUN_KEYS)}")
    ema = obj.get("ema")
    if isinstance(ema, dict) and "shadow_params" in ema:
      ema = list(ema["shadow_params"])
    elif _is_state_dict(ema):
      ema = _strip(ema)
    elif ema is not None:
      raise UnknownLayout(f"{where}: 'ema' is {_describe(ema)}; expected score_sde's "
                          "ExponentialMovingAverage state ('shadow_params') or a state dict")
    step = obj.get("step", 0)
    return Source(_strip(obj["model"]), ema, obj.get("optimizer"), int(np.asarray(step)))
  if _is_state_dict(obj) and any(".all_modules." in k or k.startswith("all_modules.")
                                 for k in obj):
    return Source(_strip(obj), None, None, 0)
  raise UnknownLayout(f"{where} holds {_describe(obj)}; expected score_sde_pytorch's "
                      f"checkpoint ({', '.join(RUN_KEYS)}) or a model state dict with "
                      "'all_modules.<i>.' names")


def _param_names(model_sd: Dict[str, np.ndarray]) -> List[str]:
  """The torch parameters in model.parameters() order: the state dict's order minus buffers."""
  return [k for k in model_sd if k not in from_torch.BUFFERS]


def ema_tensors(source: Source, mapping: from_torch.Mapping) -> Optional[Dict[str, np.ndarray]]:
  """Torch-named EMA tensors; frozen parameters (no shadow) are the model's."""
  if source.ema is None:
    return None
  if isinstance(source.ema, dict):
    return {**source.model, **source.ema}
  names = _param_names(source.model)
  trainable = [n for n in names if n not in mapping.frozen]
  shadows = source.ema
  if len(shadows) == len(names):
    return {**source.model, **dict(zip(names, shadows))}
  if len(shadows) == len(trainable):
    return {**source.model, **dict(zip(trainable, shadows))}
  raise from_torch.LayoutMismatch(
      f"the EMA has {len(shadows)} shadow tensors, the model {len(names)} parameters "
      f"({len(trainable)} trainable); the 'ema' entry belongs to another network")


def adam_moments(source: Source, mapping: from_torch.Mapping):
  """(mu, nu, count) torch-named from torch.optim.Adam's state dict, or None without one."""
  opt = source.optimizer
  if not opt:
    return None
  if not (isinstance(opt, dict) and "state" in opt and "param_groups" in opt):
    raise UnknownLayout(f"'optimizer' is {_describe(opt)}; expected torch.optim.Adam's "
                        "state_dict ('state', 'param_groups')")
  names = _param_names(source.model)
  ids = [i for g in opt["param_groups"] for i in g["params"]]
  if len(ids) != len(names):
    raise from_torch.LayoutMismatch(f"the optimizer holds {len(ids)} parameters, the model "
                                    f"{len(names)}")
  mu, nu, count = {}, {}, 0
  for i, name in zip(ids, names):
    entry = opt["state"].get(i)
    if entry is None:  # never got a gradient (the Fourier features): zero moments
      mu[name] = nu[name] = np.zeros_like(source.model[name])
      continue
    if "exp_avg" not in entry or "exp_avg_sq" not in entry:
      raise UnknownLayout(f"optimizer state {i} has {sorted(entry)}; expected Adam's exp_avg, "
                          "exp_avg_sq and step")
    mu[name], nu[name] = entry["exp_avg"], entry["exp_avg_sq"]
    count = max(count, int(np.asarray(entry.get("step", 0))))
  return mu, nu, count


def with_adam(opt_state, mu, nu, count: int):
  """The optax chain state with its ScaleByAdamState's moments and count replaced."""
  def swap(s):
    if isinstance(s, optax.ScaleByAdamState):
      return s._replace(mu=mu, nu=nu, count=jnp.asarray(count, s.count.dtype))
    return s
  return jax.tree.map(swap, opt_state, is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))


def import_file(config, workdir: str, path: str) -> str:
  """Writes <workdir>/checkpoints/<step> from `path`; returns the line that says what it holds."""
  if not path:
    raise ValueError("--mode=import needs --config.import_from=<a score_sde_pytorch .pth file>")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"config.import_from={path} is not a file; pass the .pth checkpoint")
  root = os.path.join(workdir, "checkpoints")
  if os.path.isdir(root) and os.listdir(root):
    raise ValueError(f"{root} already holds checkpoints; import into a new --workdir")
  try:
    source = split_layout(torch_pickle.load(path), path)
  except torch_pickle.UnsafePickle as e:
    raise UnknownLayout(f"{path} is not a plain torch checkpoint: {e}") from None
  run = train.build_run(config, workdir)
  mapping = from_torch.Mapping(run.model, run.shape)
  mapping.check_names(list(source.model))
  params = mapping.tree(source.model)
  ema = ema_tensors(source, mapping)
  ema_params = mapping.tree(ema) if ema is not None else params
  opt_state = run.tx.init(params)
  adam = adam_moments(source, mapping)
  if adam is not None:
    mu, nu, count = adam
    opt_state = with_adam(opt_state, mapping.tree(mu), mapping.tree(nu), count)
  state = TrainState(step=jnp.asarray(source.step, jnp.int32), params=params,
                     ema_params=ema_params, opt_state=opt_state)
  ckpt = checkpoint.Checkpointer(root, max_to_keep=config.training.max_to_keep)
  try:
    ckpt.save(source.step, state, train.checkpoint_meta(run, state, source.step))
    ckpt.wait()
  finally:
    ckpt.close()
  train.write_config(config, workdir)
  n = sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(params))
  parts = ["parameters", "EMA parameters" if ema is not None else
           "EMA = parameters (the file has no EMA)"]
  parts.append(f"Adam moments (count {adam[2]})" if adam is not None else
               "a fresh optimizer state (the file has no Adam moments)")
  return (f"import: {path} -> {ckpt.path(source.step)}: step {source.step}, {n:,} parameters; "
          f"{', '.join(parts)}")
