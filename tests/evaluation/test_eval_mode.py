"""Eval and sample modes, and training's eval_loss: outputs, and likelihoods against truth."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msgm_jax import data
from msgm_jax.training import heldout as eval_loss
from msgm_jax.evaluation import eval_mode as evaluate
from msgm_jax.diffusion import exact
from msgm_jax.cli import modes
from msgm_jax.runtime import parallel
from msgm_jax.evaluation import sample_mode as sample
from msgm_jax.training import loop as train
from msgm_jax.diffusion import sde as sde_lib
from msgm_jax.diffusion.losses import LossConfig
from tests.helpers import tiny_toy_config

DEVICES = jax.local_devices()


def _config():
  # One step per compiled call compiles 5x faster than tiny_toy_config's five.
  config = tiny_toy_config(regime="msgm", n_iters=10, steps_per_call=1, eval_freq=5,
                           snapshot_freq=10, snapshot_freq_for_preemption=5)
  config.eval.batch_size = 32
  config.eval.num_batches = 1  # eval mode's DSM batch 0 is training's eval batch
  config.eval.bpd_num_examples = 48  # two likelihood batches of 32, the second padded
  config.eval.num_samples = 40
  config.sampling.batch_size = 16
  return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """10 MSGM steps with eval_loss every 5; counts how often the eval loss is traced."""
  workdir = str(tmp_path_factory.mktemp("run"))
  traces = []
  with pytest.MonkeyPatch.context() as mp:
    real = eval_loss.dsm_loss
    mp.setattr(eval_loss, "dsm_loss", lambda *a: traces.append(1) or real(*a))
    train.train_and_evaluate(_config(), workdir)
  return workdir, len(traces)


def _metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_training_logs_eval_loss_compiled_once(trained):
  workdir, traces = trained
  evals = [m for m in _metrics(workdir) if "eval_loss" in m]
  assert [m["step"] for m in evals] == [5, 10]
  assert all(np.isfinite(m["eval_loss"]) and np.isfinite(m["eval_loss_nsfg"]) for m in evals)
  assert traces == 1  # one compilation serves both subsets and every eval step


def test_eval_mode_writes_a_record_per_checkpoint(trained):
  workdir, _ = trained
  config = _config()
  config.eval.begin_ckpt = 5  # end 0: every kept checkpoint from step 5 on
  records = evaluate.evaluate(config, workdir)
  assert sorted(records) == [5, 10]
  outdir = os.path.join(workdir, "eval", evaluate.eval_tag(config))
  with open(os.path.join(outdir, "ckpt_10.json")) as f:
    record = json.load(f)
  assert record["params"] == "ema" and record["likelihood"]["unit"] == "nats/point"
  for subset in ("sfg", "nsfg"):
    r = record[subset]
    assert r["dsm_examples"] == 32 and r["likelihood_examples"] == 48
    assert all(np.isfinite(r[k]) for k in ("dsm_loss", "nll", "nll_stderr", "nfe"))
    assert "bpd" not in r
  # Training logged eval_loss with the EMA parameters on the same batch and noise.
  logged = [m for m in _metrics(workdir) if m.get("step") == 10 and "eval_loss" in m][0]
  np.testing.assert_allclose(record["sfg"]["dsm_loss"], logged["eval_loss"], rtol=1e-5)
  np.testing.assert_allclose(record["nsfg"]["dsm_loss"], logged["eval_loss_nsfg"], rtol=1e-5)
  assert os.listdir(os.path.join(outdir, "tensorboard"))


def test_sample_mode_writes_npz_and_png(trained, capsys):
  workdir, _ = trained
  npz, png = sample.sample(_config(), workdir)
  tag = sample.sample_tag(_config())
  assert npz.endswith(os.path.join("samples", f"eval_10_{tag}.npz")) and os.path.exists(png)
  with np.load(npz) as f:
    assert set(f.files) == {"samples", "settings"} and f["samples"].shape == (40, 2)
    assert np.all(np.isfinite(f["samples"]))
    assert json.loads(str(f["settings"]))["eval.num_samples"] == 40
  assert npz in capsys.readouterr().out


def test_modes_without_checkpoints_give_one_line_errors(tmp_path):
  for mode in ("sample", "eval"):
    with pytest.raises(modes.USER_ERRORS, match="no checkpoints in .*train first") as e:
      modes.MODES.get(mode)(_config(), str(tmp_path), modes.Options())
    assert "\n" not in str(e.value)


def test_checkpoint_selection_rules():
  assert evaluate.select_steps([10, 20, 30], 0, 0) == [30]
  assert evaluate.select_steps([10, 20, 30], 15, 0) == [20, 30]
  assert evaluate.select_steps([10, 20, 30], 10, 20) == [10, 20]
  with pytest.raises(ValueError, match="kept steps: 10, 20"):
    evaluate.select_steps([10, 20], 25, 0)
  assert sample.pick_step([10, 20], 0) == 20 and sample.pick_step([10, 20], 10) == 10
  with pytest.raises(ValueError, match="begin_ckpt=15 is not a kept"):
    sample.pick_step([10, 20], 15)


def test_eval_divergence_comes_from_the_config():
  config = tiny_toy_config()
  assert evaluate.EvalSettings.from_config(config.eval).divergence == "hutchinson_rademacher"
  config.eval.divergence = "exact"
  assert evaluate.EvalSettings.from_config(config.eval).divergence == "exact"
  config.eval.divergence = "hutch"
  with pytest.raises(ValueError, match="valid names: exact, hutchinson_gaussian"):
    evaluate.EvalSettings.from_config(config.eval)


def _evaluator(spec, sde, score_fn, n):
  settings = evaluate.EvalSettings(batch_size=n, bpd_num_examples=n)
  return evaluate.Evaluator(spec, sde, lambda variables, rng: score_fn, LossConfig(), DEVICES,
                            settings, seed=0, init_key=jax.random.key(0))


def test_toy_nll_of_the_exact_score_is_the_analytic_nll():
  """Eval mode's likelihood path with the true mixture score gives the true mean NLL.

  The blobs lie on one axis with equal widths, so the score's Jacobian is diagonal and the
  Rademacher trace estimate is exact (on the default diagonal toy it has ~1 nat/point of
  noise); under VP the prior N(0, I) matches p_T to < 1e-4 nats. What is left is ODE error.
  """
  toy = data.GaussianMixture([[-2.0, 0.0], [2.0, 0.0], [0.0, 0.0]], [0.5] * 3, [1.0] * 3)
  spec, sde, n = data.DataSpec("toy2d", nsfg_classes=(2,), mixture=toy), sde_lib.VPSDE(), 64
  mix = exact.make_mixture(toy.means, toy.stds, toy.weights)
  ev = _evaluator(spec, sde, exact.mixture_score_fn(sde, mix), n)
  p_vars = parallel.replicate(jnp.zeros(()), DEVICES)
  for subset in ("sfg", "nsfg"):
    got = ev.likelihood(p_vars, subset)
    x = jnp.asarray(np.stack([ev.sources[subset][i]["image"] for i in range(n)]))
    truth = -float(jnp.mean(exact.mixture_logp(sde, mix, x, jnp.full((n,), 1e-5))))
    assert abs(got["nll"] - truth) < 5e-3, (subset, got, truth)
    assert got["likelihood_examples"] == n and "bpd" not in got


def test_bits_per_dim_of_dequantised_digits_match_the_analytic_value():
  """Eval mode's image likelihood path on centred 8-bit digits, with the exact score of a
  Gaussian model. For an isotropic Gaussian the Rademacher trace estimate is exact, so the
  bits/dim must be the analytic ones of the dequantised inputs, offset 7."""
  spec = data.DataSpec("digits", nsfg_classes=(0,), centered=True)
  sde, n = sde_lib.VPSDE(), 16
  mix = exact.make_mixture(np.zeros((1, 64)), [0.5])
  ev = _evaluator(spec, sde, exact.mixture_score_fn(sde, mix), n)
  got = ev.likelihood(parallel.replicate(jnp.zeros(()), DEVICES), "nsfg")
  deq = dataclasses.replace(spec, uniform_dequantization=True)
  x = next(eval_loss.model_batches(deq, ev.sources["nsfg"], n, n,
                                   eval_loss.host_rng(0, "nsfg", 1)))["x"]
  assert np.all(np.floor((x + 1) / 2 * 256) == np.stack([ev.sources["nsfg"][i]["image"]
                                                          for i in range(n)]))
  logp = exact.mixture_logp(sde, mix, jnp.asarray(x), jnp.full((n,), 1e-5))
  truth = float(np.mean(-logp / (64 * np.log(2.0)))) + 7.0
  # ODE error at rtol = atol = 1e-5 is ~0.004 bits/dim here; an offset error is 1 bit.
  np.testing.assert_allclose(got["bpd"], truth, atol=0.01)
  assert got["likelihood_examples"] == n and "nll" not in got


def test_bits_per_dim_offsets_8_for_unit_and_7_for_centred_data():
  """One density of 8-bit images in [0, 1] and in [-1, 1] coordinates: the centred density is
  2^-D times smaller, and both must give the same bits/dim (the same pixel probabilities)."""
  shape, logp_unit = (8, 8, 1), np.array([-50.0, 10.0, 123.0])
  unit = data.DataSpec("digits", centered=False)
  centred = data.DataSpec("digits", centered=True)
  assert evaluate.bpd_offset(unit) == 8.0 and evaluate.bpd_offset(centred) == 7.0
  a = evaluate.likelihood_summary(logp_unit, unit)
  b = evaluate.likelihood_summary(logp_unit - 64 * np.log(2.0), centred)
  np.testing.assert_allclose(a["bpd"], b["bpd"], rtol=1e-6)
  np.testing.assert_allclose(a["bpd"], np.mean(-logp_unit / (64 * np.log(2.0))) + 8.0, rtol=1e-6)
  assert np.prod(shape) == 64


def test_saved_images_are_uint8_of_the_inverse_scaled_samples(tmp_path):
  spec = data.DataSpec("digits", nsfg_classes=(0,), centered=True)
  x = np.linspace(-1.2, 1.2, 3 * 64, dtype=np.float32).reshape(3, 8, 8, 1)
  npz, png = sample.save_samples(sample.sample_paths(str(tmp_path), 7, "tag"), 7, x, spec)
  with np.load(npz) as f:
    assert f["images"].dtype == np.uint8 and f["images"].shape == (3, 8, 8, 1)
    np.testing.assert_array_equal(f["images"], np.clip((x + 1) / 2 * 255, 0, 255).astype(np.uint8))
    np.testing.assert_array_equal(f["samples"], x)
  assert os.path.basename(png) == "eval_7_tag.png" and os.path.getsize(png) > 0


def _discrete_vp_config(continuous):
  """A 2-step DDPM-loss (discrete VP) toy run; continuous=True reads the same checkpoint with
  the continuous parametrisation."""
  config = tiny_toy_config(n_iters=2, steps_per_call=1, snapshot_freq=2,
                           snapshot_freq_for_preemption=2, sde="vpsde", continuous=False)
  config.model.embedding_type = "positional"
  config.model.scale_by_sigma = False
  config.model.num_scales = 1000  # DDPM's N: labels t (N - 1) = 999 t
  config.eval.batch_size = 16
  config.eval.num_batches = 1
  config.eval.bpd_num_examples = 16
  config.eval.divergence = "exact"
  config.eval.num_samples = 16
  config.sampling.method = "ode"
  config.sampling.batch_size = 16
  config.sampling.eps = 1e-3
  config.training.continuous = continuous
  return config


def test_discrete_vp_model_is_integrated_with_the_continuous_parametrisation(tmp_path):
  """score_sde's likelihoods and ODE sampler use the continuous score parametrisation even for
  models trained with the discrete DDPM loss: a discrete-trained model's bits/dim and ODE
  samples equal those of the same weights read as a continuous model (N = 1000, so the labels
  t (N - 1) and 999 t agree), not those of the piecewise-constant discrete std."""
  workdir = str(tmp_path)
  train.train_and_evaluate(_discrete_vp_config(False), workdir)
  discrete = evaluate.evaluate(_discrete_vp_config(False), workdir)[2]
  continuous = evaluate.evaluate(_discrete_vp_config(True), workdir, allow_config_change=True)[2]
  for subset in ("sfg", "nsfg"):
    assert np.isfinite(discrete[subset]["nll"])
    np.testing.assert_allclose(discrete[subset]["nll"], continuous[subset]["nll"], rtol=1e-6)
    assert discrete[subset]["dsm_loss"] != continuous[subset]["dsm_loss"]  # the DDPM loss stays
  samples = []
  for flag in (False, True):
    npz, _ = sample.sample(_discrete_vp_config(flag), workdir, allow_config_change=True,
                           overwrite=True)
    with np.load(npz) as f:
      samples.append(f["samples"])
  np.testing.assert_allclose(samples[0], samples[1], rtol=1e-6, atol=1e-6)


def test_output_tags_name_only_the_sampling_fields_the_method_reads():
  """sampling.num_steps / ddim_eta (the fast samplers') leave the names of pc and ode outputs
  as they were before those fields existed, and name the outputs of the methods that read
  them."""
  config = _config()

  def tags():
    return sample.sample_tag(config), sample.store_dir("", config, 10, 8), evaluate.eval_tag(config)

  pc = tags()
  config.sampling.num_steps, config.sampling.ddim_eta = 7, 1.0
  assert tags() == pc
  config.sampling.method = "heun"
  heun = tags()
  assert all(a != b for a, b in zip(heun, pc))
  config.sampling.ddim_eta = 0.0  # heun does not read it
  assert tags() == heun
  config.sampling.num_steps = 8
  assert all(a != b for a, b in zip(tags(), heun))
