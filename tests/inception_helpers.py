"""A faster slim reference for the Inception tests: one TF1 graph per case that holds
the net in eval mode and (sharing its variables) in training mode, filled with the
fixtures' weight recipe in a single session run, saved with a real `Saver`.

`slim_harness.run_slim` loads the variables one session run each (about 25 ms a
variable, 10 s for inception_v3); this runs the same recipe and checkpoint in one.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from slim_harness import recipe_value


@dataclasses.dataclass
class SlimCase:
    """What the slim net produced for one input batch."""

    output: np.ndarray  # eval-mode logits (or features)
    end_points: dict[str, np.ndarray]
    variables: list[tuple[str, tuple[int, ...]]]  # model variables, creation order
    checkpoint: str
    train_output: np.ndarray | None = None  # training mode (is_training=True)
    train_end_points: dict[str, np.ndarray] | None = None
    updated: dict[str, np.ndarray] | None = None  # variables after the update ops ran


def run_slim_case(build: Callable, inputs: np.ndarray, checkpoint: str, *,
                  training: bool = False) -> SlimCase:
    """Runs `build(images, is_training, reuse) -> (net, end_points)` in a fresh graph.

    The eval net is built first; with `training`, a second copy with
    `is_training=True` and `reuse=True` shares its variables, and its batch-norm
    UPDATE_OPS run once with it. The checkpoint holds the recipe values (written
    before any update).
    """
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, inputs.shape, name="input")
        net, end_points = build(images, False, None)
        model_vars = tf.compat.v1.global_variables()
        train_fetches = None
        if training:
            train_net, train_points = build(images, True, True)
            update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
            assert update_ops, "the training-mode net made no batch-norm update ops"
            train_fetches = [train_net, train_points, update_ops]
        assert tf.compat.v1.global_variables() == model_vars, "training copy made variables"
        feeds = {v.initial_value: recipe_value(v.op.name, v.shape.as_list())
                 for v in model_vars}
        with tf.compat.v1.Session(graph=graph) as session:
            session.run([v.initializer for v in model_vars], feeds)
            saver = tf.compat.v1.train.Saver(model_vars)
            os.makedirs(os.path.dirname(checkpoint), exist_ok=True)
            path = saver.save(session, checkpoint, write_meta_graph=False)
            output, points = session.run([net, end_points], {images: inputs})
            case = SlimCase(output, points, [(v.op.name, tuple(v.shape.as_list()))
                                             for v in model_vars], path)
            if training:
                train_output, train_points_value, _ = session.run(
                    train_fetches, {images: inputs})
                case.train_output = train_output
                case.train_end_points = train_points_value
                case.updated = dict(zip([v.op.name for v in model_vars],
                                        session.run(model_vars)))
    return case
