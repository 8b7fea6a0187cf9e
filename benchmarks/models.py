"""Inference and training-step throughput: kslim vs the slim TF1 graph vs keras.applications.

For each net, in one process on one machine: images/s at inference (batch 1 and 8) and
for a momentum-SGD training step (batch 8), for
- kslim: the model's compiled call, `model.forward_function()` (a concrete
  `tf.function`; with XLA, `jit_compile=True`);
  training through `model.train_on_batch` (the step `model.fit` runs);
- slim: the tf_slim net in a TF1 graph and session (`slim.learning.create_train_op`
  with `MomentumOptimizer` for training), the baseline users move from;
- slim (TF2 function), inference only: the same slim graph run by TF2's function
  runtime (`tf.compat.v1.wrap_function`), which separates what the runtime costs from
  what the graph costs;
- keras.applications: the same architecture where Keras has it.
The input is a device-resident random batch, so no input pipeline is measured here.
Nets tf_slim does not ship (mobilenet_v1/v2, inception_resnet_v2) need research/slim's
`nets/` on disk: pass `--research_slim DIR` (the folder that holds `nets/`).
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from typing import Callable

import numpy as np

from benchmarks._common import Row, compare
from kslim.compat import import_tf_slim as import_slim


@dataclasses.dataclass(frozen=True)
class Net:
    size: int
    classes: int
    slim_module: str        # module of the slim net function (tf_slim or research/slim)
    slim_fn: str
    slim_scope: str         # the arg-scope function (in slim_module)
    keras_app: str | None   # keras.applications class with the same architecture
    research: bool = False  # module comes from research/slim (needs --research_slim)


NETS = {
    "vgg_16": Net(224, 1000, "tf_slim.nets.vgg", "vgg_16", "vgg_arg_scope", "VGG16"),
    "resnet_v1_50": Net(224, 1000, "tf_slim.nets.resnet_v1", "resnet_v1_50",
                        "resnet_arg_scope", "ResNet50"),
    "inception_v3": Net(299, 1001, "tf_slim.nets.inception_v3", "inception_v3",
                        "inception_v3_arg_scope", "InceptionV3"),
    "mobilenet_v1": Net(224, 1001, "nets.mobilenet_v1", "mobilenet_v1",
                        "mobilenet_v1_arg_scope", "MobileNet", research=True),
    "mobilenet_v2": Net(224, 1001, "nets.mobilenet.mobilenet_v2", "mobilenet",
                        "training_scope", "MobileNetV2", research=True),
    "inception_resnet_v2": Net(299, 1001, "nets.inception_resnet_v2", "inception_resnet_v2",
                               "inception_resnet_v2_arg_scope", "InceptionResNetV2",
                               research=True),
}


def _images(batch: int, size: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)


def _labels(batch: int, classes: int) -> np.ndarray:
    return (np.arange(batch) % classes).astype(np.int64)


# -- kslim -------------------------------------------------------------------------------------

def kslim_infer(name: str, net: Net, batch: int, xla: bool = False) -> Callable[[], object]:
    import tensorflow as tf

    import kslim

    model = kslim.models.create_model(name, num_classes=net.classes)
    x = tf.constant(_images(batch, net.size))
    forward = model.forward_function(jit_compile=xla)
    return lambda: forward(x).numpy()


def kslim_train(name: str, net: Net, batch: int, xla: bool = False) -> Callable[[], object]:
    import keras
    import tensorflow as tf

    import kslim

    model = kslim.models.create_model(name, num_classes=net.classes)
    model.compile(optimizer=kslim.training.create_optimizer("momentum", 0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=xla)
    x, y = tf.constant(_images(batch, net.size)), tf.constant(_labels(batch, net.classes))
    return lambda: model.train_on_batch(x, y)


def kslim_forward_flops(name: str, net: Net) -> float:
    """Float operations of one image's forward pass (TF's profiler on kslim's graph,
    the same architecture as slim's)."""
    import tensorflow as tf

    import kslim

    model = kslim.models.create_model(name, num_classes=net.classes)
    spec = tf.TensorSpec([1, net.size, net.size, 3], tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph, options=options)
    return float(profile.total_float_ops)


# -- slim TF1 graph ----------------------------------------------------------------------------

def _slim_net(net: Net, images, is_training: bool):
    slim = import_slim()
    module = importlib.import_module(net.slim_module)
    if net.slim_scope == "training_scope":  # research/slim mobilenet: is_training via scope
        scope = module.training_scope(is_training=is_training, weight_decay=0.0)
        kwargs = {}
    else:
        scope = getattr(module, net.slim_scope)(weight_decay=0.0)
        kwargs = {"is_training": is_training}
    with slim.arg_scope(scope):
        return getattr(module, net.slim_fn)(images, num_classes=net.classes, **kwargs)


def slim_infer(net: Net, batch: int) -> Callable[[], object]:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.Variable(_images(batch, net.size), trainable=False)
        logits, _ = _slim_net(net, images, is_training=False)
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())
    return lambda: session.run(logits)


