"""models/upfirdn.py against a direct NumPy transcription of StyleGAN2's upfirdn2d definition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from msgm_jax.models import upfirdn


def np_upfirdn2d(x, k, up, down, pad0, pad1):
  """Zero-insert by `up`, pad (negative crops), true-convolve with 2-D k (valid), keep every
  `down`-th pixel: the four steps of StyleGAN2's upfirdn_2d, written out with loops."""
  x = np.asarray(x, np.float64)
  k = np.asarray(k, np.float64)
  b, h, w, c = x.shape
  u = np.zeros((b, h * up, w * up, c))
  u[:, ::up, ::up, :] = x
  lo, hi = max(pad0, 0), max(pad1, 0)
  u = np.pad(u, ((0, 0), (lo, hi), (lo, hi), (0, 0)))
  u = u[:, max(-pad0, 0):u.shape[1] - max(-pad1, 0), max(-pad0, 0):u.shape[2] - max(-pad1, 0)]
  kh, kw = k.shape
  ho, wo = u.shape[1] - kh + 1, u.shape[2] - kw + 1
  out = np.zeros((b, ho, wo, c))
  for i in range(ho):
    for j in range(wo):
      patch = u[:, i:i + kh, j:j + kw, :]
      out[:, i, j, :] = np.einsum("bhwc,hw->bc", patch, k[::-1, ::-1])
  return out[:, ::down, ::down, :]


def _x(shape=(2, 6, 6, 3)):
  return jax.random.normal(jax.random.PRNGKey(0), shape)


ASYM_2D = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [2.0, 1.0, 1.0]])


UPFIRDN_CASES = [(1, 1, 1, 1), (2, 1, 2, 1), (1, 2, 1, 1), (2, 2, 1, 2), (3, 1, 0, 2),
                 (1, 1, -1, 2)]
KERNELS = {"cubic": (1, 3, 3, 1), "asym1d": (1, 2, 3), "asym2d": ASYM_2D}


@pytest.fixture(scope="module")
def upfirdn_results(fast_jit):
  """upfirdn2d for every (case, kernel), computed in one compile."""
  run = lambda x: {(c, name): upfirdn.upfirdn2d(x, np.asarray(k, np.float64), up=c[0],
                                                down=c[1], pad0=c[2], pad1=c[3])
                   for c in UPFIRDN_CASES for name, k in KERNELS.items()}
  return jax.device_get(fast_jit(run)(_x()))


@pytest.mark.parametrize("case", UPFIRDN_CASES, ids=str)
@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_upfirdn2d_matches_numpy(upfirdn_results, case, kernel):
  k = np.asarray(KERNELS[kernel], np.float64)
  k2d = k if k.ndim == 2 else np.outer(k, k)  # a 1-D kernel means the separable outer(k, k)
  want = np_upfirdn2d(_x(), k2d, *case)
  got = upfirdn_results[case, kernel]
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", [(1, 3, 3, 1), (1, 1), (1, 2, 1)])
def test_up_and_down_sample_2d_match_numpy(kernel):
  x = _x()
  k2d = np.outer(kernel, kernel) / np.sum(kernel)**2
  p = len(kernel) - 2
  up = upfirdn.upsample_2d(x, kernel, factor=2)
  np.testing.assert_allclose(
      up, np_upfirdn2d(x, k2d * 4, 2, 1, (p + 1) // 2 + 1, p // 2), rtol=1e-5, atol=1e-5)
  down = upfirdn.downsample_2d(x, kernel, factor=2)
  np.testing.assert_allclose(
      down, np_upfirdn2d(x, k2d, 1, 2, (p + 1) // 2, p // 2), rtol=1e-5, atol=1e-5)
  assert up.shape == (2, 12, 12, 3) and down.shape == (2, 3, 3, 3)


def test_box_kernel_is_nearest_and_mean_pool():
  x = _x()
  np.testing.assert_allclose(upfirdn.upsample_2d(x, (1, 1)), upfirdn.naive_upsample_2d(x),
                             rtol=1e-6, atol=1e-6)
  pooled = np.asarray(x).reshape(2, 3, 2, 3, 2, 3).mean(axis=(2, 4))
  np.testing.assert_allclose(upfirdn.downsample_2d(x, (1, 1)), pooled, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(upfirdn.naive_downsample_2d(x), pooled, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(upfirdn.naive_upsample_2d(x)[:, 1::2, ::2], x)
  # score_sde's non-FIR Upsample is jax.image.resize(..., "nearest").
  np.testing.assert_array_equal(upfirdn.naive_upsample_2d(x),
                                jax.image.resize(x, (2, 12, 12, 3), "nearest"))


def test_fir_preserves_constants_away_from_borders():
  x = jnp.ones((1, 8, 8, 2))
  np.testing.assert_allclose(upfirdn.upsample_2d(x, (1, 3, 3, 1))[:, 2:-2, 2:-2], 1.0, rtol=1e-6)
  np.testing.assert_allclose(upfirdn.downsample_2d(x, (1, 3, 3, 1))[:, 1:-1, 1:-1], 1.0, rtol=1e-6)


def _score_sde_upsample_conv(x, w, k):
  """score_sde's recipe: conv_transpose (VALID, transpose_kernel) of the flipped, in/out-swapped
  kernel, then upfirdn2d with pads (p + 1) // 2 + 1, p // 2 + 1 (NumPy reference)."""
  kk = len(k)
  k2d = np.outer(k, k) / np.sum(k)**2 * 4
  p = (kk - 2) - (w.shape[0] - 1)
  w_t = jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2))
  y = lax.conv_transpose(x, w_t, (2, 2), "VALID", transpose_kernel=True,
                         dimension_numbers=("NHWC", "HWIO", "NHWC"),
                         precision=lax.Precision.HIGHEST)
  return np_upfirdn2d(y, k2d, 1, 1, (p + 1) // 2 + 1, p // 2 + 1)


@pytest.fixture(scope="module")
def fused_results(fast_jit):
  """{(kernel, impl): (upsample_conv_2d, conv_downsample_2d)} in one compile."""
  x, w = _x((2, 4, 4, 3)), jax.random.normal(jax.random.PRNGKey(3), (3, 3, 3, 5))
  run = lambda x, w: {(k, impl): (upfirdn.upsample_conv_2d(x, w, k, impl=impl),
                                  upfirdn.conv_downsample_2d(x, w, k, impl=impl))
                      for k in ((1, 3, 3, 1), (1, 1)) for impl in ("xla", "im2col")}
  return x, w, jax.device_get(fast_jit(run)(x, w))


@pytest.mark.parametrize("impl", ["xla", "im2col"])  # hybrid's forward is XLA's
@pytest.mark.parametrize("kernel", [(1, 3, 3, 1), (1, 1)])
def test_fused_resampling_convs_match_reference(fused_results, impl, kernel):
  x, w, results = fused_results
  up, down = results[kernel, impl]
  np.testing.assert_allclose(up, _score_sde_upsample_conv(x, w, kernel), rtol=1e-4, atol=1e-4)
  assert up.shape == (2, 8, 8, 5)
  k2d = np.outer(kernel, kernel) / np.sum(kernel)**2
  p = (len(kernel) - 2) + 2
  filtered = np_upfirdn2d(x, k2d, 1, 1, (p + 1) // 2, p // 2)
  want = lax.conv_general_dilated(jnp.asarray(filtered, jnp.float32), w, (2, 2), "VALID",
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  precision=lax.Precision.HIGHEST)
  np.testing.assert_allclose(down, want, rtol=1e-4, atol=1e-4)
  assert down.shape == (2, 2, 2, 5)
