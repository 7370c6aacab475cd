"""Config files: loading one (a path, or the name of a config shipped with the package), the
paths of its fields, and checking that each --config.<field> override names one of them.

    config = files.load_config_file("configs/digits_ddpm.py")
    files.check_overrides(config, sys.argv)
"""

import importlib.util
import os
from typing import List, Sequence

from msgm_jax.config.validate import ConfigError, closest

EXAMPLE = "--config=configs/digits_ddpm.py"
SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def resolve(path: str) -> str:
  """`path` itself when it is a file; else, for `configs/<name>.py`, the config of that name
  shipped inside the installed package (so README commands work after `pip install` from any
  directory); else `path` unchanged (load_config_file then says it does not exist)."""
  if os.path.isfile(path):
    return path
  parts = os.path.normpath(path).split(os.sep)
  if "configs" in parts:
    shipped = os.path.join(SHIPPED, *parts[len(parts) - parts[::-1].index("configs"):])
    if os.path.isfile(shipped):
      return shipped
  return path


def load_config_file(path: str):
  """Runs get_config() of a config file (as ml_collections does); ConfigError naming the file
  and the fix when it is missing or fails. A shipped config is found by resolve()."""
  path = resolve(path)
  if not os.path.isfile(path):
    raise ConfigError(f"config file {path} does not exist; pass one of configs/*.py, e.g. "
                      f"{EXAMPLE}")
  try:
    spec = importlib.util.spec_from_file_location("msgm_jax_user_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()
  except Exception as e:  # anything a user's Python file can raise
    if isinstance(e, SyntaxError):
      what = f"{e.msg} (line {e.lineno})"
    else:
      what = str(e).splitlines()[0] if str(e) else ""
    raise ConfigError(f"config file {path} cannot be loaded: {type(e).__name__}: {what}; fix "
                      f"it, or pass another --config (e.g. {EXAMPLE})") from e


def field_paths(config) -> List[str]:
  """Every leaf field of a ConfigDict as 'section.field'."""
  out = []

  def walk(node, prefix):
    for key in node.keys():
      value = node[key]
      if hasattr(value, "items"):
        walk(value, f"{prefix}{key}.")
      else:
        out.append(prefix + key)

  walk(config, "")
  return out


def check_overrides(config, argv: Sequence[str]) -> None:
  """Every --config.<path>=... must name a field of the config."""
  valid = set(field_paths(config))
  for arg in argv:
    if arg.startswith("--config."):
      path = arg[len("--config."):].split("=", 1)[0]
      if path not in valid:
        guess = closest(path, valid)
        hint = f"did you mean --config.{guess}?" if guess else "see its fields in the file"
        raise ConfigError(f"--config.{path}: the config has no field {path}; {hint}")
