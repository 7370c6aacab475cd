"""Config sections -> typed objects. The one place (with main.py's dispatch) that reads config.

Every function takes the sections it needs and returns explicit objects (SDEs, frozen
dataclasses, modules), so library code below never sees a ConfigDict.
"""

import dataclasses
import functools
from typing import Any, Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from msgm_jax import data
from msgm_jax.method import training_free as adjust
from msgm_jax.diffusion import fast_sampling
from msgm_jax.diffusion import sampling
from msgm_jax.diffusion import sde as sde_lib
from msgm_jax.diffusion.losses import LossConfig
from msgm_jax.method.moderation import NEEDS_REFS, MSGMConfig
from msgm_jax.method.optim import OptimConfig
from msgm_jax.method.step import StepConfig

Array = jax.Array
REGIMES = ("standard", "unseen", "msgm")
SAMPLER_METHODS = ("pc", "ode") + tuple(fast_sampling.FAST_SAMPLERS)
# Fields of the sampling section that only some methods read (None: every fast sampler).
METHOD_FIELDS = {"sampling.num_steps": None, "sampling.ddim_eta": ("ddim",)}


def sde_from_config(training_cfg, model_cfg):
  """training.sde with score_sde's model.{sigma_min, sigma_max, beta_min, beta_max, num_scales}."""
  name = training_cfg.sde.lower()
  if name == "vesde":
    return sde_lib.VESDE(sigma_min=model_cfg.sigma_min, sigma_max=model_cfg.sigma_max,
                         N=model_cfg.num_scales)
  return sde_lib.get_sde(name, beta_min=model_cfg.beta_min, beta_max=model_cfg.beta_max,
                         N=model_cfg.num_scales)


def loss_config(training_cfg) -> LossConfig:
  return LossConfig(continuous=training_cfg.continuous, reduce_mean=training_cfg.reduce_mean,
                    likelihood_weighting=training_cfg.likelihood_weighting)


def check_regime(regime: str) -> str:
  if regime not in REGIMES:
    raise ValueError(f"training.regime={regime!r} is not one of {', '.join(REGIMES)}")
  return regime


def step_config(config) -> StepConfig:
  """The train step's settings; the moderation only in the 'msgm' regime."""
  regime = check_regime(config.training.regime)
  msgm = MSGMConfig.from_config(config.msgm) if regime == "msgm" else None
  return StepConfig(loss=loss_config(config.training), optim=OptimConfig.from_config(config.optim),
                    ema_rate=config.model.ema_rate, msgm=msgm)


def score_fn_builder(model, sde, continuous: bool, train: bool, flow: bool = False):
  """(variables, dropout_keys) -> score_fn(x, t) for `model` (see models.utils.make_score_fn;
  flow: the parametrisation of the probability-flow ODE, for ODE sampling and likelihoods).

  dropout_keys: None (train=False), or [B] keys, one per example of the batch the score is
  called on. A model with dropout then runs per example (under vmap, or batched for models
  that set `example_dropout`, models/dropout.py); one without runs batched (the keys are not
  used, and the compiled step is the plain batched one).
  """
  from msgm_jax.models.utils import make_score_fn  # pylint: disable=import-outside-toplevel
  per_example = train and getattr(model, "dropout", 0.0) > 0
  batched = getattr(model, "example_dropout", False)  # per-example masks without vmap

  def build(variables, keys):
    rng = keys if per_example or keys is None else keys[0]
    return make_score_fn(model.apply, variables, sde, continuous=continuous, train=train, rng=rng,
                         flow=flow, example_dropout=batched)

  return build


def unused_sampling_fields(sampling_cfg) -> Tuple[str, ...]:
  """The METHOD_FIELDS that sampling.method does not read: left out of the names of outputs
  (msgm_jax/evaluation/sample_mode.py), so that they change only with settings that change the samples."""
  method = sampling_cfg.method.lower()
  fast = method in fast_sampling.FAST_SAMPLERS
  return tuple(f for f, users in METHOD_FIELDS.items()
               if not (fast if users is None else method in users))


