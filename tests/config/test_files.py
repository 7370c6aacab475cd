"""Config files: a shipped config is found from any working directory (an installed wheel
has no configs/ beside the user), and a user's own file still wins."""

import os
import subprocess
import sys

import pytest

from msgm_jax.config import files
from msgm_jax.config.validate import ConfigError
from tests.helpers import ROOT


def test_a_shipped_config_resolves_from_anywhere(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  path = files.resolve("configs/msgm/digits_ddpm.py")
  assert path == os.path.join(files.SHIPPED, "msgm", "digits_ddpm.py") and os.path.isfile(path)
  assert files.load_config_file("configs/toy2d_single.py").data.dataset


def test_a_users_own_file_wins(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  os.makedirs("configs")
  with open("configs/toy2d_single.py", "w") as f:
    f.write("import ml_collections\n"
            "def get_config():\n  return ml_collections.ConfigDict({'mine': 1})\n")
  assert files.resolve("configs/toy2d_single.py") == "configs/toy2d_single.py"
  assert files.load_config_file("configs/toy2d_single.py").mine == 1


def test_a_missing_config_names_the_fix(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(ConfigError, match="does not exist; pass one of configs/"):
    files.load_config_file("configs/nope.py")


def test_the_entrypoint_runs_a_shipped_config_outside_the_clone(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, "-m", "msgm_jax.main", "--config=configs/digits_ddpm.py",
                        "--mode=summary"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip().splitlines()[-1].startswith("params: ")


def test_the_clones_configs_folder_is_the_shipped_one():
  assert os.path.samefile(os.path.join(ROOT, "configs"), files.SHIPPED)
