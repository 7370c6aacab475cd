"""Every module of the package imports in one process: no two commands define the same absl
flag at import time (a clash that only shows when pytest collects their tests together)."""
import importlib
import pkgutil

import msgm_jax


def test_every_module_imports_together():
  names = [m.name for m in pkgutil.walk_packages(msgm_jax.__path__, "msgm_jax.")]
  assert "msgm_jax.tools.bench" in names and "msgm_jax.main" in names
  for name in names:
    importlib.import_module(name)
