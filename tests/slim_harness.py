"""Runs the real TF-Slim nets in TF1 graphs, so tests compare kslim with slim itself.

`run_slim(build, inputs, ...)` builds a `tf_slim.nets` model in its own `tf.Graph`,
fills every variable with the fixtures' deterministic recipe (`recipe_value`), runs
it, and optionally saves a real checkpoint with `tf.compat.v1.train.Saver` (V1 or
V2). Nothing here touches the eager (Keras) state of the test process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import zlib
from typing import Callable

import numpy as np
import tensorflow as tf
from tensorflow.python.framework import ops

from kslim.compat import import_tf_slim


# tf_slim on TF 2.21 (its moved tf_keras and control_flow_ops modules aliased).
import_slim = import_tf_slim


@contextlib.contextmanager
def graph_building():
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


def recipe_value(name: str, shape) -> np.ndarray:
    """The fixtures' weight recipe: deterministic in the variable's name and shape
    (see tests/fixtures/README.md)."""
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    shape = tuple(int(s) for s in shape)
    leaf = name.rsplit("/", 1)[-1]
    if leaf in ("weights", "pointwise_weights", "kernel") and len(shape) >= 2:
        value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
    elif leaf == "depthwise_weights":
        value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:2]))
    elif leaf == "gamma":
        value = 1.0 + 0.1 * rng.standard_normal(shape)
    elif leaf == "moving_variance":
        value = rng.uniform(1.0, 1.5, shape)
    elif leaf == "global_step":
        return np.array(12345, dtype=np.int64)
    else:  # biases, beta, moving_mean, ...
        value = 0.1 * rng.standard_normal(shape)
    return value.astype(np.float32)


def recipe_inputs(batch: int, size: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """The fixtures' input: uniform [-1, 1), NHWC float32."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, [batch, size, size, channels]).astype(np.float32)


@dataclasses.dataclass
class SlimRun:
    """What a slim net produced: its output, end points, variables and checkpoint."""

    output: np.ndarray
    end_points: dict[str, np.ndarray]
    variables: list[tuple[str, tuple[int, ...]]]  # model variables, creation order
    checkpoint: str | None = None
    updated: dict[str, np.ndarray] | None = None  # variables after the update ops ran


def run_slim(build: Callable, inputs: np.ndarray, *, checkpoint: str | None = None,
             write_version: str = "V2", value_fn: Callable = recipe_value,
             run_update_ops: bool = False, extra_variables: dict | None = None) -> SlimRun:
    """Builds `build(images) -> (net, end_points)` in a fresh TF1 graph and runs it.

    Args:
        build: called inside the graph with a float32 placeholder; applies the
            net's arg_scope itself, e.g.
            `lambda x: with_scope(vgg.vgg_arg_scope(), vgg.vgg_16, x, 1000, is_training=False)`.
        inputs: NHWC float32 batch.
        checkpoint: if given, a Saver writes the variables to this prefix.
        write_version: "V1" (single file, the 2016 zoo format) or "V2".
        value_fn: `fn(name, shape) -> np.ndarray` filling each global variable.
        run_update_ops: run the UPDATE_OPS collection (batch-norm moving averages)
            with the forward pass and return the variables' values afterwards.
        extra_variables: `{name: value}` more variables to create and save (e.g.
            optimizer slots or moving-average shadows, as zoo checkpoints carry).
    """
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, inputs.shape, name="input")
        with graph_building():
            net, end_points = build(images)
        model_vars = tf.compat.v1.global_variables()
        extra = [tf.compat.v1.Variable(value, name=name, trainable=False)
                 for name, value in (extra_variables or {}).items()]
        update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        feeds = [tf.compat.v1.placeholder(v.dtype.base_dtype, v.shape) for v in model_vars]
        assign = tf.group(*[v.assign(p) for v, p in zip(model_vars, feeds)])
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(assign, {p: value_fn(v.op.name, v.shape.as_list())
                                 for v, p in zip(model_vars, feeds)})
            session.run([v.initializer for v in extra])
            fetches = [net, end_points, update_ops] if run_update_ops else [net, end_points]
            output, points = session.run(fetches, {images: inputs})[:2]
            updated = None
            if run_update_ops:
                updated = dict(zip([v.op.name for v in model_vars],
                                   session.run(model_vars)))
            path = None
            if checkpoint:
                version = {"V1": tf.compat.v1.train.SaverDef.V1,
                           "V2": tf.compat.v1.train.SaverDef.V2}[write_version]
                saver = tf.compat.v1.train.Saver(model_vars + extra, write_version=version)
                os.makedirs(os.path.dirname(checkpoint), exist_ok=True)
                path = saver.save(session, checkpoint, write_meta_graph=False,
                                  write_state=True)
    variables = [(v.op.name, tuple(v.shape.as_list())) for v in model_vars]
    return SlimRun(output, points, variables, path, updated)


def with_scope(arg_scope, net_fn, images, *args, **kwargs):
    """`with slim.arg_scope(arg_scope): return net_fn(images, *args, **kwargs)`."""
    slim = import_slim()
    with slim.arg_scope(arg_scope):
        return net_fn(images, *args, **kwargs)


def restore_into_slim(build: Callable, inputs: np.ndarray, checkpoint: str) -> np.ndarray:
    """Builds the slim net and restores `checkpoint` with a plain TF1 `Saver`."""
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, inputs.shape)
        with graph_building():
            net, _ = build(images)
        saver = tf.compat.v1.train.Saver(tf.compat.v1.global_variables())
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, checkpoint)
            return session.run(net, {images: inputs})


def tolerance(reference: np.ndarray) -> float:
    """The parity bound: 1e-4 * max(1, max|ref|)."""
    return 1e-4 * max(1.0, float(np.max(np.abs(reference))))


def assert_close(actual, reference, what: str = "output") -> float:
    """Asserts the parity bound; returns the max abs difference."""
    actual = np.asarray(actual)
    reference = np.asarray(reference)
    assert actual.shape == reference.shape, f"{what}: shape {actual.shape} != {reference.shape}"
    diff = float(np.max(np.abs(actual - reference))) if actual.size else 0.0
    bound = tolerance(reference)
    assert diff <= bound, f"{what}: max |kslim - slim| = {diff:.3g} > {bound:.3g}"
    return diff
