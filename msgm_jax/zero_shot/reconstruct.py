"""Reconstruct mode: a trained run encodes SFG and NSFG test images with the probability-flow
ODE, perturbs the latents and decodes them (zero-shot).

  python -m msgm_jax.main --config=<file> --workdir=<run dir> --mode=reconstruct \
      [--config.reconstruct.perturb_t=0.02]

sampling.ode_reconstruct on the EMA weights of checkpoint eval.begin_ckpt (0: the newest):
RK45 with rtol = atol = sampling.ode_tol from sampling.eps to T; the latent is perturbed as the
forward marginal at time reconstruct.perturb_t (m z + std noise, as the authors' release; 0:
not perturbed, a plain round trip), then decoded. For the first reconstruct.num_images (0:
all) test images of each of the SFG and NSFG subsets the record holds the per-image
reconstruction error and, with eval.classifier_weights, whether the classifier still sees the
input's class (class_agreement) and the NSFG rate of the reconstructions. A moderated model
reconstructs SFG inputs but not NSFG ones. Outputs: msgm_jax/zero_shot/common.py; the pictures show
the inputs and their reconstructions.
"""

from typing import Any, Dict, Optional

import jax.numpy as jnp

from msgm_jax.config import builders
from msgm_jax.diffusion import sampling
from msgm_jax.zero_shot import common as zero_shot


def _make_fn(restored, config):
  r = restored.run
  spec = builders.SamplerSpec.from_config(config.sampling)
  build = restored.score_builder(flow=True, adjust=builders.adjustment(config, r.spec, r.sde))
  perturb_t = float(config.reconstruct.perturb_t)

  def fn(variables, batch, key):
    x, _, nfe = sampling.ode_reconstruct(key, r.sde, build(variables), batch["x"],
                                         perturb_t=perturb_t, rtol=spec.ode_tol,
                                         atol=spec.ode_tol, eps=spec.eps)
    return {"x": x, "nfe": jnp.full((x.shape[0],), nfe, jnp.float32)}

  return fn


MODE = zero_shot.Mode("reconstruct", _make_fn,
                      lambda inputs, outputs: (("input", inputs), ("reconstruction", outputs)),
                      describe=lambda config: {"perturb_t": config.reconstruct.perturb_t})


def reconstruct(config, workdir: str, *, allow_config_change: bool = False,
                overwrite: bool = False, cache: Optional[dict] = None) -> Dict[str, Any]:
  """Reconstruct mode (see the module docstring); returns the record."""
  return zero_shot.run(MODE, config, workdir, allow_config_change=allow_config_change,
                       overwrite=overwrite, cache=cache)
