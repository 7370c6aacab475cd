"""Test session setup: 8 fake CPU devices so multi-device paths run on a laptop.

This must happen before JAX initialises its backends, hence at import time of conftest.
"""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402  pylint: disable=wrong-import-position
import pytest  # noqa: E402  pylint: disable=wrong-import-position

jax.config.update("jax_num_cpu_devices", 8)


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory):
  """(workdir, DataSpec, Classifier, evaluation record) of a tiny digits classifier trained once
  per session (tests.helpers.train_tiny_classifier), for the tests that need one."""
  from tests.helpers import train_tiny_classifier  # pylint: disable=import-outside-toplevel
  workdir = str(tmp_path_factory.mktemp("tiny_classifier"))
  return (workdir, *train_tiny_classifier(workdir))
