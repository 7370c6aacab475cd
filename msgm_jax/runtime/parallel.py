"""The one module that knows about devices: data parallelism over the devices of all processes.

Solvers, losses and train steps are written for one device and run under plain `jit`; this
adapter maps them over the devices (axis name "batch"), averages gradients with `pmean` and
gives each device its own random stream.

Callers hold their *local* devices (`local_devices`) and host data for them. Every array a
mapped function takes or returns is a global jax.Array whose leading axis is the global device
index: each process holds the slices of its own devices. `replicate` and `put_sharded` build
them from host values, `unreplicate` reads the first local copy, `gather` joins the slices of
all processes into host numpy. With one process this is exactly pmap over local devices.

With several processes (msgm_jax/runtime/distributed.py) the mapped axis spans the same number of
devices on every process, process by process (`global_devices`): global device j is local
device j % n_local of process j // n_local. A global batch split by `process_rows` and then
`shard` therefore puts row r on the same global device at any process count, and random
streams folded with `axis_index` are the same too.

Mapping is jit of shard_map over a one-axis Mesh (what jax.pmap itself is built on in this
JAX; how it scales: docs/scaling.md), compiled ahead of each new call signature.
With several processes all of them then pass a barrier before the first run: a process that
compiles slower would otherwise make the others' first collective time out (measured on CPU:
gloo gives up after 30 s).
"""

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from msgm_jax.runtime import distributed
from msgm_jax.data.stream import local_rows

AXIS = "batch"


def local_devices(n: Optional[int] = None) -> list:
  """The first n local devices (all of them by default)."""
  devices = jax.local_devices()
  if n is not None:
    if not 1 <= n <= len(devices):
      raise ValueError(f"asked for {n} devices but this host has {len(devices)}")
    devices = devices[:n]
  return devices


def global_devices(devices: Sequence) -> list:
  """The devices a mapped function spans: `devices` (the first n local ones) of every
  process, process by process; just `devices` with one process."""
  if not distributed.is_multiprocess():
    return list(devices)
  n = len(devices)
  if list(devices) != jax.local_devices()[:n]:
    raise ValueError("with several processes, map over the first n local devices "
                     "(parallel.local_devices(n))")
  return [d for p in range(jax.process_count()) for d in jax.local_devices(process_index=p)[:n]]


def device_count(devices: Sequence) -> int:
  """How many devices a function mapped over `devices` spans (all processes)."""
  return len(devices) * jax.process_count()


def process_rows(global_batch: int) -> slice:
  """This process's rows of a global batch (ValueError naming the fix when it does not
  split)."""
  return local_rows(global_batch, jax.process_index(), jax.process_count())


def _mesh(devices: Sequence) -> Mesh:
  return Mesh(np.array(global_devices(devices)), (AXIS,))


def _from_local_slices(slices: Sequence, devices: Sequence) -> jax.Array:
  """One [1, ...] slice per local device -> the global [n_devices, ...] array."""
  shape = (device_count(devices),) + tuple(slices[0].shape[1:])
  sharding = NamedSharding(_mesh(devices), PartitionSpec(AXIS))
  return jax.make_array_from_single_device_arrays(
      shape, sharding, [jax.device_put(s, d) for s, d in zip(slices, devices)])


def replicate(tree: Any, devices: Sequence) -> Any:
  """Copies every leaf onto each device: leaves gain a leading [n_devices] axis."""
  return jax.tree.map(
      lambda x: _from_local_slices([jnp.asarray(x)[None]] * len(devices), devices), tree)


def put_sharded(tree: Any, devices: Sequence) -> Any:
  """Places host leaves [n_local, ...] with one slice per local device (this process's part
  of a global [n_devices, ...] array)."""
  return jax.tree.map(
      lambda x: _from_local_slices([x[i:i + 1] for i in range(len(devices))], devices), tree)


def _first(x: Any) -> Any:
  # The first local device's buffer, read directly: `x[0]` on an array sharded over devices
  # is a compiled program with a collective over them (measured: it deadlocked on CPU with
  # two processes).
  if isinstance(x, jax.Array):
    return x.addressable_data(0)[0]
  return x[0]


def unreplicate(tree: Any) -> Any:
  """The first local device's copy of a replicated tree (one device array per leaf)."""
  return jax.tree.map(_first, tree)


def gather(tree: Any) -> Any:
  """Mapped outputs -> numpy [n_devices, ...] of all processes in global device order (with
  several processes a collective: every process calls it and gets all)."""

  def one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      local = np.concatenate([np.asarray(s.data) for s in
                              sorted(x.addressable_shards, key=lambda s: s.index[0].start)])
      return distributed.allgather(local)
    return np.asarray(x)

  return jax.tree.map(one, tree)


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