@dataclasses.dataclass(frozen=True)
class SamplerSpec:
  """How to draw samples: 'pc' (predictor-corrector), 'ode' (probability flow, RK45) or a
  fixed-grid solver of the probability flow ('ddim', 'dpm_solver', 'heun';
  msgm_jax/diffusion/fast_sampling.py) with num_steps steps (eta: DDIM's fresh noise)."""

  method: str = "pc"
  predictor: str = "reverse_diffusion"
  corrector: str = "langevin"
  snr: float = 0.16
  n_steps: int = 1
  probability_flow: bool = False
  denoise: bool = True
  eps: float = 1e-3
  ode_tol: float = 1e-5
  num_steps: int = 50
  eta: float = 0.0

  @property
  def flow(self) -> bool:
    """Whether the sampler solves the probability-flow ODE (its score parametrisation)."""
    return self.method != "pc"

  @classmethod
  def from_config(cls, sampling_cfg) -> "SamplerSpec":
    spec = cls(method=sampling_cfg.method.lower(), predictor=sampling_cfg.predictor.lower(),
               corrector=sampling_cfg.corrector.lower(), snr=sampling_cfg.snr,
               n_steps=sampling_cfg.n_steps_each,
               probability_flow=sampling_cfg.probability_flow,
               denoise=sampling_cfg.noise_removal, eps=sampling_cfg.eps,
               ode_tol=sampling_cfg.ode_tol, num_steps=sampling_cfg.get("num_steps", 50),
               eta=sampling_cfg.get("ddim_eta", 0.0))
    if spec.method not in SAMPLER_METHODS:
      raise ValueError(f"sampling.method={spec.method!r} is not one of "
                       f"{', '.join(SAMPLER_METHODS)}")
    sampling.PREDICTORS.get(spec.predictor)  # fail early with the valid names
    sampling.CORRECTORS.get(spec.corrector)
    return spec

  def sample(self, key: Array, sde, score_fn, shape) -> Tuple[Array, Any]:
    """Draws samples of `shape` with this sampler -> (x, nfe)."""
    if self.method == "ode":
      return sampling.ode_sample(key, sde, score_fn, shape, rtol=self.ode_tol, atol=self.ode_tol,
                                 eps=self.eps, denoise=self.denoise)
    if self.method in fast_sampling.FAST_SAMPLERS:
      extra = {"eta": self.eta} if self.method == "ddim" else {}
      return fast_sampling.FAST_SAMPLERS.get(self.method).fn(
          key, sde, score_fn, shape, num_steps=self.num_steps, eps=self.eps,
          denoise=self.denoise, **extra)
    return sampling.pc_sample(key, sde, score_fn, shape, predictor=self.predictor,
                              corrector=self.corrector, snr=self.snr, n_steps=self.n_steps,
                              probability_flow=self.probability_flow, eps=self.eps,
                              denoise=self.denoise)


def model_sampler(spec: SamplerSpec, model, sde, continuous: bool, shape,
                  adjust: Optional[Callable] = None, with_nfe: bool = False) -> Callable:
  """f(key, variables) -> samples [shape] from the model's score (optionally transformed by
  `adjust(score_fn) -> score_fn`, a training-free score adjustment); with_nfe: f returns
  (samples, nfe as int32)."""
  build = score_fn_builder(model, sde, continuous, train=False, flow=spec.flow)

  def sample(key, variables):
    score_fn = build(variables, None)
    if adjust is not None:
      score_fn = adjust(score_fn)
    x, nfe = spec.sample(key, sde, score_fn, shape)
    return (x, jnp.asarray(nfe, jnp.int32)) if with_nfe else x

  return sample


def score_adjustment(adjust_cfg, sde, refs) -> Optional[Callable]:
  """The adjust section's training-free moderation as a score transformer (score_fn ->
  score_fn), steering away from refs [M, ...] (NSFG examples in model space); None when
  adjust.method is ''."""
  if not adjust_cfg.method:
    return None
  ref = adjust.NSFGReference.build(refs, bandwidth=adjust_cfg.bandwidth or None,
                                   max_noise=adjust_cfg.max_noise)
  return functools.partial(adjust.adjust, adjust_cfg.method, sde=sde, ref=ref,
                           strength=adjust_cfg.strength)


def nsfg_references(spec: data.DataSpec, n: int, subset: str = "nsfg") -> np.ndarray:
  """The first n NSFG (subset='sfg': SFG) examples of the training split in model space
  ([n, ...] float32; all of them when n < 0 or n exceeds their count; toy2d: points of the
  components). No dequantisation: they are the data themselves."""
  source = data.make_eval_source(spec, "train", subset)
  count = len(source) if n < 0 else min(n, len(source))
  images = np.stack([np.asarray(source[i]["image"]) for i in range(count)])
  return data.model_inputs(dataclasses.replace(spec, uniform_dequantization=False), images)


def sfg_reference_bank(step_cfg: StepConfig, spec: data.DataSpec) -> Optional[np.ndarray]:
  """The redirect moderation's fixed bank of SFG references (msgm.num_refs != 0), or None."""
  msgm = step_cfg.msgm
  if msgm is None or msgm.variant not in NEEDS_REFS or not msgm.num_refs:
    return None
  return nsfg_references(spec, msgm.num_refs, subset="sfg")


def adjustment(config, spec: data.DataSpec, sde) -> Optional[Callable]:
  """config.adjust with references from the data (nsfg_references), or None."""
  if not config.adjust.method:
    return None
  return score_adjustment(config.adjust, sde, nsfg_references(spec, config.adjust.num_refs))


def init_variables(model, data_shape, key: Array):
  """Initialises the model on a dummy batch of 1 (the labels' value does not matter)."""
  x = jnp.zeros((1,) + tuple(data_shape), jnp.float32)
  return jax.jit(functools.partial(model.init, train=False))({"params": key, "dropout": key}, x,
                                                             jnp.ones((1,), jnp.float32))
