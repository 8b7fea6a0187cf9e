"""Helpers for the ResNet / AlexNet / OverFeat parity tests.

`run_slim_fast` is `slim_harness.run_slim` (same recipe values, same real
`tf.compat.v1.train.Saver` checkpoint) with one addition:
- `extra_fetches`: graph tensors fetched by name with the outputs (`run.extras`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import tensorflow as tf

from slim_harness import SlimRun, run_slim

_EXTRA = "__extra__/"  # end-point key prefix carrying the extra fetches through run_slim


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
