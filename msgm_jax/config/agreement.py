"""Does a config agree with the run it is applied to? And names for outputs of given settings.

Every checkpoint stores the config that trained it (its meta "config", JSON; the training loop
also writes <workdir>/config.json). Resume, eval and sample compare the fields that define the
model and the SDE with it (`check`): a score network trained for one SDE, data space or
architecture gives nonsense under another, so a difference is refused with one line naming
each field and both values, unless the user passes --allow_config_change. All other fields
(sampler settings, eval sizes, the schedule, n_iters, ...) may differ.

`settings_tag` names the outputs of eval and sample by a digest of the fields that determine
them, so results of different settings never overwrite each other.
"""

import hashlib
import json
from typing import Any, Dict, Iterable, List, Tuple

# Fields whose value defines what the trained network computes.
IDENTITY = ("training.sde", "training.continuous", "data.dataset", "data.image_size",
            "data.num_channels", "data.centered")
# Fields of the model section that do not: hyper-parameters of training and the numerics.
MODEL_FREE = ("model.ema_rate", "model.dropout", "model.conv_impl", "model.dtype")
OVERRIDE_FLAG = "--allow_config_change"


class ConfigMismatch(ValueError):
  """The config differs from the run's in fields that define the model or the SDE."""


def flatten(config: Any) -> Dict[str, Any]:
  """A ConfigDict, a dict or a JSON string of one -> {'section.field': JSON value}."""
  if isinstance(config, str):
    tree = json.loads(config)
  elif hasattr(config, "to_dict"):
    tree = json.loads(json.dumps(config.to_dict(), default=str))
  else:
    tree = json.loads(json.dumps(config, default=str))
  out = {}

  def walk(node, prefix):
    for key, value in node.items():
      if isinstance(value, dict):
        walk(value, f"{prefix}{key}.")
      else:
        out[prefix + key] = value

  walk(tree, "")
  return out


def identity_fields(flat: Dict[str, Any]) -> List[str]:
  """The keys of `flat` that define the model and the SDE. model.num_scales only for
  discrete-time training (it fixes the time labels; otherwise it is the sampler's N)."""
  keys = [k for k in IDENTITY if k in flat]
  for k in sorted(flat):
    if k.startswith("model.") and k not in MODEL_FREE:
      if k != "model.num_scales" or flat.get("training.continuous") is False:
        keys.append(k)
  return keys


def _same(a: Any, b: Any) -> bool:
  if isinstance(a, str) and isinstance(b, str):
    return a.lower() == b.lower()  # 'CIFAR10' / 'cifar10', 'vesde' / 'VESDE'
  return a == b


def differences(saved: Dict[str, Any], current: Dict[str, Any],
                keys: Iterable[str]) -> List[Tuple[str, Any, Any]]:
  """(key, saved value, current value) for each key present in both that differs."""
  return [(k, saved[k], current[k]) for k in keys
          if k in saved and k in current and not _same(saved[k], current[k])]


def _listing(diffs: List[Tuple[str, Any, Any]]) -> str:
  return ", ".join(f"{k}={now!r} (the run's: {was!r})" for k, was, now in diffs)


def check(saved_json: str, config: Any, where: str, *, allow: bool = False) -> List[str]:
  """Compares `config` with the run's config `saved_json` (checkpoint `where`).

  Raises ConfigMismatch on a difference in identity_fields unless `allow`. Returns one
  description per other changed field ("training.n_iters: 20 -> 40"), for a log line.
  """
  saved, current = flatten(saved_json), flatten(config)
  keys = identity_fields(saved)
  diffs = differences(saved, current, keys)
  if diffs and not allow:
    raise ConfigMismatch(
        f"the config differs from the one that trained {where} in fields that define the "
        f"model or the SDE: {_listing(diffs)}; use the run's values (or another --workdir), "
        f"or pass {OVERRIDE_FLAG} to go ahead anyway")
  others = differences(saved, current, sorted(set(saved) - set(keys)))
  return [f"{k}: {was!r} -> {now!r}" for k, was, now in diffs + others]


# Every mode's rerun with the same settings (sample, eval, inpaint, reconstruct): the stored
# result is printed with this note and the run exits 0; --overwrite does it again.
STORED = "already stored with these settings; --overwrite does it again"


def settings_tag(config: Any, prefixes: Iterable[str], exclude: Iterable[str] = ()) -> str:
  """8 hex digits naming the values of the fields of `config` that start with one of
  `prefixes` (a whole key or 'section.'), less `exclude`: outputs of other settings get
  other names."""
  flat = flatten(config)
  prefixes, exclude = tuple(prefixes), set(exclude)
  chosen = {k: v for k, v in flat.items()
            if k not in exclude and any(k == p or (p.endswith(".") and k.startswith(p))
                                        for p in prefixes)}
  return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()[:8]
