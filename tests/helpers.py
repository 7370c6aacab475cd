"""Shared test helpers: config loading and small configs that compile fast."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(relpath: str):
  """Loads configs/<relpath> the way config_flags does (a file path, not an import)."""
  path = os.path.join(ROOT, relpath)
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def tiny_toy_config(**training):
  """The toy2d config shrunk to a 32-unit MLP, small batches and a few steps."""
  config = load_config("configs/toy2d_single.py")
  config.model.hidden = 32
  config.model.n_layers = 2
  config.training.batch_size = 64
  config.training.n_iters = 20
  config.training.steps_per_call = 5
  config.training.snapshot_freq = 20
  config.training.snapshot_freq_for_preemption = 10
  config.training.log_freq = 5
  config.training.snapshot_sampling = False
  config.model.num_scales = 50
  config.sampling.batch_size = 64
  for k, v in training.items():
    config.training[k] = v
  return config
