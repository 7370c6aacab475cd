"""The command line's own mistakes, each as one `msgm_jax: error:` line with exit status 2.

absl parses the flags (and ml_collections loads the config file and applies --config.*
overrides) before main() runs, and reports a missing config file, a broken one or a
misspelt override as a long traceback. `flags_parser(FLAGS)` is the parser main.py hands to
app.run: it loads the config file and checks every override's name first, then lets absl
parse, turning its errors into one line (with the closest valid name for a misspelt one).
`--traceback` shows the full trace instead, for bug reports.
"""

import importlib.util
import os
import sys
from typing import Callable, List, Optional, Sequence

from absl import flags

from msgm_jax.validate import ConfigError, closest

PREFIX = "msgm_jax: error:"
EXAMPLE = "--config=configs/digits_ddpm.py"


def flag_value(argv: Sequence[str], name: str) -> Optional[str]:
  """The last value of --name=value or --name value in argv, else None."""
  value = None
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      value = arg.split("=", 1)[1]
    elif arg == f"--{name}" and i + 1 < len(argv):
      value = argv[i + 1]
  return value


def load_config_file(path: str):
  """Runs get_config() of a config file (as ml_collections does); ConfigError naming the file
  and the fix when it is missing or fails."""
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


def _describe(error: Exception, flag_names: Sequence[str], config) -> str:
  """One line for an absl flags error."""
  text = str(error).splitlines()[0]
  if isinstance(error, flags.UnrecognizedFlagError):
    names = list(flag_names) + ([f"config.{p}" for p in field_paths(config)] if config else [])
    guess = closest(error.flagname, names)
    return f"unknown flag --{error.flagname}" + (f"; did you mean --{guess}?" if guess else "")
  if "--config must have a value" in text or "flag --config=None" in text:
    return f"--config is required, e.g. {EXAMPLE}"
  if text.startswith("flag --config."):
    return f"{text}; give a value of the field's type (see the config file)"
  return text


def first_line(error: Exception) -> str:
  """`Type: first line of the message` of an error, short enough for a one-line message."""
  text = str(error).strip().splitlines()[0] if str(error).strip() else ""
  text = f"{type(error).__name__}: {text}" if text else type(error).__name__
  return text if len(text) <= 160 else text[:157] + "..."


def wants_traceback(argv: Sequence[str]) -> bool:
  return any(a in ("--traceback", "--traceback=true", "--traceback=True", "--traceback=1")
             for a in argv)


def fail(message: str) -> None:
  print(f"{PREFIX} {message}", file=sys.stderr)
  sys.exit(2)


def flags_parser(flag_values: flags.FlagValues) -> Callable[[List[str]], List[str]]:
  """app.run's flags_parser: argv -> remaining args, or one error line and exit status 2."""

  def parse(argv: List[str]) -> List[str]:
    config = None
    try:
      path = flag_value(argv[1:], "config")
      if path:
        config = load_config_file(path)
        check_overrides(config, argv[1:])
      return flag_values(argv)
    except (ConfigError, flags.Error) as e:
      if wants_traceback(argv):
        raise
      fail(str(e) if isinstance(e, ConfigError) else _describe(e, list(flag_values), config))
    return []  # not reached: fail exits

  return parse