def slim_infer_tf2(net: Net, batch: int) -> Callable[[], object]:
    """slim's inference graph run by TF2's function runtime instead of a TF1 Session
    (`tf.compat.v1.wrap_function`): the runtime kslim's models run in. Set against the
    Session row, it shows what the runtime alone costs; against kslim, the graphs alone."""
    import tensorflow as tf

    spec = tf.TensorSpec([batch, net.size, net.size, 3], tf.float32)
    forward = tf.compat.v1.wrap_function(lambda images: _slim_net(net, images, False)[0], [spec])
    x = tf.constant(_images(batch, net.size))
    return lambda: forward(x).numpy()


def slim_train(net: Net, batch: int) -> Callable[[], object]:
    import tensorflow as tf

    slim = import_slim()
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.Variable(_images(batch, net.size), trainable=False)
        labels = tf.constant(_labels(batch, net.classes))
        logits, end_points = _slim_net(net, images, is_training=True)
        logits = tf.reshape(logits, [batch, -1])  # tf_slim's resnets keep [N, 1, 1, C]
        loss = tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, logits)
        if "AuxLogits" in end_points:  # train_image_classifier.py's aux loss
            aux = tf.reshape(end_points["AuxLogits"], [batch, -1])
            loss += 0.4 * tf.compat.v1.losses.sparse_softmax_cross_entropy(labels, aux)
        optimizer = tf.compat.v1.train.MomentumOptimizer(0.01, 0.9)
        train_op = slim.learning.create_train_op(loss, optimizer)
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())
    return lambda: session.run(train_op)


# -- keras.applications ------------------------------------------------------------------------

def keras_infer(net: Net, batch: int) -> Callable[[], object]:
    import keras
    import tensorflow as tf

    model = getattr(keras.applications, net.keras_app)(
        weights=None, input_shape=(net.size, net.size, 3), classes=net.classes,
        classifier_activation=None)
    x = tf.constant(_images(batch, net.size))
    forward = tf.function(lambda images: model(images, training=False))
    return lambda: forward(x).numpy()


def keras_train(net: Net, batch: int) -> Callable[[], object]:
    import keras
    import tensorflow as tf

    model = getattr(keras.applications, net.keras_app)(
        weights=None, input_shape=(net.size, net.size, 3), classes=net.classes,
        classifier_activation=None)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = tf.constant(_images(batch, net.size)), tf.constant(_labels(batch, net.classes))
    return lambda: model.train_on_batch(x, y)


# -- driver ------------------------------------------------------------------------------------

def run(nets: list[str], batches: tuple[int, ...] = (1, 8), train_batch: int = 8,
        seconds: float = 3.0, xla: bool = True, research_slim: str | None = None,
        log=print) -> list[Row]:
    """Measures every (net, mode, batch) for each implementation; returns the rows.

    The implementations of one (net, mode, batch) are built side by side and timed in
    interleaved rounds (`compare`), so a machine that speeds up or slows down during
    the run favours none of them.
    """
    import gc

    import keras

    if research_slim:
        sys.path.insert(0, research_slim)
    rows: list[Row] = []
    for name in nets:
        net = NETS[name]
        has_slim = not net.research or research_slim is not None
        flops = kslim_forward_flops(name, net)
        log(f"{name}: {flops / 1e9:.2f} GFLOPs per image (forward)")
        cases = [("infer", batch) for batch in batches] + [("train", train_batch)]
        for mode, batch in cases:
            makers = {"kslim": lambda: (kslim_infer if mode == "infer" else kslim_train)(
                name, net, batch)}
            if xla:
                makers["kslim+xla"] = lambda: (kslim_infer if mode == "infer" else
                                               kslim_train)(name, net, batch, xla=True)
            if has_slim:
                makers["slim"] = lambda: (slim_infer if mode == "infer" else slim_train)(
                    net, batch)
                if mode == "infer":
                    makers["slim (TF2 function)"] = lambda: slim_infer_tf2(net, batch)
            if net.keras_app:
                makers["keras.applications"] = lambda: (
                    keras_infer if mode == "infer" else keras_train)(net, batch)
            steps, failed = {}, {}
            for impl, make in makers.items():
                try:
                    steps[impl] = make()
                except Exception as e:  # a failing baseline is reported, not fatal
                    failed[impl] = e
            rates = compare(steps, batch, seconds)
            for impl in makers:
                if impl in failed:
                    note = f"failed: {type(failed[impl]).__name__}"
                    log(f"  {name} {mode} b{batch} {impl}: {note}: {failed[impl]}")
                    rows.append(Row(name, mode, batch, impl, float("nan"), None, note))
                    continue
                gflops = rates[impl] * flops * (3 if mode == "train" else 1) / 1e9
                rows.append(Row(name, mode, batch, impl, rates[impl], gflops))
                log(f"  {name} {mode} b{batch} {impl}: {rates[impl]:.2f} img/s "
                    f"({gflops:.1f} GFLOP/s)")
            del steps
            keras.backend.clear_session()
            gc.collect()
    return rows
