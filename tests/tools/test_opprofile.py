"""opprofile: categories of a known program's instructions, and the per-call sums."""

import jax
import jax.numpy as jnp
import pytest
from jax import lax

from msgm_jax.tools import opprofile


def _two_conv_grad():
  """grad of a two-layer conv net: 2 forward convs, 2 weight gradients, 1 input gradient (the
  data needs none), and a dropout-like random mask."""

  def conv(x, w):
    return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO",
                                                                              "NHWC"))

  def loss(ws, x, key):
    h = jax.nn.swish(conv(x, ws[0]))
    h = jnp.where(jax.random.bernoulli(key, 0.9, h.shape), h / 0.9, 0.0)
    return jnp.sum(conv(h, ws[1]) ** 2)

  ws = (jnp.ones((3, 3, 4, 8)) * 0.1, jnp.ones((3, 3, 8, 4)) * 0.1)
  args = (ws, jnp.ones((2, 8, 8, 4)), jax.random.key(0))
  compiled = jax.jit(jax.grad(loss)).lower(*args).compile()
  return compiled, args


@pytest.fixture(scope="module")
def two_conv():
  return _two_conv_grad()


def test_categorize_finds_each_convolution_role(two_conv):
  compiled, _ = two_conv
  cats = [c for c, _ in opprofile.categorize(compiled.as_text()).values()]
  assert cats.count("conv forward") == 2
  assert cats.count("conv weight grad") == 2
  assert cats.count("conv input grad") == 1
  assert "random bits" in cats


def test_profile_calls_times_the_categories(two_conv):
  compiled, args = two_conv
  out = opprofile.profile_calls(lambda: compiled(*args), compiled, calls=2)
  assert out["calls"] == 2
  assert out["ops_per_call"]["conv forward"] == 2 and out["ops_per_call"]["conv weight grad"] == 2
  assert all(v >= 0 for v in out["ms_per_call"].values())
  assert out["op_ms_per_call"] == pytest.approx(sum(out["ms_per_call"].values()), abs=0.5)


def test_summarize_sums_per_call():
  cats = {"a": ("conv forward", "Conv"), "b": ("layout copy", "other"),
          "w": (opprofile.CONTROL, "other")}  # a while loop: its body's ops are the events
  events = [{"ph": "X", "name": "a", "dur": 3000.0}, {"ph": "X", "name": "a", "dur": 1000.0},
            {"ph": "X", "name": "b", "dur": 2000.0}, {"ph": "X", "name": "stranger", "dur": 2000.0},
            {"ph": "X", "name": "w", "dur": 5000.0},
            {"ph": "X", "name": "ThunkExecutor::Execute", "dur": 9e6}, {"ph": "i", "name": "a"}]
  out = opprofile.summarize(events, cats, calls=2)
  assert out["ms_per_call"] == {"conv forward": 2.0, "layout copy": 1.0}
  assert out["ops_per_call"] == {"conv forward": 1, "layout copy": 0}
  assert out["top_ops"][0] == {"op": "a", "ms": 2.0, "category": "conv forward",
                               "component": "Conv"}
