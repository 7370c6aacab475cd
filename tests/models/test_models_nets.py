"""The score networks: score_sde parameter counts and names, shapes, options, conv_impl, dtype."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from msgm_jax.config import presets
from msgm_jax.models import MODELS, get_model, model_from_config, summarize
from msgm_jax.models import presets as model_presets

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs"
KEY = jax.random.PRNGKey(0)
TINY = dict(nf=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), centered=True)


def load_config(relpath: str) -> ml_collections.ConfigDict:
  spec = importlib.util.spec_from_file_location("cfg", CONFIGS / relpath)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def init_shapes(model, shape, batch=1):
  x, labels = jnp.zeros((batch, *shape)), jnp.ones((batch,))
  return jax.eval_shape(lambda: model.init({"params": KEY, "dropout": KEY}, x, labels))


def out_shape(model, shape, batch=2):
  x, labels = jnp.zeros((batch, *shape)), jnp.ones((batch,))
  return jax.eval_shape(lambda: model.init_with_output(KEY, x, labels, train=False))[0]


# Reference counts of score_sde's Flax models for these configs (CIFAR-10, 32x32x3).
@pytest.mark.parametrize("relpath,expected", [
    ("vp/cifar10_ddpm_continuous.py", 35_218_947),
    ("vp/cifar10_ddpmpp_continuous.py", 61_804_419),
    ("ve/cifar10_ncsnpp_continuous.py", 62_758_915),
    ("vp/cifar10_ddpmpp_deep_continuous.py", 106_632_579),
    ("ve/cifar10_ncsnpp_deep_continuous.py", 107_587_075),
])
def test_parameter_counts_equal_score_sde(relpath, expected):
  config = load_config(relpath)
  model = model_from_config(config.model, data_shape=(32, 32, 3), centered=config.data.centered)
  table, n_params = summarize(model, (32, 32, 3))
  assert n_params == expected
  assert len(table.splitlines()) > 100


def test_parameter_names_follow_score_sde():
  """The reference's module names (and so its checkpoints' layout) for NCSN++ and DDPM."""
  config = load_config("ve/cifar10_ncsnpp_continuous.py")
  ncsnpp = model_from_config(config.model, data_shape=(32, 32, 3), centered=False)
  p = init_shapes(ncsnpp, (32, 32, 3))["params"]
  assert p["GaussianFourierProjection_0"]["W"].shape == (128,)
  assert p["Dense_0"]["kernel"].shape == (256, 512)
  assert p["Conv_0"]["kernel"].shape == (3, 3, 3, 128)
  assert p["Downsample_0"]["Conv2d_0"]["weight"].shape == (3, 3, 3, 128)  # residual pyramid
  block = p["ResnetBlockBigGANpp_4"]  # the first downsampling block
  assert set(block) == {"GroupNorm_0", "Conv_0", "Dense_0", "GroupNorm_1", "Conv_1", "Conv_2"}
  assert set(p["AttnBlockpp_0"]) == {"GroupNorm_0", "NIN_0", "NIN_1", "NIN_2", "NIN_3"}
  ddpm = get_model("ddpm", nf=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2,
                   attn_resolutions=(16,), centered=True)
  p = init_shapes(ddpm, (32, 32, 3))["params"]
  assert p["ResnetBlockDDPM_2"]["NIN_0"]["W"].shape == (128, 256)
  assert p["Downsample_0"]["Conv_0"]["kernel"].shape == (3, 3, 128, 128)
  assert p["Upsample_0"]["Conv_0"]["kernel"].shape == (3, 3, 256, 256)
  assert set(p["AttnBlock_0"]) == {"GroupNorm_0", "NIN_0", "NIN_1", "NIN_2", "NIN_3"}


@pytest.mark.parametrize("relpath,size", [("vp/cifar10_ddpm_continuous.py", 32),
                                          ("ve/cifar10_ncsnpp_continuous.py", 64)])
def test_full_models_output_shapes(relpath, size):
  config = load_config(relpath)
  model = model_from_config(config.model, data_shape=(size, size, 3), centered=False)
  out = out_shape(model, (size, size, 3))
  assert out.shape == (2, size, size, 3) and out.dtype == jnp.float32


NCSNPP_VARIANTS = [
    dict(fir=True, progressive_input="residual", scale_by_sigma=True),  # NCSN++
    dict(embedding_type="positional"),  # DDPM++
    dict(resblock_type="ddpm", progressive="output_skip", progressive_input="input_skip",
         progressive_combine="cat", fir=True),
    dict(resblock_type="ddpm", progressive="residual", progressive_input="residual",
         embedding_type="positional", skip_rescale=False, resamp_with_conv=False),
    dict(progressive="output_skip", progressive_input="input_skip", conditional=False),
]


@pytest.mark.parametrize("fields", NCSNPP_VARIANTS)
def test_ncsnpp_variants_shapes(fields):
  """28x28 (MNIST) here; 8x8 and 4x4 inputs run for real below and in test_models_train.py."""
  assert out_shape(get_model("ncsnpp", **TINY, **fields), (28, 28, 1)).shape == (2, 28, 28, 1)


def test_ddpm_and_mlp_shapes():
  ddpm = get_model("ddpm", **TINY, num_groups=4)
  assert out_shape(ddpm, (28, 28, 1)).shape == (2, 28, 28, 1)
  assert out_shape(get_model("mlp", hidden=32), (2,), batch=5).shape == (5, 2)


def _conv_ops(model, x, labels, variables):
  jaxpr = str(jax.make_jaxpr(lambda v: model.apply(v, x, labels))(variables))
  return jaxpr.count("conv_general_dilated"), jaxpr.count("custom_jvp_call")


def test_conv_impl_reaches_every_convolution(random_variables):
  """Every convolution of the model (incl. FIR resampling convs) follows conv_impl."""
  model = get_model("ncsnpp", **TINY, fir=True, progressive_input="residual")
  x, labels = jnp.zeros((2, 8, 8, 3)), jnp.ones((2,))
  variables = random_variables(model, x, labels)
  n_conv, _ = _conv_ops(model.clone(conv_impl="xla"), x, labels, variables)
  assert n_conv >= 20
  # The hybrid convolution is a custom_jvp; so is jax.nn.softmax (attention) from jax 0.12 on:
  # count the hybrid's calls beyond im2col's.
  n_im2col, other = _conv_ops(model.clone(conv_impl="im2col"), x, labels, variables)
  assert n_im2col == 0
  assert _conv_ops(model.clone(conv_impl="hybrid"), x, labels, variables)[1] - other == n_conv


# A one-level NCSN++ with attention: cheap to compile, enough for exact input/output properties.
MICRO = dict(nf=8, ch_mult=(1,), num_res_blocks=1, attn_resolutions=(4,), centered=True,
             scale_by_sigma=True, init_scale=1.0)


@pytest.fixture(scope="module")
def micro(random_variables, fast_jit):
  """Outputs of variants of one micro NCSN++ on the same parameters, from a single compile."""
  model = get_model("ncsnpp", **MICRO)
  pos = model.clone(embedding_type="positional", sigma_min=0.5, sigma_max=8.0, num_scales=5)
  x = jax.random.uniform(KEY, (2, 4, 4, 3))
  labels, steps = jnp.array([0.3, 7.0]), jnp.array([0.0, 4.0])
  v = random_variables(model, x, labels)
  v_pos = random_variables(pos, x, steps)  # no Fourier W, narrower first Dense
  dropout = model.clone(dropout=0.5)

  @fast_jit
  def run(v, v_pos):
    return dict(
        out=model.apply(v, x, labels),
        raw=model.clone(scale_by_sigma=False).apply(v, x, labels),
        uncentered=model.clone(centered=False).apply(v, (x + 1) / 2, labels),
        bf16=model.clone(dtype=jnp.bfloat16).apply(v, x, labels),
        pos=pos.apply(v_pos, x, steps),
        pos_raw=pos.clone(scale_by_sigma=False).apply(v_pos, x, steps),
        dropped=dropout.apply(v, x, labels, train=True,
                               rngs={"dropout": jax.random.PRNGKey(1)}),
        eval=dropout.apply(v, x, labels, train=False))

  return run(v, v_pos)


def test_scale_by_sigma_and_centering_are_exact(micro):
  assert float(jnp.std(micro["raw"])) > 1e-2  # a non-trivial output
  np.testing.assert_allclose(micro["out"] * jnp.array([0.3, 7.0])[:, None, None, None],
                             micro["raw"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(micro["uncentered"], micro["out"], rtol=1e-5, atol=1e-5)
  # positional: labels index the descending ladder, label 0 -> sigma_max, N - 1 -> sigma_min.
  np.testing.assert_allclose(micro["pos"] * jnp.array([8.0, 0.5])[:, None, None, None],
                             micro["pos_raw"], rtol=1e-5, atol=1e-6)


def test_bfloat16_compute_keeps_float32_output(micro):
  assert micro["bf16"].dtype == jnp.float32
  err = jnp.linalg.norm(micro["bf16"] - micro["out"]) / jnp.linalg.norm(micro["out"])
  assert 0 < float(err) < 0.05
  bf16 = get_model("ncsnpp", **MICRO, dtype=jnp.bfloat16)
  dtypes = jax.tree.leaves(init_shapes(bf16, (4, 4, 3)))
  assert {d.dtype for d in dtypes} == {jnp.dtype(jnp.float32)}


def test_dropout_only_in_training(micro):
  assert float(jnp.abs(micro["dropped"] - micro["eval"]).max()) > 1e-3
  np.testing.assert_allclose(micro["eval"], micro["out"], rtol=1e-6)


def test_model_from_config_translates_and_validates():
  config = model_presets.tiny(model_presets.ddpm(presets.vp(presets.base())))
  model = model_from_config(config.model, data_shape=(8, 8, 1), centered=True)
  assert (model.nf, model.ch_mult, model.num_groups, model.dtype) == (16, (1, 2), 4, jnp.float32)
  config.model.dtype = "bfloat16"
  assert model_from_config(config.model, data_shape=(8, 8, 1), centered=True).dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="centered"):
    model_from_config(config.model, data_shape=(8, 8, 1))
  with pytest.raises(ValueError, match="wants image data"):
    model_from_config(config.model, data_shape=(2,), centered=True)
  with pytest.raises(ValueError, match="not divisible"):
    model_from_config(config.model, data_shape=(7, 7, 1), centered=True)
  del config.model.num_res_blocks
  with pytest.raises(ValueError, match="config.model.num_res_blocks"):
    model_from_config(config.model, data_shape=(8, 8, 1), centered=True)
  config = model_presets.ncsnpp(presets.ve(presets.base()))
  config.model.normalization = "InstanceNorm++"
  with pytest.raises(ValueError, match="normalization"):
    model_from_config(config.model, data_shape=(32, 32, 3), centered=False)
  config.model.name = "ncsnv2"
  with pytest.raises(ValueError, match="ddpm, mlp, ncsnpp"):
    model_from_config(config.model, data_shape=(32, 32, 3), centered=False)
  assert MODELS.names() == ["ddpm", "mlp", "ncsnpp"]


def test_mlp_from_config_and_summary():
  config = model_presets.mlp(presets.ve(presets.base()))
  model = model_from_config(config.model, data_shape=(2,))
  assert (model.hidden, model.n_layers, model.scale_by_sigma) == (128, 3, True)
  table, n_params = summarize(model, (2,))
  # Fourier W (64), 2 time Dense 128x128, input Dense 2x128, 3 x (temb Dense + hidden Dense), out.
  dense = lambda i, o: i * o + o
  expected = 64 + 2 * dense(128, 128) + dense(2, 128) + 6 * dense(128, 128) + dense(128, 2)
  assert n_params == expected
  assert "GaussianFourierProjection_0/W" in table
