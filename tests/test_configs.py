"""Every config file loads and translates into typed objects (no data, no tracing)."""

import glob
import os

import jax
import pytest

from msgm_jax import data
from msgm_jax.config import builders
from msgm_jax.evaluation.classifier import ClassifierInfo, ClassifierSettings, step
from msgm_jax.models import model_from_config
from tests.helpers import ROOT, load_config

ALL = sorted(os.path.relpath(p, ROOT)
             for p in glob.glob(os.path.join(ROOT, "configs", "**", "*.py"), recursive=True))
CLASSIFIER_CONFIGS = [p for p in ALL if p.startswith("configs/classifier/")]
CONFIGS = [p for p in ALL if p not in CLASSIFIER_CONFIGS]


def test_configs_were_found():
  assert len(CONFIGS) >= 15 and "configs/toy2d.py" in CONFIGS
  assert len(CLASSIFIER_CONFIGS) == 6


@pytest.mark.parametrize("path", CONFIGS)
def test_config_translates(path):
  config = load_config(path)
  spec = data.DataSpec.from_config(config.data)
  model_from_config(config.model, data_shape=data.data_shape(spec), centered=spec.centered)
  builders.sde_from_config(config.training, config.model)
  step_cfg = builders.step_config(config)
  assert (step_cfg.msgm is not None) == (config.training.regime == "msgm")
  builders.SamplerSpec.from_config(config.sampling)
  assert config.training.n_iters > 0 and config.optim.lr > 0


def test_msgm_configs_use_the_papers_splits():
  assert load_config("configs/msgm/cifar10_ve_ncsnpp_continuous.py").data.nsfg_classes == (1, 5)
  celeba = load_config("configs/msgm/celeba64_ve_ncsnpp.py")
  assert celeba.data.nsfg_attribute == "Bangs" and celeba.model.sigma_max == 90.0
  assert load_config("configs/msgm/stl10_ve_ncsnpp.py").data.nsfg_classes == (0,)
  discrete = load_config("configs/msgm/cifar10_ddpm_discrete.py")
  assert not discrete.training.continuous and discrete.training.regime == "msgm"


def _parse(path, *overrides):
  """The config as main.py's locked config flag yields it after command-line overrides."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  from ml_collections import config_flags  # pylint: disable=import-outside-toplevel
  argv = ["main", f"--config={os.path.join(ROOT, path)}", *overrides]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True,
                                  sys_argv=argv)  # it reads the overrides from argv
  values(argv)
  return values.config


RELEASE_FORMS = dict(form="elementwise", sign="release", hinge=False, margin=0.0)


@pytest.mark.parametrize("path,variant,alpha,period", [
    ("configs/msgm/digits_ddpm.py", "obtuse", 0.01, 4),
    ("configs/toy2d_single.py", "obtuse", 0.5, 1)])
def test_release_preset_from_the_command_line(path, variant, alpha, period):
  """--config.msgm.preset=release gives the release's loss forms on any config, whatever the
  config's own forms; variant, alpha and period stay the config's."""
  from msgm_jax.method.moderation import MSGMConfig  # pylint: disable=import-outside-toplevel
  default = builders.step_config(_parse(path, "--config.training.regime=msgm")).msgm
  assert (default.sign, default.hinge, default.margin) == ("repel", True, 1.0)  # the project's
  release = _parse(path, "--config.training.regime=msgm", "--config.msgm.preset=release",
                   "--config.msgm.form=inner")
  assert builders.step_config(release).msgm == MSGMConfig(
      variant=variant, alpha=alpha, period=period, **RELEASE_FORMS)
  with pytest.raises(ValueError, match="msgm.preset='paper' is not one of release"):
    builders.step_config(_parse(path, "--config.training.regime=msgm",
                                "--config.msgm.preset=paper"))


def test_redirect_preset_from_the_command_line():
  """--config.msgm.preset=redirect sets the image setting's variant, alpha, period, window and
  references on any config, over the config's own values."""
  from msgm_jax.method.moderation import MSGMConfig  # pylint: disable=import-outside-toplevel
  cfg = _parse("configs/msgm/digits_ddpm.py", "--config.training.regime=msgm",
               "--config.msgm.preset=redirect", "--config.msgm.alpha=0.7")
  assert builders.step_config(cfg).msgm == MSGMConfig(
      variant="redirect", form="elementwise", sign="repel", hinge=True, margin=1.0, alpha=0.2,
      period=1, std_min=0.3, std_max=0.0, num_refs=-1)


