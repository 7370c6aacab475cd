"""msgm_jax/runtime/distributed.py's guard against jax 0.12's hang in cached multi-process CPU
programs (the processes themselves are tested in tests/test_multihost.py; the hang by
tests/runtime/test_preemption.py's rerun, which loads its programs from a shared cache)."""

import jax
import pytest

from msgm_jax.runtime import distributed


@pytest.mark.parametrize("version, backend, processes, hangs", [
    ((0, 12), "cpu", 2, True),
    ((0, 13), "cpu", 8, True),   # no fixed version known yet
    ((0, 11), "cpu", 2, False),  # measured: 0.11.2 runs the cached program
    ((0, 10), "cpu", 2, False),
    ((0, 12), "cpu", 1, False),  # one process: no cross-process collective
    ((0, 12), "gpu", 2, False),
    ((0, 12), "tpu", 2, False),
])
def test_which_runs_would_hang(version, backend, processes, hangs):
  assert distributed.cached_cpu_collectives_hang(version, backend, processes) is hangs


def test_a_fixed_version_ends_the_range(monkeypatch):
  monkeypatch.setattr(distributed, "CACHED_CPU_COLLECTIVES_HANG", ((0, 12), (0, 14)))
  assert distributed.cached_cpu_collectives_hang((0, 13), "cpu", 2)
  assert not distributed.cached_cpu_collectives_hang((0, 14), "cpu", 2)


@pytest.mark.parametrize("version, off", [((0, 12), True), ((0, 11), False)])
def test_the_cache_is_turned_off_only_where_it_would_hang(monkeypatch, tmp_path, version, off):
  monkeypatch.setattr(distributed, "_jax_version", lambda: version)
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
  before = jax.config.jax_enable_compilation_cache, jax.config.jax_compilation_cache_dir
  jax.config.update("jax_compilation_cache_dir", str(tmp_path))
  try:
    distributed._no_persistent_cache_for_cpu_collectives()  # pylint: disable=protected-access
    assert jax.config.jax_enable_compilation_cache is not off
  finally:
    jax.config.update("jax_enable_compilation_cache", before[0])
    jax.config.update("jax_compilation_cache_dir", before[1])


def test_without_a_cache_directory_nothing_changes(monkeypatch):
  monkeypatch.setattr(distributed, "_jax_version", lambda: (0, 12))
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  assert jax.config.jax_compilation_cache_dir is None
  distributed._no_persistent_cache_for_cpu_collectives()  # pylint: disable=protected-access
  assert jax.config.jax_enable_compilation_cache
