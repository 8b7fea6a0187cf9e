"""Helpers for the training tests: tiny slim-style nets, the tf_slim LeNet, CLI runners."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from kslim.models import SlimModel
from kslim.models._layers import Conv2d, FullyConnected

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = os.path.join(REPO, "tests", "fixtures", "images")
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


class TinyNet(SlimModel):
    """A small slim-style net with BatchNorm and an optional aux head, for fast tests:
    conv1 (BN) -> conv2 (BN) -> global pool -> logits; AuxLogits from conv1."""

    slim_name = "tiny"
    head_scopes = ("logits", "AuxLogits")
    aux_output = "AuxLogits"

    def __init__(self, num_classes=4, aux=False, weight_decay=0.0, name="Tiny", **kwargs):
        super().__init__(num_classes=num_classes, name=name, **kwargs)
        bn = {"decay": 0.9, "epsilon": 1e-3, "scale": True}
        self.aux = aux
        self.conv1 = Conv2d(4, 3, batch_norm=bn, weight_decay=weight_decay, name="conv1")
        self.conv2 = Conv2d(6, 3, batch_norm=bn, weight_decay=weight_decay, name="conv2")
        self.logits = FullyConnected(num_classes, activation_fn=None,
                                     weight_decay=weight_decay, name="logits")
        if aux:
            self.aux_logits = FullyConnected(num_classes, activation_fn=None, name="AuxLogits")

    def forward(self, x, training=None):
        end_points = {}
        x = end_points["conv1"] = self.conv1(x, training=training)
        if self.aux:
            end_points["AuxLogits"] = self.aux_logits(tf.reduce_mean(x, axis=[1, 2]))
        x = end_points["conv2"] = self.conv2(x, training=training)
        x = tf.reduce_mean(x, axis=[1, 2])
        x = end_points["Logits"] = self.logits(x)
        return x, end_points


def tiny_net(**kwargs) -> TinyNet:
    return TinyNet(**kwargs).build_for((8, 8, 3))


def tiny_data(count=16, num_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (count, 8, 8, 3)).astype(np.float32)
    labels = rng.integers(0, num_classes, count).astype(np.int64)
    return images, labels


def snapshot(model) -> dict[str, np.ndarray]:
    from kslim import compat

    return {name: np.array(v.numpy()) for name, v in compat.slim_variables(model).items()}


def run_cli(*argv: str) -> tuple[int, str, str]:
    """`kslim ARGV...` in this process; returns (exit code, stdout, stderr)."""
    from kslim.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as e:  # argparse errors
            code = e.code
    return int(code or 0), out.getvalue(), err.getvalue()


def kslim_process(args, env=None, **popen) -> subprocess.Popen:
    """`python -m kslim ARGS...` as a subprocess (stdout and stderr merged)."""
    return subprocess.Popen([sys.executable, "-m", "kslim", *args],
                            env={**os.environ, **QUIET_ENV, **(env or {})},
                            stdout=popen.pop("stdout", subprocess.PIPE),
                            stderr=subprocess.STDOUT, text=True, cwd=REPO, **popen)


def slim_lenet(images, num_classes=10):
    """research/slim `nets/lenet.py`, written with tf_slim layers (tf_slim ships no
    lenet): the structure kslim's LeNet mirrors, in a TF1 graph."""
    from slim_harness import import_slim

    slim = import_slim()
    with slim.arg_scope([slim.conv2d, slim.fully_connected],
                        weights_regularizer=slim.l2_regularizer(0.0),
                        weights_initializer=tf.compat.v1.truncated_normal_initializer(
                            stddev=0.1),
                        activation_fn=tf.nn.relu):
        with tf.compat.v1.variable_scope("LeNet", "LeNet", [images]):
            net = slim.conv2d(images, 32, [5, 5], scope="conv1")
            net = slim.max_pool2d(net, [2, 2], 2, scope="pool1")
            net = slim.conv2d(net, 64, [5, 5], scope="conv2")
            net = slim.max_pool2d(net, [2, 2], 2, scope="pool2")
            net = slim.flatten(net)
            net = slim.fully_connected(net, 1024, scope="fc3")
            net = slim.dropout(net, 0.5, is_training=False, scope="dropout3")
            logits = slim.fully_connected(net, num_classes, activation_fn=None, scope="fc4")
    return logits, {}


def digits_batch(count=8, split="test"):
    """The first `count` preprocessed images and labels of a digits split (lenet)."""
    import kslim

    data = kslim.data.get_split("digits", split)
    ds = kslim.data.input_pipeline(data, count, "lenet", is_training=False)
    images, labels = next(iter(ds))
    return images.numpy(), labels.numpy()


def event_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """`{tag: [(step, value)]}` of the scalar summaries in a folder's event files."""
    from tensorflow.core.util import event_pb2

    scalars: dict[str, list[tuple[int, float]]] = {}
    for name in sorted(os.listdir(folder)):
        if not name.startswith("events.out.tfevents"):
            continue
        for record in tf.data.TFRecordDataset(os.path.join(folder, name)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") \
                    else value.simple_value
                scalars.setdefault(value.tag, []).append((event.step, number))
    return scalars