class Mapped:
  """fn(*args, *static) mapped over devices like pmap: arguments with in_axes 0 are
  [n_devices, ...] arrays (one slice per device), those with None are broadcast; the last
  n_static arguments are hashable Python values fixed at trace time (one compilation each).
  Outputs gain the leading [n_devices] axis. `lower(*args)` gives the lowered program."""

  def __init__(self, fn: Callable, devices: Sequence, in_axes: Tuple[Optional[int], ...],
               n_static: int = 0, donate: Tuple[int, ...] = ()):
    self.fn, self.devices, self.in_axes = fn, list(devices), in_axes
    self.n_static, self.donate = n_static, donate
    self.mesh = _mesh(devices)
    self._compiled: Dict[Any, Any] = {}

  def _jitted(self, static: tuple):
    def per_device(*args):
      args = [a if ax is None else jax.tree.map(lambda x: x[0], a)
              for a, ax in zip(args, self.in_axes)]
      return jax.tree.map(lambda x: x[None], self.fn(*args, *static))

    specs = tuple(PartitionSpec() if ax is None else PartitionSpec(AXIS) for ax in self.in_axes)
    mapped = jax.shard_map(per_device, mesh=self.mesh, in_specs=specs,
                           out_specs=PartitionSpec(AXIS), check_vma=False)
    return jax.jit(mapped, donate_argnums=self.donate)

  def _split(self, args: tuple):
    n = len(self.in_axes)
    if len(args) != n + self.n_static:
      raise TypeError(f"expected {n + self.n_static} arguments, got {len(args)}")
    broadcast = NamedSharding(self.mesh, PartitionSpec())
    dynamic = [a if ax is not None else jax.tree.map(lambda x: self._broadcast(x, broadcast), a)
               for a, ax in zip(args[:n], self.in_axes)]
    return dynamic, tuple(args[n:])

  def _broadcast(self, x, sharding):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return x
    # Every process holds the same value (e.g. the run's key): one copy per local device.
    return jax.make_array_from_single_device_arrays(
        np.shape(x), sharding, [jax.device_put(x, d) for d in self.devices])

  def lower(self, *args):
    dynamic, static = self._split(args)
    return self._jitted(static).lower(*dynamic)

  def __call__(self, *args):
    dynamic, static = self._split(args)
    leaves, tree = jax.tree.flatten(dynamic)
    signature = (static, tree, tuple((np.shape(x), jnp.result_type(x)) for x in leaves))
    compiled = self._compiled.get(signature)
    if compiled is None:
      compiled = self._jitted(static).lower(*dynamic).compile()
      # Every process has compiled it: their first collectives now start together.
      distributed.barrier(f"compiled/{getattr(self.fn, '__name__', 'fn')}")
      self._compiled[signature] = compiled
    return compiled(*dynamic)


def data_parallel_step(make_step: Callable[[Callable], Callable], devices: Sequence,
                       donate: bool = True, n_static: int = 0) -> Mapped:
  """Maps step(state, batch, key, *static) built by make_step(grad_reduce) over devices.

  state: replicated; batch: sharded leaves [n_devices, ...]; key: one unreplicated key,
  broadcast to all devices (per-example noise makes device streams distinct); the last
  n_static arguments are hashable Python values fixed at trace time (one compilation each).
  """
  return Mapped(make_step(pmean), devices, (0, 0, None), n_static=n_static,
                donate=(0,) if donate else ())


def _device_key(key: jax.Array) -> jax.Array:
  """The key folded with this device's index: a distinct random stream per device."""
  return jax.random.fold_in(key, jax.lax.axis_index(AXIS))


def data_parallel_sampler(sample_fn: Callable[[Any, Any], Any], devices: Sequence) -> Mapped:
  """Maps sample_fn(key, params) -> x over devices with a distinct key per device.

  Returns f(key, replicated_params) -> x with leaves [n_devices, ...] (`gather` them).
  """

  def per_device(key, params):
    return sample_fn(_device_key(key), params)

  return Mapped(per_device, devices, (None, 0))


def data_parallel_map(fn: Callable[[Any, Any, Any], Any], devices: Sequence,
                      distinct_keys: bool = True) -> Mapped:
  """Maps fn(params, batch, key) -> out over devices, for evaluation (no reduction).

  params: replicated; batch: sharded leaves [n_devices, ...]; key: one unreplicated key,
  folded with the device index when `distinct_keys` (e.g. Hutchinson probes), else the same
  on every device (for noise derived from global example ids, independent of the layout).
  Returns f(params, batch, key) -> out with leaves [n_devices, ...] (`gather` them).
  """

  def per_device(params, batch, key):
    return fn(params, batch, _device_key(key) if distinct_keys else key)

  return Mapped(per_device, devices, (0, 0, None))


def map_global_batch(p_fn: Callable, p_params: Any, batch: Any, key: jax.Array,
                     devices: Sequence) -> Any:
  """Runs p_fn = data_parallel_map(fn, devices) on one global host batch (leaves [B, ...],
  the same on every process): this process's rows, split over its devices. Returns numpy
  leaves [B, ...] of every process's outputs, in the batch's order."""
  rows = process_rows(len(jax.tree.leaves(batch)[0]))
  local = jax.tree.map(lambda x: np.asarray(x)[rows], batch)
  out = p_fn(p_params, put_sharded(shard(local, len(devices)), devices), key)
  return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), gather(out))


# ------------------------------------------------------ checkpoints written by all processes

def _one_per_process() -> NamedSharding:
  """Replicated over the first local device of every process."""
  first = [jax.local_devices(process_index=p)[0] for p in range(jax.process_count())]
  return NamedSharding(Mesh(np.array(first), ("process",)), PartitionSpec())


def to_process_replicated(tree: Any) -> Any:
  """Host-local leaves, equal on every process -> global arrays with one copy per process,
  the form a multi-process Orbax checkpoint saves (written once, by process 0). Unchanged
  with one process."""
  if not distributed.is_multiprocess():
    return tree
  sharding, device = _one_per_process(), jax.local_devices()[0]
  return jax.tree.map(lambda x: jax.make_array_from_single_device_arrays(
      np.shape(x), sharding, [jax.device_put(x, device)]), tree)


def process_replicated_like(tree: Any) -> Any:
  """Abstract leaves (jax.ShapeDtypeStruct) of `tree` placed as to_process_replicated places
  them (one process: on its first device). Orbax restores a checkpoint written by another
  number of processes only onto explicitly placed leaves."""
  sharding = _one_per_process()
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def from_process_replicated(tree: Any) -> Any:
  """Inverse of to_process_replicated: this process's copy of each leaf."""
  if not distributed.is_multiprocess():
    return tree
  return jax.tree.map(lambda x: x.addressable_data(0), tree)
