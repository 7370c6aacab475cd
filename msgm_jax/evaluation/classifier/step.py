"""One classifier training step (cross-entropy, optimiser, schedule). Device-agnostic.

`make_train_step` returns a pure step(state, batch, key) -> (state, metrics) that runs under
plain `jit`; msgm_jax/runtime/parallel.py maps it over devices and passes `grad_reduce` in. Random
crops are drawn per example from its global index, so one device and eight compute the same
update for the same global batch.
"""

from typing import Any, Callable, Dict

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from msgm_jax.method import optim
from msgm_jax.evaluation.classifier import settings as settings_lib
from msgm_jax.diffusion.losses import example_keys

Array = jax.Array


@flax.struct.dataclass
class ClassifierState:
  step: Array  # int32 scalar: optimisation steps taken
  params: Any
  opt_state: Any


def init_state(model: nn.Module, s: settings_lib.ClassifierSettings, image_shape,
               key: Array) -> ClassifierState:
  """Parameters initialised on a dummy batch of one image of image_shape (H, W, C)."""
  x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
  params = jax.jit(lambda k: model.init({"params": k}, x, train=False)["params"])(key)
  return ClassifierState(jnp.asarray(0, jnp.int32), params,
                         settings_lib.make_transform(s).init(params))


def random_translate(keys: Array, images: Array, pad: int) -> Array:
  """Pads images [B, H, W, C] by `pad` edge pixels and crops [H, W] back at a uniform random
  offset in 0..2 pad per axis (one key per image, keys [B])."""
  h, w = images.shape[1:3]

  def one(key, image):
    padded = jnp.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    dy, dx = jax.random.randint(key, (2,), 0, 2 * pad + 1)
    return jax.lax.dynamic_slice(padded, (dy, dx, 0), (h, w, image.shape[-1]))

  return jax.vmap(one)(keys, images)


def make_train_step(model: nn.Module, s: settings_lib.ClassifierSettings,
                    grad_reduce: Callable[[Any], Any] = lambda g: g) -> Callable:
  """step(state, batch, key) -> (state, {'loss', 'accuracy', 'lr'}).

  batch: {'image': float32 [B, H, W, C] in [0, 1], 'label': int32 [B], 'ids': int32 [B]
  global example indices}; key: the run's key, the same on every device.
  """
  tx = settings_lib.make_transform(s)

  def loss_fn(params, images, labels, dropout_key):
    logits, _ = model.apply({"params": params}, images, train=True,
                            rngs={"dropout": dropout_key})
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    return loss, jnp.mean(jnp.argmax(logits, -1) == labels)

  def step(state: ClassifierState, batch: Dict[str, Array], key: Array):
    step_key = jax.random.fold_in(key, state.step)
    images = batch["image"]
    if s.crop_padding:
      crop_keys = example_keys(jax.random.fold_in(step_key, 0), batch["ids"])
      images = random_translate(crop_keys, images, s.crop_padding)
    # Dropout masks differ per device through the first example id of the local batch.
    dropout_key = jax.random.fold_in(jax.random.fold_in(step_key, 1), batch["ids"][0])
    (loss, accuracy), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params, images, batch["label"], dropout_key)
    grads, loss, accuracy = grad_reduce((grads, loss, accuracy))
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    lr = settings_lib.learning_rate(s, state.step)
    params = optim.apply_updates(state.params, updates, lr)
    return (ClassifierState(state.step + 1, params, opt_state),
            {"loss": loss, "accuracy": accuracy, "lr": lr})

  return step
