"""Start-up validation: every field has a rule, bad values give one line naming field, value
and fix, and the workdir and data checks fail fast (tests run with 8 CPU devices)."""

import glob
import os
import time

import pytest

from msgm_jax import data  # modes registers the experiments' sections
from msgm_jax.cli import modes
from msgm_jax.config import validate
from msgm_jax.registry import Registry
from tests.helpers import ROOT, load_config, tiny_toy_config

CONFIGS = sorted(os.path.relpath(p, ROOT) for p in glob.glob(
    os.path.join(ROOT, "configs", "**", "*.py"), recursive=True))
assert modes


def _fields(config, prefix=""):
  for key, value in config.items():
    if hasattr(value, "items"):
      yield from _fields(value, f"{prefix}{key}.")
    else:
      yield prefix + key


@pytest.mark.parametrize("path", CONFIGS)
def test_every_field_of_every_config_has_a_rule_and_passes(path):
  config = load_config(path)
  for field in _fields(config):
    section, _, name = field.rpartition(".")
    assert section in validate.SECTIONS and name in validate.SECTIONS.get(section), field
  validate.check_config(config)


BAD = [
    ("training.batch_size", 0, "must be an integer >= 1"),
    ("training.batch_size", -8, "must be an integer >= 1"),
    ("training.snapshot_freq", 0, "must be an integer >= 1"),
    ("training.log_freq", 0, "must be an integer >= 1"),
    ("training.eval_freq", -5, "must be an integer >= 0 (0: never)"),
    ("sampling.batch_size", 0, "must be an integer >= 1"),
    ("eval.batch_size", 0, "must be an integer >= 1"),
    ("optim.lr", -1.0, "must be a number > 0.0"),
    ("optim.lr", float("nan"), "must be a number > 0.0"),
    ("msgm.alpha", 1.5, "must be a number >= 0.0 and <= 1.0"),
    ("model.dropout", 1.0, "must be a number >= 0.0 and < 1.0"),
    ("training.sde", "vp", "must be one of subvpsde, vesde, vpsde"),
    ("sampling.predictor", "heun", "must be one of ancestral_sampling, euler_maruyama"),
    ("sampling.method", "dpm", "must be one of pc, ode, ddim, dpm_solver, heun"),
    ("sampling.num_steps", 0, "must be an integer >= 1"),
    ("sampling.ddim_eta", 1.5, "must be a number >= 0.0 and <= 1.0"),
    ("data.dataset", "imagenet", "must be one of celeba, cifar10"),
    ("experiment.rows", "standard,oops", "unknown row 'oops'"),
    ("adjust.method", "away", "must be '' (none) or one of obtuse, orthogonal"),
    ("adjust.num_refs", 1, "must be an integer >= 2"),
    ("eval.nsfg_rate", "yes", "must be one of auto, on, off"),
]


@pytest.mark.parametrize("path,value,want", BAD)
def test_a_bad_value_names_field_value_and_fix(path, value, want):
  config = load_config("configs/toy2d.py")
  section, name = path.split(".")
  config[section][name] = value
  with pytest.raises(validate.ConfigError) as e:
    validate.check_config(config)
  message = str(e.value)
  assert f"config field {path}={value!r} is invalid: it must be" in message and want in message
  assert f"--config.{path}=" in message and "\n" not in message


@pytest.mark.parametrize("path", ["training.batch_size", "eval.batch_size",
                                  "msgm.nsfg_batch_size"])
def test_batches_must_split_over_the_devices(path):
  config = tiny_toy_config(regime="msgm")
  section, name = path.split(".")
  config[section][name] = 12
  with pytest.raises(validate.ConfigError,
                     match=rf"{path}=12 is not a multiple of 8 \(it is split over 8 devices"):
    validate.check_config(config)
  config.training.num_devices = 4  # 12 = 3 per device on 4 devices
  validate.check_config(config)


def test_cross_field_rules():
  config = tiny_toy_config(log_freq=7)
  with pytest.raises(validate.ConfigError, match="log_freq=7 is not a multiple of 5"):
    validate.check_config(config)
  config = tiny_toy_config()
  config.model.sigma_max = 0.001
  with pytest.raises(validate.ConfigError, match="sigma_max must be larger"):
    validate.check_config(config)
  config = tiny_toy_config(num_devices=9)
  with pytest.raises(validate.ConfigError, match="num_devices=9 is more than the 8 local"):
    validate.check_config(config)


def test_a_fast_sampler_must_take_the_sde():
  config = tiny_toy_config()
  assert config.training.sde == "vesde"
  config.sampling.method = "heun"
  validate.check_config(config)
  for method in ("ddim", "dpm_solver"):
    config.sampling.method = method
    with pytest.raises(validate.ConfigError, match=rf"^sampling.method='{method}' takes the "
                       r"SDEs vpsde, subvpsde, not vesde; use --config.sampling.method=heun or "
                       r"pc or ode$"):
      validate.check_config(config)
  config.training.sde = "subvpsde"
  validate.check_config(config)


def test_a_section_added_later_is_checked(monkeypatch):
  sections = Registry("config section")
  for name in validate.SECTIONS:
    sections.add(name, validate.SECTIONS.get(name))
  sections.add("extra", {"lr": validate.number(lo=0.0, lo_open=True)})
  monkeypatch.setattr(validate, "SECTIONS", sections)
  config = tiny_toy_config()
  with config.unlocked():
    config.extra = {"lr": 0.0}
  with pytest.raises(validate.ConfigError, match=r"extra.lr=0.0 is invalid"):
    validate.check_config(config)


def _unwritable_dir(tmp_path):
  """A directory this user cannot write to (root ignores permissions, so /sys for root)."""
  if os.geteuid() != 0:
    path = tmp_path / "ro"
    path.mkdir()
    path.chmod(0o555)
    return str(path)
  if os.path.isdir("/sys/kernel") and validate.unwritable_reason("/sys/kernel"):
    return "/sys/kernel"
  pytest.skip("no directory here is read-only for root")


def test_workdir_checks(tmp_path):
  a_file = tmp_path / "file"
  a_file.write_text("x")
  with pytest.raises(validate.ConfigError, match="is a file, not a directory"):
    validate.check_workdir(str(a_file), "create")
  with pytest.raises(validate.ConfigError, match="does not exist; pass the --workdir of a"):
    validate.check_workdir(str(tmp_path / "nope"), "existing")
  with pytest.raises(validate.ConfigError, match="needs --workdir"):
    validate.check_workdir("", "create")
  validate.check_workdir(str(tmp_path / "new" / "run"), "create")
  assert os.path.isdir(tmp_path / "new" / "run")
  read_only = _unwritable_dir(tmp_path)
  with pytest.raises(validate.ConfigError, match="is not writable"):
    validate.check_workdir(read_only, "existing")
  with pytest.raises(validate.ConfigError, match="cannot be created|is not writable"):
    validate.check_workdir(os.path.join(read_only, "run"), "create")


def test_an_unprepared_dataset_fails_at_start_up(tmp_path):
  config = load_config("configs/msgm/cifar10_vp_ddpmpp_continuous.py")
  config.data.data_dir = str(tmp_path)
  start = time.time()
  with pytest.raises(data.DatasetNotPrepared, match="msgm_jax.data.prepare"):
    validate.startup(config, str(tmp_path / "run"), "train")
  assert time.time() - start < 30
  validate.startup(config, str(tmp_path / "run"), "sample")  # sampling reads no data
