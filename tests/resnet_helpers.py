"""Helpers for the ResNet / AlexNet / OverFeat parity tests.

`run_slim_fast` is `slim_harness.run_slim` (same recipe values, same real
`tf.compat.v1.train.Saver` checkpoint) with two additions:
- while tf_slim builds its graph, `executing_eagerly_outside_functions()` answers False
  without walking the context stack (see `_graph_building`): 4x faster graphs for the
  1000 variables of resnet_200;
- `extra_fetches`: graph tensors fetched by name with the outputs (`run.extras`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import ops

from slim_harness import SlimRun, run_slim

_EXTRA = "__extra__/"  # end-point key prefix carrying the extra fetches through run_slim


@contextlib.contextmanager
def _graph_building():
    """Inside a plain `tf.Graph().as_default()` (no tf.function), TF's
    `executing_eagerly_outside_functions()` is False; it is called through
    `Variable.__hash__` for every existing variable each time tf_keras's legacy layers
    (tf_slim's batch_norm/conv2d) add a weight, quadratic in the number of variables
    and most of the graph-building time of a 200-layer net. This answers the same
    False directly while the graph is built (the function is restored afterwards)."""
    v1 = tf.compat.v1
    original = (ops.executing_eagerly_outside_functions,
                v1.executing_eagerly_outside_functions)
    assert not original[0](), "only for building a TF1 graph"

    def in_graph() -> bool:
        return False

    ops.executing_eagerly_outside_functions = in_graph
    v1.executing_eagerly_outside_functions = in_graph
    try:
        yield
    finally:
        ops.executing_eagerly_outside_functions = original[0]
        v1.executing_eagerly_outside_functions = original[1]


@dataclasses.dataclass
class FastRun(SlimRun):
    """A `SlimRun` plus the values of extra graph tensors fetched by name."""

    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def run_slim_fast(build: Callable, inputs: np.ndarray, *, checkpoint: str | None = None,
                  run_update_ops: bool = False,
                  extra_fetches: dict[str, str] | None = None) -> FastRun:
    """`slim_harness.run_slim(build, inputs, ...)` with the fast graph building.

    `extra_fetches` maps keys to graph tensor names (e.g. `"resnet_v2_50/pool5:0"`)
    whose values come back in `run.extras` (not in `run.end_points`).
    """

    def build_fast(images):
        with _graph_building():
            net, end_points = build(images)
        end_points = dict(end_points)
        for key, name in (extra_fetches or {}).items():
            end_points[_EXTRA + key] = images.graph.get_tensor_by_name(name)
        return net, end_points

    run = run_slim(build_fast, inputs, checkpoint=checkpoint, run_update_ops=run_update_ops)
    extras = {key[len(_EXTRA):]: run.end_points.pop(key)
              for key in list(run.end_points) if key.startswith(_EXTRA)}
    fields = {field.name: getattr(run, field.name) for field in dataclasses.fields(run)}
    return FastRun(**fields, extras=extras)


def param_count(run: SlimRun) -> int:
    """The number of scalars in the slim net's variables."""
    return int(sum(np.prod(shape, dtype=np.int64) for _, shape in run.variables))


def bounded_bottleneck(inputs, depth, depth_bottleneck, stride, rate=1,
                       outputs_collections=None, scope=None):
    """research/slim's `resnet_v1.bottleneck(..., use_bounded_activations=True)`, which
    tf_slim 1.1.0 lacks, from tf_slim's own layers: a relu6 projection shortcut, the
    residual clipped to [-6, 6] and a relu6 output."""
    import tf_slim as slim
    from tf_slim.nets import resnet_utils

    with tf.compat.v1.variable_scope(scope, "bottleneck_v1", [inputs]) as sc:
        if depth == inputs.shape[-1]:
            shortcut = resnet_utils.subsample(inputs, stride, "shortcut")
        else:
            shortcut = slim.conv2d(inputs, depth, [1, 1], stride=stride,
                                   activation_fn=tf.nn.relu6, scope="shortcut")
        residual = slim.conv2d(inputs, depth_bottleneck, [1, 1], scope="conv1")
        residual = resnet_utils.conv2d_same(residual, depth_bottleneck, 3, stride,
                                            rate=rate, scope="conv2")
        residual = slim.conv2d(residual, depth, [1, 1], activation_fn=None, scope="conv3")
        output = tf.nn.relu6(shortcut + tf.clip_by_value(residual, -6.0, 6.0))
        return slim.utils.collect_named_outputs(outputs_collections, sc.name, output)
