"""A trained run as plain Python objects, for notebooks and scripts.

    run = trained.load(workdir)          # the run's own config; newest intact checkpoint
    score_fn = run.score_fn()            # its EMA weights as score_fn(x [B, ...], t [B])
    x, nfe = jax.jit(lambda k: sampling.pc_sample(k, run.sde, score_fn, (64, *run.shape)))(key)

`train_run(config_file, workdir, overrides)` trains (or resumes) a run through the same code as
`python -m msgm_jax.main --mode=train`, after the same start-up checks.
"""

import contextlib
import json
from typing import Any, Callable, Dict, Mapping, Optional

import jax
import ml_collections
import numpy as np

from msgm_jax import data
from msgm_jax.config import builders
from msgm_jax.config import files
from msgm_jax.diffusion import exact
from msgm_jax.training import restore
from msgm_jax.training import loop as train
from msgm_jax.config import validate

Array = jax.Array


def _config_from_json(text: str) -> ml_collections.ConfigDict:
  """The config a checkpoint stores (checkpoint.dumps_config), lists back as tuples."""

  def tuples(node):
    if isinstance(node, dict):
      return {k: tuples(v) for k, v in node.items()}
    return tuple(tuples(v) for v in node) if isinstance(node, list) else node

  return ml_collections.ConfigDict(tuples(json.loads(text)))


class Trained(restore.Restored):
  """One checkpoint of a trained run (restore.Restored: run, step, ema_params, the EMA
  variables {'params': ...}), with what a notebook asks of it.

  config: the run's ConfigDict; spec: its data; shape: one example's shape ((2,) or (H, W, C));
  sde: the SDE it was trained with (sde.N sampler steps; `dataclasses.replace(sde, N=...)`
  for others); model: the Flax module.
  """

  config = property(lambda self: self.run.config)
  spec = property(lambda self: self.run.spec)
  shape = property(lambda self: self.run.shape)
  sde = property(lambda self: self.run.sde)
  model = property(lambda self: self.run.model)

  def score_fn(self, flow: bool = False, variables: Any = None) -> Callable[[Array, Array], Array]:
    """score_fn(x [B, *shape], t [B]) -> [B, *shape] of the EMA weights (or of `variables`
    of the same model, e.g. an argument of a jitted function that serves several runs).
    flow: the parametrisation of the probability-flow ODE (ODE sampling and likelihoods)."""
    return self.score_builder(flow)(self.ema_params if variables is None else variables)

  def nsfg_references(self, n: int) -> np.ndarray:
    """The first n NSFG training examples in model space [n, *shape] (for adjust.py)."""
    return builders.nsfg_references(self.spec, n)

  def to_data(self, x) -> np.ndarray:
    """Model space -> data space (images in [0, 1]; points unchanged)."""
    return np.asarray(data.get_inverse_scaler(self.spec)(x))

  def exact_mixture(self, subset: str = "sfg") -> exact.Mixture:
    """Toy data only: the 'sfg', 'nsfg' or 'all' part of the data's Gaussian mixture, whose
    perturbed scores and densities msgm_jax/diffusion/exact.py gives in closed form (e.g.
    exact.mixture_score_fn(run.sde, run.exact_mixture('sfg')))."""
    if not self.spec.is_points:
      raise ValueError(f"exact scores exist for the toy mixture, not for {self.spec.dataset}")
    mix = self.spec.toy_mixture()
    nsfg = np.asarray(self.spec.nsfg_criterion()[0])
    every = np.arange(mix.num_components)
    chosen = {"sfg": np.setdiff1d(every, nsfg), "nsfg": nsfg, "all": every}
    if subset not in chosen:
      raise ValueError(f"subset={subset!r} is not one of {', '.join(chosen)}")
    part = mix.restrict(chosen[subset])
    return exact.make_mixture(part.means, part.stds, part.weights)


def stored_config(workdir: str) -> ml_collections.ConfigDict:
  """The config stored in the newest readable checkpoint of the run in `workdir`."""
  with contextlib.closing(restore.open_checkpoints(workdir)) as ckpt:
    newest = ckpt.newest_meta()
  if newest is None or "config" not in newest[1]:
    raise ValueError(f"the checkpoints in {workdir} hold no config; pass config= to load")
  return _config_from_json(newest[1]["config"])


def load(workdir: str, config: Optional[ml_collections.ConfigDict] = None) -> Trained:
  """The newest intact checkpoint of the run in `workdir` (restore.restore_ema; the config's
  eval.begin_ckpt picks another), interpreted with the config stored in it (or `config`)."""
  return Trained(*restore.restore_ema(config or stored_config(workdir), workdir))


def train_run(config_file: str, workdir: str,
              overrides: Optional[Mapping[str, Any]] = None) -> str:
  """Trains (or resumes) config_file's run in workdir, with overrides {'training.n_iters': 100,
  ...} applied as --config.<field>=<value> would be; returns workdir."""
  config = files.load_config_file(config_file)
  flat: Dict[str, Any] = dict(overrides or {})
  files.check_overrides(config, [f"--config.{k}" for k in flat])
  config.update_from_flattened_dict(flat)
  validate.startup(config, workdir, "train")
  train.train_and_evaluate(config, workdir)
  return workdir
