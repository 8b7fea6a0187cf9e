"""Importing the original `tf_slim` next to kslim, on the TensorFlow kslim runs on.

For comparing with slim, or running old slim code side by side while moving it: on
TF 2.16+ `tf_slim` 1.1 imports, but its batch norm looks for `tf_keras.legacy_tf_layers`
(now `tf_keras.src.legacy_tf_layers`) and its `tfexample_decoder` for
`control_flow_ops.case`/`cond` (now `tf.compat.v1.case`/`cond`).
"""

from __future__ import annotations

import importlib
import sys

_LEGACY_LAYERS = ("base", "core", "convolutional", "normalization", "pooling",
                  "variable_scope_shim")


def import_tf_slim():
    """Returns the `tf_slim` module, after aliasing the modules it looks for where
    TensorFlow and tf_keras moved them. Needs the `tf-slim` and `tf-keras` packages
    (`pip install "kslim[test]"`)."""
    if "tf_keras.legacy_tf_layers" not in sys.modules:
        sys.modules["tf_keras.legacy_tf_layers"] = importlib.import_module(
            "tf_keras.src.legacy_tf_layers")
        for sub in _LEGACY_LAYERS:
            try:
                module = importlib.import_module(f"tf_keras.src.legacy_tf_layers.{sub}")
            except ImportError:
                continue
            sys.modules[f"tf_keras.legacy_tf_layers.{sub}"] = module
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_ops

    for name in ("case", "cond"):
        if not hasattr(control_flow_ops, name):
            setattr(control_flow_ops, name, getattr(tf.compat.v1, name))
    import tf_slim

    return tf_slim
