"""Times the convolution implementations of models/conv.py on this machine.

  PYTHONPATH=. python scripts/bench_conv.py [--channels 16 32 64] [--batch 16] [--size 28]

Part 1 (conv): one 3x3 conv at batch x size x size x channels, forward alone and forward plus
gradients w.r.t. input and kernel.
Part 2 (train): a train step (denoising loss, Adam) of a small DDPM U-Net (ch_mult (1, 2), one
res block per level, no attention, 1 input channel) with nf = channels.
Each function is compiled first, then the implementations run in turn --reps times (so load from
other processes hits them alike); the minimum and the median are printed in seconds.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from msgm_jax.models import get_model
from msgm_jax.models.conv import conv2d

IMPLS = ("xla", "im2col", "hybrid", "auto")


def _race(fns, args, reps):
  """{name: (min, median)} seconds of fns[name](*args), interleaved after one compiling call."""
  for fn in fns.values():
    jax.block_until_ready(fn(*args))
  times = {name: [] for name in fns}
  for _ in range(reps):
    for name, fn in fns.items():
      t0 = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[name].append(time.perf_counter() - t0)
  return {name: (min(t), float(np.median(t))) for name, t in times.items()}


def conv_fns(grad: bool):
  def make(impl):
    f = lambda x, w: conv2d(x, w, impl=impl)
    if grad:
      return jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w)**2), argnums=(0, 1)))
    return jax.jit(f)
  return {impl: make(impl) for impl in IMPLS}


def conv_args(ch, batch, size):
  kx, kw = jax.random.split(jax.random.PRNGKey(0))
  return (jax.random.normal(kx, (batch, size, size, ch)),
          jax.random.normal(kw, (3, 3, ch, ch)) * 0.1)


def train_step_fn(ch, impl, x, labels):
  model = get_model("ddpm", nf=ch, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
                    centered=True, dropout=0.0, num_groups=min(32, ch // 4), conv_impl=impl)
  tx = optax.adam(1e-4)
  key = jax.random.PRNGKey(1)

  @jax.jit
  def step(params, opt_state):
    def loss_fn(p):
      z = jax.random.normal(key, x.shape)
      return jnp.mean((model.apply(p, x + z, labels, train=False) - z)**2)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  # Parameters do not depend on conv_impl: one init (with XLA) serves every implementation.
  params = jax.jit(model.clone(conv_impl="xla").init)(key, x, labels)
  return step, (params, tx.init(params))


def _fmt(results):
  return "  ".join(f"{k} {v[0]:.4f}/{v[1]:.4f}" for k, v in results.items())


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64])
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--size", type=int, default=28)
  parser.add_argument("--reps", type=int, default=3)
  parser.add_argument("--parts", nargs="+", default=["conv", "train"], choices=["conv", "train"])
  args = parser.parse_args()
  print(f"backend {jax.default_backend()}, batch {args.batch}, {args.size}x{args.size}; "
        "seconds min/median", flush=True)
  for ch in args.channels if "conv" in args.parts else []:
    xw = conv_args(ch, args.batch, args.size)
    print(f"conv3x3 ch {ch:4d} forward     : {_fmt(_race(conv_fns(False), xw, args.reps))}")
    print(f"conv3x3 ch {ch:4d} fwd + grads : {_fmt(_race(conv_fns(True), xw, args.reps))}",
          flush=True)
  for ch in args.channels if "train" in args.parts else []:
    x = jax.random.normal(jax.random.PRNGKey(0), (args.batch, args.size, args.size, 1))
    labels = jnp.linspace(0.0, 999.0, args.batch)
    steps = {impl: train_step_fn(ch, impl, x, labels) for impl in IMPLS}
    state = steps["xla"][1]
    fns = {impl: (lambda s: (lambda p, o: s(p, o)[2]))(step) for impl, (step, _) in steps.items()}
    print(f"train step nf {ch:4d}       : {_fmt(_race(fns, state, args.reps))}", flush=True)


if __name__ == "__main__":
  main()
