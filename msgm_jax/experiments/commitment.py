"""When does a sampler path decide what it draws? The commitment curve of a trained run.

Along pc_trajectory's paths (the run's predictor and corrector), every N / frames steps the
denoised estimate of the final image is read by a class reader: Tweedie's
E[x0 | x_t] = (x_t + std(t)^2 s(x_t, t)) / m(t), exact for the model's score. A path is
committed at frame k when the class read at k and at every later frame equals the class of
its final sample; the curve is the committed share per frame. Where it rises is where the
model decides the class (on the colour digits, the (digit, colour) combination: docs/
compositional_report.md phase 3), and so where a moderation must act.

  python -m msgm_jax.experiments.commitment --workdir=<run> --detector=<digits classifier workdir> \\
      [--num_samples=500 --frames=20 --out=commitment.json]

Without --detector the classes are the dataset classifier's argmax (--classifier=<workdir>,
any image dataset). The colour digits' reader gives the combination, or -1 for unreadable.
In a notebook: `tweedie`, `commitment_curve` and `curve(trained, read_classes, ...)`.
"""

import json
from typing import Callable, Dict, Optional

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from msgm_jax.diffusion import sampling
from msgm_jax.diffusion.sde import batch_mul

Array = jax.Array
FLAGS = flags.FLAGS


def tweedie(sde, score_fn, x: Array, t: Array) -> Array:
  """E[x0 | x_t] [B, ...] by Tweedie's formula under the SDE's Gaussian marginal, for t [B]."""
  m = sde.marginal_prob(jnp.ones((x.shape[0], 1)), t)[0][:, 0]
  std = sde.marginal_prob(x, t)[1]
  return batch_mul(1.0 / m, x + batch_mul(std**2, score_fn(x, t)))


def commitment_curve(classes: np.ndarray) -> np.ndarray:
  """classes int [F, B] (frame k's reading of path b; the last frame is the final sample) ->
  float [F]: the share of paths whose reading at k and at every later frame is the final one."""
  classes = np.asarray(classes)
  same = classes == classes[-1][None]
  # committed at k: same at every frame j >= k (a reversed cumulative AND)
  committed = np.flip(np.logical_and.accumulate(np.flip(same, 0), axis=0), 0)
  return committed.mean(axis=1)


def curve(trained, read_classes: Callable[[np.ndarray], np.ndarray], num_samples: int = 500,
          frames: int = 20, batch_size: int = 250, seed: int = 0) -> Dict[str, list]:
  """The commitment curve of a trained run (trained.load) with read_classes(images [n, H, W,
  C] in [0, 1]) -> int [n]. Returns {'t', 'std', 'committed', 'final_class_shares'}."""
  cfg = trained.config.sampling
  sde = trained.sde
  score_fn = trained.score_fn()
  kw = dict(num_frames=frames, predictor=cfg.predictor, corrector=cfg.corrector, snr=cfg.snr,
            n_steps=cfg.n_steps_each, probability_flow=cfg.probability_flow, eps=cfg.eps,
            denoise=cfg.noise_removal)
  shape = (batch_size,) + tuple(trained.shape)

  @jax.jit
  def path(key):
    xs, times, _ = sampling.pc_trajectory(key, sde, score_fn, shape, **kw)
    est = jax.vmap(lambda x, t: tweedie(sde, score_fn, x, jnp.full((batch_size,), t)))(
        xs[1:-1], times[1:-1])
    return jnp.concatenate([est, xs[-1:]]), times[1:]

  reads = []
  times = None
  for i in range(-(-num_samples // batch_size)):
    est, times = path(jax.random.fold_in(jax.random.key(seed), i))
    images = np.clip(trained.to_data(np.nan_to_num(np.asarray(est))), 0.0, 1.0)
    reads.append(np.stack([read_classes(f) for f in images]))
  classes = np.concatenate(reads, axis=1)[:, :num_samples]
  t = np.asarray(times)
  std = np.asarray(sde.marginal_prob(jnp.ones((len(t), 1)), jnp.asarray(t))[1])
  final = np.unique(classes[-1], return_counts=True)
  return {"t": t.tolist(), "std": std.tolist(), "committed": commitment_curve(classes).tolist(),
          "final_class_shares": {int(c): n / classes.shape[1] for c, n in zip(*final)}}


def colour_digits_reader(detector_dir: str, nsfg_combos) -> Callable[[np.ndarray], np.ndarray]:
  """The factored detector as a class reader: the combination, -1 for unreadable."""
  from msgm_jax.evaluation.classifier import factors  # pylint: disable=import-outside-toplevel
  detect = factors.load_detector(detector_dir)

  def read(images):
    out = detect(np.round(images * 255.0) / 255.0, nsfg_combos)
    return np.where(np.asarray(out["unreadable"]), -1, np.asarray(out["combo"]))

  return read


def classifier_reader(classifier_dir: str, spec) -> Callable[[np.ndarray], np.ndarray]:
  """A dataset classifier's argmax as a class reader."""
  from msgm_jax.evaluation.classifier import load_classifier  # pylint: disable=import-outside-toplevel
  clf = load_classifier(classifier_dir, spec)
  logits = jax.jit(clf.logits)
  return lambda images: np.asarray(jnp.argmax(logits(clf.params, jnp.asarray(
      np.round(images * 255.0) / 255.0, jnp.float32)), -1))


def reader(spec, detector: str = "", classifier: str = "") -> Optional[Callable]:
  """The class reader the flags name: the colour digits' factored detector (the digits
  classifier's workdir), a dataset classifier, or None."""
  if detector:
    return colour_digits_reader(detector, spec.nsfg_criterion()[0])
  if classifier:
    return classifier_reader(classifier, spec)
  return None


def write_result(result: dict, out: str) -> str:
  """The result as indented JSON, also written to `out` when given."""
  text = json.dumps(result, indent=1)
  if out:
    with open(out, "w", encoding="utf-8") as f:
      f.write(text + "\n")
  return text


def _define_flags():
  flags.DEFINE_string("workdir", None, "A trained run's workdir.")
  flags.DEFINE_string("detector", "", "Colour digits: the digits classifier's workdir.")
  flags.DEFINE_string("classifier", "", "Otherwise: the dataset classifier's workdir.")
  flags.DEFINE_integer("num_samples", 500, "Paths.")
  flags.DEFINE_integer("frames", 20, "Readings per path (must divide the run's sampler steps).")
  flags.DEFINE_integer("batch_size", 250, "Paths per compiled call.")
  flags.DEFINE_string("out", "", "Also write the JSON here.")
  flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  from msgm_jax import trained as trained_lib  # pylint: disable=import-outside-toplevel
  run = trained_lib.load(FLAGS.workdir)
  read = reader(run.spec, FLAGS.detector, FLAGS.classifier)
  if read is None:
    raise app.UsageError("give --detector=<digits classifier workdir> (colour digits) or "
                         "--classifier=<the dataset classifier's workdir>")
  result = {"workdir": FLAGS.workdir, "step": int(run.step),
            **curve(run, read, FLAGS.num_samples, FLAGS.frames, FLAGS.batch_size)}
  write_result(result, FLAGS.out)
  print(json.dumps({k: result[k] for k in ("t", "std", "committed")}))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