def test_the_colour_digits_msgm_config_is_the_redirect_preset():
  """configs/msgm/colour_digits_ddpm.py spells out moderation.PRESETS['redirect'] (the setting
  docs/compositional_report.md's phase 3 measured), so the two cannot drift apart."""
  from msgm_jax.method.moderation import PRESETS  # pylint: disable=import-outside-toplevel
  spelled = builders.step_config(load_config("configs/msgm/colour_digits_ddpm.py")).msgm
  preset = builders.step_config(_parse("configs/msgm/colour_digits_ddpm.py",
                                       "--config.msgm.preset=redirect")).msgm
  assert spelled == preset
  assert {k: getattr(spelled, k) for k in PRESETS["redirect"]} == PRESETS["redirect"]


def test_the_releases_own_cifar10_setup():
  """DDPM U-Net, continuous VP SDE, probability-flow ODE sampling, release loss forms, alpha
  0.01 every 4th step, NSFG automobile and dog, 400 + 400 per step."""
  from msgm_jax.method.moderation import MSGMConfig  # pylint: disable=import-outside-toplevel
  config = load_config("configs/msgm/cifar10_ddpm_continuous.py")
  assert config.model.name == "ddpm" and config.training.sde == "vpsde"
  assert config.training.continuous and config.sampling.method == "ode"
  assert config.data.nsfg_classes == (1, 5) and config.training.batch_size == 400
  assert config.msgm.nsfg_batch_size == 400
  assert builders.step_config(config).msgm == MSGMConfig(variant="orthogonal", alpha=0.01,
                                                         period=4, **RELEASE_FORMS)
  obtuse = builders.step_config(_parse("configs/msgm/cifar10_ddpm_continuous.py",
                                       "--config.msgm.variant=obtuse")).msgm
  assert obtuse == MSGMConfig(variant="obtuse", alpha=0.01, period=4, **RELEASE_FORMS)


# Parameters of each dataset's classifier: WRN-28-10's is the published count (36.5M, exactly
# 36,479,194 in the reference PyTorch ports; GroupNorm has BatchNorm's 2 per channel), digits'
# is derived by hand in test_classifier_networks.py, colour digits' from it (3 input channels:
# + 2 * 9 * 32 first-conv weights; 70 classes: + 60 * (128 + 1) in the last Dense); the others
# guard against silent changes.
CLASSIFIER_PARAMS = {"digits": 99_178, "mnist": 467_818, "cifar10": 36_479_194,
                     "stl10": 10_961_370, "celeba": 2_746_834,
                     "colourdigits": 99_178 + 2 * 9 * 32 + 60 * 129}


@pytest.mark.parametrize("path", CLASSIFIER_CONFIGS)
def test_classifier_config_translates(path):
  config = load_config(path)
  assert set(config.keys()) == {"seed", "data", "classifier"}
  spec = data.DataSpec.from_config(config.data)
  info = ClassifierInfo.for_data(spec, ClassifierSettings.from_config(config.classifier))
  model = info.model()
  state = jax.eval_shape(lambda: step.init_state(model, info.settings, info.image_shape,
                                                 jax.random.key(0)))
  assert sum(x.size for x in jax.tree.leaves(state.params)) == CLASSIFIER_PARAMS[spec.dataset]
  # The same images as the dataset's generative configs, in [0, 1].
  assert not spec.centered and spec.random_flip == (spec.dataset in ("cifar10", "stl10", "celeba"))
  assert info.num_classes == {"celeba": 2, "colourdigits": 70}.get(spec.dataset, 10)
