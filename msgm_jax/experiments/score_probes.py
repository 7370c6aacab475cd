"""Per-noise-level probes of a learned score on SFG and NSFG test images: where the
moderation fights the denoising term.

For each noise std on a grid and each subset (the first n SFG / NSFG test images), with x~ =
m(t) x0 + std z and s = s_theta(x~, t):
- `alignment`: mean <eps_hat, z> / |z|^2 with eps_hat = -std s, the model's noise estimate:
  1 for a perfect denoiser (s = -z / std), 0 when s is orthogonal to the direction back to x0,
  negative when it points away (what the repelling Obtuse term asks for on NSFG data);
- `hinge_active`: the share of examples where the project's hinged Obtuse term is still
  active, -std <s, z> / D + margin > 0 (margin 1 by default, as msgm.margin);
- `denoise_mse`: mean squared error of Tweedie's estimate E[x0 | x~] against x0 (model space);
- with a class reader (msgm_jax/experiments/commitment.py's readers), `reads_as_input`: the share whose
  Tweedie estimate is read as the input's own class (the colour digits: its combination):
  how much of the NSFG identity the denoiser restores at that noise level.

  python -m msgm_jax.experiments.score_probes --workdir=<run> [--detector=<digits classifier workdir>] \\
      [--num_examples=256 --out=probes.json]

In a notebook: `probe(trained, read_classes=None, ...)`.
"""

import dataclasses
from typing import Callable, Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from msgm_jax import data
from msgm_jax.experiments import commitment
from msgm_jax.experiments.commitment import tweedie
from msgm_jax.diffusion.sde import batch_mul

FLAGS = flags.FLAGS
STDS = (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9, 0.97)


def time_of_std(sde, std: float, eps: float = 1e-5) -> float:
  """The time at which the SDE's marginal std equals std (bisection; std grows with t)."""
  lo, hi = eps, sde.T
  for _ in range(60):
    mid = 0.5 * (lo + hi)
    s = float(sde.marginal_prob(jnp.zeros((1, 1)), jnp.asarray([mid], jnp.float32))[1][0])
    lo, hi = (mid, hi) if s < std else (lo, mid)
  return 0.5 * (lo + hi)


def probe_terms(sde, score_fn, x0: jax.Array, labels_key: jax.Array, t: float,
                margin: float = 1.0) -> Dict[str, jax.Array]:
  """The probes at one time t for images x0 [B, ...] (pure; jittable with t static or
  traced): per-example 'alignment', 'hinge_active' (bool), 'denoise_mse', and 'estimate'
  (Tweedie's E[x0 | x~], [B, ...])."""
  b = x0.shape[0]
  tt = jnp.full((b,), t, jnp.float32)
  z = jax.random.normal(labels_key, x0.shape, x0.dtype)
  mean, std = sde.marginal_prob(x0, tt)
  x_t = mean + batch_mul(std, z)
  s = score_fn(x_t, tt)
  flat = lambda v: v.reshape(b, -1)  # pylint: disable=unnecessary-lambda-assignment
  eps_hat = -batch_mul(std, s)
  align = jnp.sum(flat(eps_hat) * flat(z), -1) / jnp.sum(flat(z) ** 2, -1)
  repel = -jnp.mean(flat(batch_mul(std, s)) * flat(z), -1)  # -std <s, z> / D
  est = tweedie(sde, score_fn, x_t, tt)
  return {"alignment": align, "hinge_active": repel + margin > 0,
          "denoise_mse": jnp.mean(flat(est - x0) ** 2, -1), "estimate": est}


def test_images(spec: data.DataSpec, subset: str, n: int):
  """The first n test images of a subset in model space [n, ...], their labels, and the
  [0, 1] images."""
  source = data.make_eval_source(spec, "test", subset)
  n = min(n, len(source))
  raw = np.stack([np.asarray(source[i]["image"]) for i in range(n)])
  labels = np.asarray([int(source[i]["label"]) for i in range(n)])
  exact = dataclasses.replace(spec, uniform_dequantization=False)
  return data.model_inputs(exact, raw), labels, raw / 255.0


def probe(trained, read_classes: Optional[Callable[[np.ndarray], np.ndarray]] = None,
          num_examples: int = 256, stds: Sequence[float] = STDS, margin: float = 1.0,
          seed: int = 0) -> Dict[str, Dict[str, list]]:
  """{subset: {'std', 't', 'alignment', 'hinge_active', 'denoise_mse'[, 'reads_as_input']}}
  per noise level, averaged over the first num_examples test images of each subset."""
  sde, score_fn = trained.sde, trained.score_fn()
  run = jax.jit(lambda x0, key, t: probe_terms(sde, score_fn, x0, key, t, margin))
  out = {}
  for subset in ("sfg", "nsfg"):
    x0, _, images = test_images(trained.spec, subset, num_examples)
    truth = None if read_classes is None else read_classes(images)
    rows = {"std": list(stds), "t": [], "alignment": [], "hinge_active": [], "denoise_mse": []}
    if truth is not None:
      rows["reads_as_input"] = []
    for i, std in enumerate(stds):
      t = time_of_std(sde, std)
      terms = run(jnp.asarray(x0), jax.random.fold_in(jax.random.key(seed), i), t)
      rows["t"].append(t)
      for k in ("alignment", "hinge_active", "denoise_mse"):
        rows[k].append(float(jnp.mean(terms[k].astype(jnp.float32))))
      if truth is not None:
        est = np.clip(trained.to_data(np.asarray(terms["estimate"])), 0.0, 1.0)
        rows["reads_as_input"].append(float(np.mean(read_classes(est) == truth)))
    out[subset] = rows
  return out


def _define_flags():
  flags.DEFINE_string("workdir", None, "A trained run's workdir.")
  flags.DEFINE_string("detector", "", "Colour digits: the digits classifier's workdir.")
  flags.DEFINE_string("classifier", "", "Otherwise (optional): the dataset classifier.")
  flags.DEFINE_integer("num_examples", 256, "Test images per subset.")
  flags.DEFINE_float("margin", 1.0, "The hinge margin whose active share is reported.")
  flags.DEFINE_string("out", "", "Also write the JSON here.")
  flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  from msgm_jax import trained as trained_lib  # pylint: disable=import-outside-toplevel
  run = trained_lib.load(FLAGS.workdir)
  read = commitment.reader(run.spec, FLAGS.detector, FLAGS.classifier)
  result = {"workdir": FLAGS.workdir, "step": int(run.step),
            **probe(run, read, FLAGS.num_examples, margin=FLAGS.margin)}
  print(commitment.write_result(result, FLAGS.out))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
