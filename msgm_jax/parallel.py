"""The one module that knows about devices: data parallelism over local devices with pmap.

Solvers, losses and train steps are written for one device and run under plain `jit`; this
adapter maps them over the local devices (axis name "batch"), averages gradients with `pmean`
and gives each device its own random stream.
"""

from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

AXIS = "batch"


def local_devices(n: Optional[int] = None) -> list:
  """The first n local devices (all of them by default)."""
  devices = jax.local_devices()
  if n is not None:
    if not 1 <= n <= len(devices):
      raise ValueError(f"asked for {n} devices but this host has {len(devices)}")
    devices = devices[:n]
  return devices


def _stacked_sharding(devices: Sequence) -> jax.sharding.NamedSharding:
  mesh = jax.sharding.Mesh(np.array(devices), (AXIS,))
  return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))


def replicate(tree: Any, devices: Sequence) -> Any:
  """Copies every leaf onto each device: leaves gain a leading [n_devices] axis."""
  sharding = _stacked_sharding(devices)
  return jax.tree.map(
      lambda x: jax.device_put(jnp.stack([jnp.asarray(x)] * len(devices)), sharding), tree)


def put_sharded(tree: Any, devices: Sequence) -> Any:
  """Places leaves shaped [n_devices, ...] with one slice per device (for pmap inputs)."""
  sharding = _stacked_sharding(devices)
  return jax.tree.map(lambda x: jax.device_put(x, sharding), tree)


def unreplicate(tree: Any) -> Any:
  """The first device's copy of a replicated tree."""
  return jax.tree.map(lambda x: x[0], tree)


def shard(tree: Any, n_devices: int, batch_axis: int = 0) -> Any:
  """Splits the batch axis of every leaf into [n_devices, B / n_devices] (host numpy)."""

  def split(x):
    x = np.asarray(x)
    b = x.shape[batch_axis]
    if b % n_devices:
      raise ValueError(f"batch of {b} does not split over {n_devices} devices; make the batch "
                       f"size a multiple of {n_devices}")
    shape = x.shape[:batch_axis] + (n_devices, b // n_devices) + x.shape[batch_axis + 1:]
    return np.moveaxis(x.reshape(shape), batch_axis, 0)

  return jax.tree.map(split, tree)


def pmean(tree: Any) -> Any:
  return jax.lax.pmean(tree, AXIS)


def data_parallel_step(make_step: Callable[[Callable], Callable], devices: Sequence,
                       donate: bool = True, n_static: int = 0) -> Callable:
  """pmaps step(state, batch, key, *static) built by make_step(grad_reduce) over devices.

  state: replicated; batch: sharded leaves [n_devices, ...]; key: one unreplicated key,
  broadcast to all devices (per-example noise makes device streams distinct); the last
  n_static arguments are hashable Python values fixed at trace time (one compilation each).
  """
  step = make_step(pmean)
  return jax.pmap(step, axis_name=AXIS, devices=devices, in_axes=(0, 0, None),
                  static_broadcasted_argnums=tuple(range(3, 3 + n_static)),
                  donate_argnums=(0,) if donate else ())


def _device_key(key: jax.Array) -> jax.Array:
  """The key folded with this device's index: a distinct random stream per device."""
  return jax.random.fold_in(key, jax.lax.axis_index(AXIS))


def data_parallel_sampler(sample_fn: Callable[[Any, Any], Any], devices: Sequence) -> Callable:
  """pmaps sample_fn(key, params) -> x with a distinct key per device.

  Returns f(key, replicated_params) -> x with leaves [n_devices, ...].
  """
  return jax.pmap(lambda key, params: sample_fn(_device_key(key), params), axis_name=AXIS,
                  devices=devices, in_axes=(None, 0))


def data_parallel_map(fn: Callable[[Any, Any, Any], Any], devices: Sequence,
                      distinct_keys: bool = True) -> Callable:
  """pmaps fn(params, batch, key) -> out over devices, for evaluation (no reduction).

  params: replicated; batch: sharded leaves [n_devices, ...]; key: one unreplicated key,
  folded with the device index when `distinct_keys` (e.g. Hutchinson probes), else the same
  on every device (for noise derived from global example ids, independent of the layout).
  Returns f(params, batch, key) -> out with leaves [n_devices, ...].
  """

  def per_device(params, batch, key):
    return fn(params, batch, _device_key(key) if distinct_keys else key)

  return jax.pmap(per_device, axis_name=AXIS, devices=devices, in_axes=(0, 0, None))
