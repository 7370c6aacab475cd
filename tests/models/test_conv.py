"""models/conv.py: both implementations equal lax.conv_general_dilated (values and gradients)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from msgm_jax.models import conv

# (kernel, stride, padding, lhs_dilation): every convolution the models use.
CASES = [
    (3, 1, "SAME", 1),  # conv3x3
    (3, 2, "SAME", 1),  # Downsample with conv (pads (0, 1))
    (1, 1, "SAME", 1),  # conv1x1 / Combine
    (3, 2, "VALID", 1),  # FIR conv_downsample_2d
    (3, 1, ((2, 2), (2, 2)), 2),  # FIR upsample_conv_2d (transposed conv)
]


# "xla" is the reference's own lax call (tested against flax.linen.Conv below).
IMPLS = ("im2col", "hybrid")


def _reference(x, w, stride, padding, dilation):
  return lax.conv_general_dilated(x, w, (stride, stride), padding,
                                  lhs_dilation=(dilation, dilation),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  precision=lax.Precision.HIGHEST)


def _value_and_grads(fn, x, w, g):
  y, vjp = jax.vjp(fn, x, w)
  return (y,) + vjp(g)


@pytest.fixture(scope="module")
def conv_results(fast_jit):
  """{(case index, impl or "ref"): (y, dL/dx, dL/dw)} for a random cotangent, one compile."""
  kx, kw, kg = jax.random.split(jax.random.PRNGKey(0), 3)

  @fast_jit
  def run(x):
    out = {}
    for i, (k, stride, padding, dilation) in enumerate(CASES):
      w = jax.random.normal(jax.random.fold_in(kw, i), (k, k, 5, 7))
      ref = lambda x, w: _reference(x, w, stride, padding, dilation)
      g = jax.random.normal(kg, jax.eval_shape(ref, x, w).shape)
      out[i, "ref"] = _value_and_grads(ref, x, w, g)
      for impl in IMPLS:
        fn = lambda x, w, impl=impl: conv.conv2d(
            x, w, strides=(stride, stride), padding=padding, lhs_dilation=(dilation, dilation),
            impl=impl)
        out[i, impl] = _value_and_grads(fn, x, w, g)
      # Forward mode too: hybrid is a custom JVP (divergence estimators may use jax.jvp).
      tangents = (jnp.cos(x), jnp.sin(w))
      out[i, "jvp_ref"] = jax.jvp(ref, (x, w), tangents)[1]
      out[i, "jvp_hybrid"] = jax.jvp(
          lambda x, w: conv.conv2d(x, w, strides=(stride, stride), padding=padding,
                                   lhs_dilation=(dilation, dilation), impl="hybrid"),
          (x, w), tangents)[1]
    return out

  return jax.device_get(run(jax.random.normal(kx, (2, 8, 6, 5))))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", range(len(CASES)), ids=[str(c) for c in CASES])
def test_conv2d_matches_lax_values_and_grads(conv_results, impl, case):
  ours, ref = conv_results[case, impl], conv_results[case, "ref"]
  for name, a, b in zip(("output", "dx", "dw"), ours, ref):
    assert a.shape == b.shape, name
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("case", range(len(CASES)), ids=[str(c) for c in CASES])
def test_hybrid_forward_mode_matches_lax(conv_results, case):
  np.testing.assert_allclose(conv_results[case, "jvp_hybrid"], conv_results[case, "jvp_ref"],
                             rtol=1e-4, atol=1e-4)


def test_auto_is_xla_and_names_are_checked():
  assert conv.resolve_impl("auto") == "xla"
  for impl in ("xla", "im2col", "hybrid"):
    assert conv.resolve_impl(impl) == impl
  with pytest.raises(ValueError, match="conv_impl"):
    conv.resolve_impl("fast")


def test_conv_module_is_flax_conv_with_portable_params(fast_jit):
  """Same parameter tree for every conv_impl, and the same function as flax.linen.Conv."""
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, 4))
  for impl in conv.CONV_IMPLS:
    shapes = jax.eval_shape(conv.Conv(6, 3, conv_impl=impl).init, jax.random.PRNGKey(2), x)
    assert jax.tree.map(jnp.shape, shapes) == {"params": {"kernel": (3, 3, 4, 6), "bias": (6,)}}
  rng = np.random.default_rng(0)
  params = {"params": {"kernel": jnp.asarray(rng.standard_normal((3, 3, 4, 6)), jnp.float32),
                       "bias": jnp.asarray(rng.standard_normal(6), jnp.float32)}}

  @fast_jit
  def run(params):
    out = {}
    for stride in (1, 2):
      out[stride, "flax"] = nn.Conv(6, (3, 3), strides=stride, padding="SAME").apply(params, x)
      for impl in ("xla", "im2col"):  # hybrid's forward is XLA's by construction
        out[stride, impl] = conv.Conv(6, 3, stride=stride, conv_impl=impl).apply(params, x)
    return out

  out = run(params)
  for (stride, impl), y in out.items():
    np.testing.assert_allclose(y, out[stride, "flax"], rtol=1e-5, atol=1e-5, err_msg=impl)


def test_default_init_is_fan_avg_uniform():
  """variance_scaling(scale, fan_avg, uniform): bound sqrt(3 scale / ((fan_in + fan_out) / 2))."""
  w = conv.Conv(64, 3, init_scale=2.0).init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 32)))
  kernel = np.asarray(w["params"]["kernel"])
  bound = np.sqrt(3 * 2.0 / ((9 * 32 + 9 * 64) / 2))
  assert np.abs(kernel).max() <= bound
  assert np.abs(kernel).max() > 0.95 * bound
  np.testing.assert_allclose(kernel.var(), bound**2 / 3, rtol=0.05)
