"""Inpaint mode: a trained run completes masked SFG and NSFG test images (zero-shot).

  python -m msgm_jax.main --config=<file> --workdir=<run dir> --mode=inpaint \
      [--config.inpaint.mask=right_half|top_half|center_band|<file.npy|file.png>]

score_sde's PC inpainter (sampling.pc_inpaint: the known pixels replaced at every step by a
draw of their forward marginal) with the predictor, corrector, snr, steps and eps of the
sampling section (sampling.method is not used), on the EMA weights of checkpoint
eval.begin_ckpt (0: the newest), for the first inpaint.num_images (0: all) test images of each
of the SFG and NSFG subsets. A moderated model completes SFG inputs but not NSFG ones: with
eval.classifier_weights the record holds the NSFG rate of the completions of NSFG inputs vs
that of SFG inputs (Wilson 95% intervals). Outputs and their names: msgm_jax/zero_shot/common.py;
the pictures show, per subset, the inputs, the masked inputs (grey: to complete) and the
completions.
"""

from typing import Any, Dict, Optional

import numpy as np

from msgm_jax import data
from msgm_jax.config import builders
from msgm_jax.data import masks
from msgm_jax.diffusion import sampling
from msgm_jax.zero_shot import common as zero_shot

GREY = 128  # the completed pixels in the pictures' masked inputs


def _make_fn(mask: np.ndarray):
  def make(restored, config):
    r = restored.run
    spec = builders.SamplerSpec.from_config(config.sampling)
    build = restored.score_builder(adjust=builders.adjustment(config, r.spec, r.sde))

    def fn(variables, batch, key):
      x, _ = sampling.pc_inpaint(key, r.sde, build(variables), batch["x"], mask,
                                 predictor=spec.predictor, corrector=spec.corrector,
                                 snr=spec.snr, n_steps=spec.n_steps,
                                 probability_flow=spec.probability_flow, eps=spec.eps,
                                 denoise=spec.denoise)
      return {"x": x}

    return fn

  return make


def mode(config) -> zero_shot.Mode:
  """The inpaint Mode of a config; ValueError (one line) for a bad inpaint.mask."""
  spec = data.DataSpec.from_config(config.data)
  if spec.is_points:
    raise ValueError(f"--mode=inpaint is for image data, not {spec.dataset} points")
  mask = masks.make_mask(config.inpaint.mask, data.data_shape(spec))
  known = mask.astype(bool)

  def grid_rows(inputs, outputs):
    return (("input", inputs), ("masked", np.where(known, inputs, np.uint8(GREY))),
            ("completion", outputs))

  return zero_shot.Mode("inpaint", _make_fn(mask), grid_rows,
                        weights=lambda config, shape: 1.0 - mask,
                        describe=lambda config: {"mask": config.inpaint.mask,
                                                 "completed_pixels": int((~known).sum())})


def inpaint(config, workdir: str, *, allow_config_change: bool = False, overwrite: bool = False,
            cache: Optional[dict] = None) -> Dict[str, Any]:
  """Inpaint mode (see the module docstring); returns the record."""
  return zero_shot.run(mode(config), config, workdir, allow_config_change=allow_config_change,
                       overwrite=overwrite, cache=cache)
