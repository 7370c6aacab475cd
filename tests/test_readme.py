"""Every `python -m msgm_jax...` command in the shell blocks of README.md and docs/*.md (```bash / ```sh /
```console) is checked, and a few run at tiny size.

Checked, every command: the module exists, every flag is one the module defines, and for
msgm_jax.main the whole command line parses as the entrypoint parses it (flag values, --mode,
the config file, each --config.X override a field of the right type) and the config passes
start-up validation (validate.check_config), all in one subprocess (one JAX import).

Only checked, not run, and why:
- templates (`configs/<file>.py`, `--config=...`, `[--mode=a|b]`): no one command to run; their
  flag names are checked and each `a|b` alternative of --mode is a mode;
- the launchers (launch/*.sh, sbatch) and full-size CIFAR-10 / CelebA commands: they need a
  TPU slice, SLURM or prepared datasets; their main flags (after `--`) are checked like the rest;
- commands reading a run that only an hour-long job makes (inpaint on runs/digits/standard,
  commitment and score_probes on runs/c3/*), and `pip install` / `pytest`.
Run at tiny size (tiny model, a few steps, in a temporary directory): the README's override
example (a digits training run) and the digits classifier's train and eval pair
(RUN_AT_TINY_SIZE).
"""

import glob
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.helpers import ROOT, run_cli

README = os.path.join(ROOT, "README.md")
# The README and the manual pages it links (the commands moved there with the manual).
PAGES = [README, *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))),
         os.path.join(ROOT, "launch", "README.md")]
BLOCK = re.compile(r"^[ \t]*```(?:bash|sh|console)[ \t]*\n(.*?)^[ \t]*```", re.S | re.M)
MODULE = "msgm_jax"
# Commands run at tiny size: the README's command (its own flags first) -> the overrides added.
TINY_DIGITS = ("--config.model.nf=8", "--config.model.ch_mult=(1,)",
               "--config.model.num_scales=4", "--config.eval.batch_size=16",
               "--config.eval.num_samples=16", "--config.sampling.batch_size=16",
               "--config.training.batch_size=16")
TINY_CLASSIFIER = ("--config.classifier.width=16", "--config.classifier.n_iters=3",
                   "--config.classifier.snapshot_freq=3", "--config.classifier.log_freq=3")
RUN_AT_TINY_SIZE = {
    "--config=configs/digits_ddpm.py --workdir=runs/digits --config.training.n_iters=2000":
        ("--config.training.n_iters=3",) + TINY_DIGITS,
    "--config=configs/classifier/digits.py --workdir=runs/classifier_digits": TINY_CLASSIFIER,
    "--config=configs/classifier/digits.py --workdir=runs/classifier_digits --mode=eval":
        TINY_CLASSIFIER,
}
# absl's own flags, known to every module.
ABSL = {"help", "helpfull", "helpshort", "helpxml", "flagfile", "undefok", "logtostderr",
        "alsologtostderr", "verbosity", "v", "log_dir"}


def commands():
  """[(module, args)] of every `python -m msgm_jax...` in the README's shell blocks; a
  launcher's flags after `--` count as msgm_jax.main's."""
  text = ""
  for page in PAGES:
    with open(page, encoding="utf-8") as f:
      text += f.read() + "\n"
  out = []
  for block in BLOCK.findall(text):
    joined = re.sub(r"\\\n", " ", block)
    for line in joined.splitlines():
      line = line.split(" #", 1)[0].strip()
      if not line or line.startswith("#"):
        continue
      for part in re.split(r"&&|;|\|\|", line):
        words = shlex.split(part)
        if "-m" in words and words[words.index("-m") + 1].startswith(MODULE):
          i = words.index("-m")
          out.append((words[i + 1], words[i + 2:]))
        elif words and (words[0].startswith("launch/") or "sbatch" in words[0]) and "--" in words:
          out.append(("msgm_jax.main", words[words.index("--") + 1:]))
  return out


def _flag_name(arg):
  return arg.lstrip("[-").split("=", 1)[0].rstrip("]")


def _is_template(args):
  return any("<" in a or "..." in a or "$" in a or a.startswith("[") for a in args)


def _module_flags(module):
  """The flag names a module defines (absl DEFINE_* or argparse add_argument), from its source."""
  path = os.path.join(ROOT, *module.split(".")) + ".py"
  assert os.path.isfile(path), f"README runs {module}, which does not exist"
  with open(path, encoding="utf-8") as f:
    source = f.read()
  found = re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", source)
  found += re.findall(r"add_argument\(\s*\"--(\w+)\"", source)
  return set(found) | ABSL


