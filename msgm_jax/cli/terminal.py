"""The command line's own mistakes, each as one `msgm_jax: error:` line with exit status 2.

absl parses the flags (and ml_collections loads the config file and applies --config.*
overrides) before main() runs, and reports a missing config file, a broken one or a
misspelt override as a long traceback. `flags_parser(FLAGS)` is the parser main.py hands to
app.run: it loads the config file and checks every override's name first, then lets absl
parse, turning its errors into one line (with the closest valid name for a misspelt one).
`--traceback` shows the full trace instead, for bug reports.
"""

import os
import sys
from typing import Callable, Dict, List, Optional, Sequence

from absl import flags

from msgm_jax.config.files import EXAMPLE, check_overrides, load_config_file, resolve
from msgm_jax.config.validate import ConfigError
from msgm_jax.errors import first_line

PREFIX = "msgm_jax: error:"


def flag_value(argv: Sequence[str], name: str) -> Optional[str]:
  """The last value of --name=value or --name value in argv, else None."""
  value = None
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{name}="):
      value = arg.split("=", 1)[1]
    elif arg == f"--{name}" and i + 1 < len(argv):
      value = argv[i + 1]
  return value


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


def wants_traceback(argv: Sequence[str]) -> bool:
  return any(a in ("--traceback", "--traceback=true", "--traceback=True", "--traceback=1")
             for a in argv)


class Interrupted(KeyboardInterrupt):
  """A stop signal other than SIGINT (SIGTERM), raised in the main thread like Ctrl-C; args:
  the signal's name."""


_STATUS = {"SIGINT": 130, "SIGTERM": 143}  # 128 + the signal number, as a shell reports it


def _signal_name(error: KeyboardInterrupt) -> str:
  return error.args[0] if isinstance(error, Interrupted) and error.args else "SIGINT"


def interrupted_status(error: KeyboardInterrupt) -> int:
  return _STATUS.get(_signal_name(error), 130)


def last_checkpoint(workdir: str) -> Optional[int]:
  """The newest complete checkpoint step in <workdir>/checkpoints (Orbax renames a save to
  its step when it is complete), or None."""
  root = os.path.join(workdir, "checkpoints")
  steps = [int(n) for n in os.listdir(root) if n.isdigit()] if os.path.isdir(root) else []
  return max(steps) if steps else None


def interrupted_lines(error: KeyboardInterrupt, mode: str, workdir: Optional[str],
                      command: str, trains_one_run: bool = True) -> List[str]:
  """The two lines a stop by Ctrl-C or SIGTERM ends with: what stopped, what is kept (for a
  training run: the last checkpoint, step and path) and the command that goes on."""
  name = _signal_name(error)
  what = f"interrupted by {name}" + (" (Ctrl-C)" if name == "SIGINT" else "")
  if mode == "train" and trains_one_run and workdir:
    step = last_checkpoint(workdir)
    if step is None:
      return [f"msgm_jax: {what} before the first checkpoint: nothing is saved yet",
              f"msgm_jax: to start again, rerun: {command}"]
    path = os.path.join(workdir, "checkpoints", str(step))
    return [f"msgm_jax: {what}; the last checkpoint is step {step}: {path}",
            f"msgm_jax: to resume from it, rerun: {command}"]
  return [f"msgm_jax: {what} during --mode={mode}; what finished is kept",
          f"msgm_jax: to go on, rerun: {command}"]


def resume_lines(code: int, mode: str, workdir: Optional[str], command: str,
                 trains_one_run: bool = True) -> List[str]:
  """After another process of the run stopped by a signal (its exit status `code`): this
  process's line with its own command that goes on; [] after an error's status."""
  names = {status: name for name, status in _STATUS.items()}
  if code not in names:
    return []
  return interrupted_lines(Interrupted(names[code]), mode, workdir, command, trains_one_run)[1:]


def _summary(doc: str) -> str:
  """A mode docstring's first clause (up to ' (', ';' or the sentence's end), one line."""
  text = " ".join((doc or "").split())
  for stop in (" (", ";", ". "):
    text = text.split(stop, 1)[0]
  return text.rstrip(".")


def usage(mode_docs: Dict[str, str], flags_help: str) -> str:
  """--help: the modes, a first command, then the entrypoint's flags (flags_help)."""
  width = max(map(len, mode_docs))
  lines = ["usage: python -m msgm_jax.main --config=configs/<file>.py --workdir=<dir> "
           "[--mode=<mode>] [--config.<field>=<value> ...]", "", "modes (--mode=):"]
  for name, doc in sorted(mode_docs.items(), key=lambda item: item[0] != "train"):
    default = " (the default)" if name == "train" else ""
    lines.append(f"  {name.ljust(width)}  {_summary(doc)}{default}")
  lines += ["", "a first command (the paper's first figure on a 2-D toy; minutes on a CPU):",
            "  python -m msgm_jax.main --config=configs/toy2d.py --workdir=runs/toy2d",
            "one run, then samples from it:",
            f"  python -m msgm_jax.main {EXAMPLE} --workdir=runs/digits",
            f"  python -m msgm_jax.main {EXAMPLE} --workdir=runs/digits --mode=sample",
            "", "More in README.md. The flags (--helpfull: those of every library too):",
            *[l for l in flags_help.strip().splitlines() if not l.endswith(".py:")]]
  return "\n".join(lines) + "\n"


HELP_FLAGS = ("--help", "-h", "-?", "--helpshort", "--help=true", "--help=True")


def fail(message: str) -> None:
  print(f"{PREFIX} {message}", file=sys.stderr)
  sys.exit(2)


def _with_config_path(argv: List[str], path: str) -> List[str]:
  """argv with every --config=<file> / --config <file> naming `path` (a shipped config's file
  when the given one is not in the working directory)."""
  out = list(argv)
  for i, arg in enumerate(out):
    if arg.startswith("--config="):
      out[i] = "--config=" + path
    elif arg == "--config" and i + 1 < len(out):
      out[i + 1] = path
  return out


def flags_parser(flag_values: flags.FlagValues, usage: Optional[Callable[[], str]] = None
                 ) -> Callable[[List[str]], List[str]]:
  """app.run's flags_parser: argv -> remaining args, or one error line and exit status 2.
  --help / -h print usage() and --helpfull every flag, with exit status 0."""

  def parse(argv: List[str]) -> List[str]:
    if usage is not None and any(a in HELP_FLAGS for a in argv[1:]):
      sys.stdout.write(usage())
      sys.exit(0)
    if "--helpfull" in argv[1:]:
      sys.stdout.write(flag_values.get_help() + "\n")
      sys.exit(0)
    config = None
    try:
      path = flag_value(argv[1:], "config")
      if path:
        config = load_config_file(path)
        check_overrides(config, argv[1:])
        argv = _with_config_path(argv, resolve(path))
      return flag_values(argv)
    except (ConfigError, flags.Error) as e:
      if wants_traceback(argv):
        raise
      fail(str(e) if isinstance(e, ConfigError) else _describe(e, list(flag_values), config))
    return []  # not reached: fail exits

  return parse
