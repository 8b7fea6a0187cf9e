"""Test setup shared by every test module.

- Two logical CPU devices, so `tf.distribute.MirroredStrategy` tests run on a CPU-only
  machine (this must happen before TensorFlow initializes its devices).
- `KSLIM_HOME` points into the session's temporary folder: tests never write to (or
  read a cache from) the user's home, and never download.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))  # tests import slim_harness

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)


@pytest.fixture(scope="session", autouse=True)
def kslim_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("kslim_home")
    old = os.environ.get("KSLIM_HOME")
    os.environ["KSLIM_HOME"] = str(home)
    os.environ.pop("KSLIM_ZOO_MIRROR", None)
    yield home
    if old is None:
        os.environ.pop("KSLIM_HOME", None)
    else:
        os.environ["KSLIM_HOME"] = old


@pytest.fixture(scope="session")
def slim():
    """The tf_slim package (imported with the TF 2.21 aliases)."""
    from slim_harness import import_slim

    return import_slim()