# One process parses every msgm_jax.main command line as the entrypoint does and validates
# its config: {"args": [...], "error": "..." or null} per line of JSON input.
_PARSE = r"""
import json, sys
from msgm_jax import main
from msgm_jax.config import validate
print(json.dumps(sorted(main.FLAGS)))
for line in sys.stdin:
  args = json.loads(line)
  try:
    # ml_collections defines a flag per --config.X override as it parses (reading sys.argv):
    # drop the last command's before the next parse.
    for name in [n for n in main.FLAGS if n.startswith("config.")]:
      delattr(main.FLAGS, name)
    main.FLAGS.unparse_flags()
    sys.argv = ["main"] + args
    main.FLAGS(sys.argv)
    validate.check_config(main.FLAGS.config)
    error = None
  except Exception as e:  # reported per command
    error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
  print(json.dumps({"args": args, "error": error}), flush=True)
"""


# Paths a README command reads that another README job makes (a config field is checked to
# be an existing path): made empty for the check.
MADE_BY_OTHER_JOBS = ("runs/digits/classifier",  # by configs/digits_report.py
                      "runs/c10_pretrained")  # by docs/import.md's --mode=import


@pytest.fixture(scope="module")
def main_flags_and_errors(tmp_path_factory):
  """(the flag names of msgm_jax.main, {args: error or None} of its concrete commands), parsed
  in a directory with the repository's configs/ and MADE_BY_OTHER_JOBS."""
  cwd = tmp_path_factory.mktemp("readme")
  os.symlink(os.path.join(ROOT, "configs"), cwd / "configs")
  for path in MADE_BY_OTHER_JOBS:
    (cwd / path).mkdir(parents=True)
  concrete = [a for m, a in commands() if m == "msgm_jax.main" and not _is_template(a)]
  proc = subprocess.run([sys.executable, "-c", _PARSE], cwd=cwd, capture_output=True,
                        text=True, timeout=300, input="".join(json.dumps(a) + "\n"
                                                                for a in concrete),
                        env=dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  results = [json.loads(line) for line in lines[1:]]
  return set(json.loads(lines[0])), {" ".join(r["args"]): r["error"] for r in results}


def test_the_readme_has_the_commands_this_test_knows():
  found = commands()
  assert len(found) >= 15, found
  mains = {" ".join(a) for m, a in found if m == "msgm_jax.main"}
  assert set(RUN_AT_TINY_SIZE) <= mains, set(RUN_AT_TINY_SIZE) - mains
  assert {m for m, _ in found} >= {"msgm_jax.main", "msgm_jax.tools.bench",
                                   "msgm_jax.experiments.commitment"}


def test_every_main_command_parses_and_its_config_validates(main_flags_and_errors):
  known, errors = main_flags_and_errors
  assert len(errors) >= 8
  assert {a: e for a, e in errors.items() if e} == {}
  from msgm_jax.cli import modes  # pylint: disable=import-outside-toplevel
  for module, args in commands():
    if module != "msgm_jax.main":
      continue
    for arg in (a for a in args if a.startswith(("--", "[--"))):  # not a template's words
      name = _flag_name(arg)
      assert name.startswith("config.") or name in known, f"{arg} in: {' '.join(args)}"
      if name == "mode":
        for mode in arg.rstrip("]").split("=", 1)[1].split("|"):
          assert mode in modes.MODES.names(), f"no mode {mode}: {' '.join(args)}"
      if name == "config" and "<" not in arg and "..." not in arg:
        assert os.path.isfile(os.path.join(ROOT, arg.split("=", 1)[1])), arg


def test_the_other_modules_commands_name_their_flags():
  others = [(m, a) for m, a in commands() if m != "msgm_jax.main"]
  assert len(others) >= 4
  for module, args in others:
    known = _module_flags(module)
    for arg in args:
      if arg.startswith("--") or arg.startswith("[--"):
        name = _flag_name(arg)
        assert name.startswith("config.") or name in known, f"{module}: unknown flag {arg}"


def test_a_validation_error_is_reported(tmp_path):
  """The checker itself can fail: a misspelt override and a missing config are errors."""
  proc = subprocess.run(
      [sys.executable, "-c", _PARSE], cwd=ROOT, capture_output=True, text=True, timeout=300,
      input=json.dumps(["--config=configs/digits_ddpm.py", "--config.training.n_iter=3"]) +
      "\n" + json.dumps(["--config=configs/nope.py"]) + "\n",
      env=dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu"))
  errors = [json.loads(line)["error"] for line in proc.stdout.strip().splitlines()[1:]]
  assert len(errors) == 2 and all(errors), errors


def test_chosen_commands_run_at_tiny_size(tmp_path):
  for readme_args, extra in RUN_AT_TINY_SIZE.items():
    args = [a.replace("--workdir=runs/", f"--workdir={tmp_path}/")
            for a in shlex.split(readme_args)]
    proc = run_cli(*args, *extra)
    assert proc.returncode == 0, (readme_args, proc.stderr[-3000:])
  assert (tmp_path / "digits" / "checkpoints").is_dir()
  assert list((tmp_path / "digits").glob("samples/*"))  # the final-step picture
  assert (tmp_path / "classifier_digits").is_dir()
