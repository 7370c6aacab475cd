"""What `python -m msgm_jax.main --mode=...` does: one function per mode, in a registry.

Each mode is fn(config, workdir, options): `options` carries the command-line switches that
are not part of the config (Options). main.py has checked the config, the workdir and the data
(msgm_jax/config/validate.py) before calling it.
"""

import dataclasses

from msgm_jax import data
from msgm_jax.config import agreement
from msgm_jax.training import checkpoint
from msgm_jax.evaluation import eval_mode as evaluate
from msgm_jax.experiments import regimes as experiment
from msgm_jax.training import import_checkpoint
from msgm_jax.zero_shot import inpaint
from msgm_jax.zero_shot import reconstruct
from msgm_jax.evaluation import sample_mode as sample
from msgm_jax.training import loop as train
from msgm_jax.config import validate
from msgm_jax.experiments import digits as digits_report  # register their experiments
from msgm_jax.experiments import toy as toy2d
from msgm_jax.evaluation.classifier import evaluate as classifier_eval
from msgm_jax.evaluation.classifier import train as classifier_train
from msgm_jax.models import model_from_config
from msgm_jax.models.summary import summarize
from msgm_jax.registry import Registry

MODES: Registry = Registry("mode")
assert digits_report and toy2d
# Errors that mean "fix your command or config": shown as one line, not a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, train.NonFiniteLoss, checkpoint.CheckpointMismatch,
               checkpoint.CheckpointUnreadable, agreement.ConfigMismatch, validate.ConfigError,
               data.DatasetNotPrepared)


@dataclasses.dataclass(frozen=True)
class Options:
  """allow_config_change: go ahead although the config differs from the run's in fields that
  define the model or the SDE (msgm_jax/config/agreement.py). overwrite: replace outputs of the same
  checkpoint and settings (sample files; eval results, which are otherwise kept and skipped)."""

  allow_config_change: bool = False
  overwrite: bool = False


def _require_workdir(workdir):
  if not workdir:
    raise ValueError("this mode needs --workdir=<dir>")
  return workdir


def _no_classifier(config, mode):
  if "classifier" in config:
    raise ValueError(f"--mode={mode} is for score models; a classifier config has train and eval")


@MODES.register("train")
def train_mode(config, workdir, options: Options = Options()):
  """Trains one run, or runs the experiment the config names (config.experiment.name), or
  trains the dataset classifier of a config with a `classifier` section."""
  if "classifier" in config:
    classifier_train.train_and_evaluate(config, _require_workdir(workdir))
  elif "experiment" in config:
    experiment.EXPERIMENTS.get(config.experiment.name)(config, _require_workdir(workdir))
  else:
    train.train_and_evaluate(config, _require_workdir(workdir),
                             allow_config_change=options.allow_config_change)


@MODES.register("eval")
def eval_mode(config, workdir, options: Options = Options()):
  """DSM loss and bits/dim of checkpoints on SFG and NSFG test data (msgm_jax/evaluation/eval_mode.py);
  for a classifier config, its test accuracy and per-class recall."""
  if "classifier" in config:
    classifier_eval.evaluate(config, _require_workdir(workdir))
    return
  evaluate.evaluate(config, _require_workdir(workdir),
                    allow_config_change=options.allow_config_change, overwrite=options.overwrite)


@MODES.register("sample")
def sample_mode(config, workdir, options: Options = Options()):
  """eval.num_samples samples of a checkpoint to <workdir>/samples (msgm_jax/evaluation/sample_mode.py)."""
  _no_classifier(config, "sample")
  sample.sample(config, _require_workdir(workdir),
                allow_config_change=options.allow_config_change, overwrite=options.overwrite)


@MODES.register("inpaint")
def inpaint_mode(config, workdir, options: Options = Options()):
  """Completes masked SFG and NSFG test images with a checkpoint (msgm_jax/zero_shot/inpaint.py)."""
  _no_classifier(config, "inpaint")
  inpaint.inpaint(config, _require_workdir(workdir),
                  allow_config_change=options.allow_config_change, overwrite=options.overwrite)


@MODES.register("reconstruct")
def reconstruct_mode(config, workdir, options: Options = Options()):
  """Encodes, perturbs and decodes SFG and NSFG test images with the probability-flow ODE
  (msgm_jax/zero_shot/reconstruct.py)."""
  _no_classifier(config, "reconstruct")
  reconstruct.reconstruct(config, _require_workdir(workdir),
                          allow_config_change=options.allow_config_change,
                          overwrite=options.overwrite)


@MODES.register("import")
def import_mode(config, workdir, options: Options = Options()):
  """Converts the score_sde_pytorch .pth file config.import_from into a checkpoint of the run in
  --workdir (the network the config describes; msgm_jax/training/import_checkpoint.py)."""
  del options
  _no_classifier(config, "import")
  print(import_checkpoint.import_file(config, _require_workdir(workdir), config.import_from),
        flush=True)


@MODES.register("summary")
def summary_mode(config, workdir, options: Options = Options()):
  """Prints the parameter table and a last line `params: <N>` (no data, no training)."""
  del workdir, options
  _no_classifier(config, "summary")
  spec = data.DataSpec.from_config(config.data)
  model = model_from_config(config.model, data_shape=data.data_shape(spec),
                            centered=spec.centered)
  table, n = summarize(model, data.data_shape(spec))
  print(table)
  print(f"params: {n}")
