"""The command line's own mistakes: config files and override names (the subprocess runs are
in tests/test_faults.py)."""

import os

import pytest

from msgm_jax.cli import terminal as cli
from msgm_jax.config.validate import ConfigError
from tests.helpers import ROOT, run_cli


def test_config_files_that_are_missing_or_broken(tmp_path):
  with pytest.raises(ConfigError, match="config file nope.py does not exist; pass one of"):
    cli.load_config_file("nope.py")
  broken = tmp_path / "broken.py"
  broken.write_text("def get_config(:\n  pass\n")
  with pytest.raises(ConfigError, match=r"cannot be loaded: SyntaxError: .* \(line 1\); fix it"):
    cli.load_config_file(str(broken))
  failing = tmp_path / "failing.py"
  failing.write_text("def get_config():\n  return {}['model']\n")
  with pytest.raises(ConfigError, match="cannot be loaded: KeyError: 'model'"):
    cli.load_config_file(str(failing))


def test_a_misspelt_override_gets_the_closest_field():
  config = cli.load_config_file(os.path.join(ROOT, "configs", "digits_ddpm.py"))
  cli.check_overrides(config, ["--config.training.n_iters=5", "--mode=train"])
  with pytest.raises(ConfigError, match=r"--config.training.n_itres: the config has no field "
                     r"training.n_itres; did you mean --config.training.n_iters\?"):
    cli.check_overrides(config, ["--config.training.n_itres=5"])
  with pytest.raises(ConfigError, match=r"did you mean --config.training.batch_size\?"):
    cli.check_overrides(config, ["--config.trainin.batch_size=5"])


def test_flag_values_in_both_spellings():
  assert cli.flag_value(["--config=a.py", "--mode", "eval"], "mode") == "eval"
  assert cli.flag_value(["--config", "a.py"], "config") == "a.py"
  assert cli.flag_value(["--workdir=x"], "config") is None


def test_help_and_h_exit_0_and_start_with_the_modes_and_a_first_command():
  for flag in ("--help", "-h"):
    out = run_cli(flag)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith("usage: python -m msgm_jax.main --config=configs/<file>.py")
    assert lines[2] == "modes (--mode=):" and lines[3].split()[0] == "train"
    assert [l.split()[0] for l in lines[3:10]] == ["train", "eval", "import", "inpaint",
                                                  "reconstruct", "sample", "summary"]
    assert "  python -m msgm_jax.main --config=configs/toy2d.py --workdir=runs/toy2d" in lines
    assert "--workdir: Run directory" in out.stdout  # then the flags
  assert run_cli("--helpfull").returncode == 0
