"""SSD throughput: kslim's `ssd_300_vgg` against SSD-Tensorflow's own graph.

    python -m benchmarks.ssd --ssd_tensorflow /path/to/SSD-Tensorflow [--seconds 3]

In one process on one machine, images/s of
- inference at batch 1 and 8: kslim's `model.forward_function()` (the call traced
  once) against SSD-Tensorflow's `SSDNet.net(is_training=False)` in a TF1 graph run by
  `Session.run` (NHWC, its `ssd_arg_scope`), both returning the raw logits and box
  offsets of every layer;
- a training step (batch 8): kslim's `model.train_on_batch` with the SSD-300 loss
  (`kslim.detection.ssd_losses` through the model's `compute_loss`, the step
  `kslim train` runs) against SSD-Tensorflow's `ssd_losses` + slim's L2 regularisation
  + `slim.learning.create_train_op`, momentum SGD in both, weight decay 0.0005, the
  same encoded targets (fed as constants: the input pipeline is not measured).

SSD-Tensorflow is not part of kslim: point `--ssd_tensorflow` at a checkout of
balancap/SSD-Tensorflow (the folder holding `nets/` and `tf_extended/`). Its code
imports `tf.contrib` (TF1); the benchmark maps the few `tf.contrib` names it uses onto
tf_slim and `tf.compat.v1` while importing it, and changes none of its files.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import sys
import types
from typing import Callable

import numpy as np

from benchmarks._common import HERE, command_line, compare, fmt, machine

SIZE = 300
NUM_CLASSES = 21
WEIGHT_DECAY = 0.0005
LEARNING_RATE = 1e-4


def _images(batch: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.uniform(-1.0, 1.0, (batch, SIZE, SIZE, 3)) * 100.0).astype(np.float32)


def _ground_truth(batch: int):
    """Three boxes per image, fixed by a seed: `[(labels [3], bboxes [3, 4])]`."""
    rng = np.random.default_rng(1)
    truth = []
    for _ in range(batch):
        corner = rng.uniform(0.0, 0.6, (3, 2))
        size = rng.uniform(0.1, 0.4, (3, 2))
        boxes = np.concatenate([corner, corner + size], axis=1).astype(np.float32)
        truth.append((rng.integers(1, NUM_CLASSES, 3).astype(np.int64), boxes))
    return truth


def flat_targets(model, batch: int) -> dict[str, np.ndarray]:
    """The encoded ground truth, `[B, N, ...]` (`kslim.detection.encode`: SSD-Tensorflow's
    matching, equal to its fixtures)."""
    import kslim

    anchors = model.anchors()
    encoded = [kslim.detection.encode(labels, boxes, anchors, NUM_CLASSES)
               for labels, boxes in _ground_truth(batch)]
    return {key: np.stack([e[i].numpy() for e in encoded])
            for i, key in enumerate(("labels", "localisations", "scores"))}


# -- SSD-Tensorflow ----------------------------------------------------------------------------

def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    module.__path__ = []  # a package, so `from tensorflow.contrib.x import y` resolves
    return module


def import_ssd_tensorflow(root: str):
    """SSD-Tensorflow's `nets.ssd_vgg_300`, imported from `root` with `tf.contrib`
    mapped onto tf_slim (TF1 names from `tf.compat.v1`)."""
    import tensorflow as tf

    from kslim.compat import import_tf_slim

    slim = import_tf_slim()
    if not os.path.isfile(os.path.join(root, "nets", "ssd_vgg_300.py")):
        raise SystemExit(f"--ssd_tensorflow {root!r} has no nets/ssd_vgg_300.py; give the "
                         "folder of a balancap/SSD-Tensorflow checkout")
    initializers = importlib.import_module("tf_slim.layers.initializers")
    contrib = _module("tensorflow.contrib", slim=slim,
                      layers=_module("contrib.layers",
                                     xavier_initializer=initializers.xavier_initializer))
    shims = {
        "tensorflow.contrib": contrib,
        "tensorflow.contrib.framework": _module("f"),
        "tensorflow.contrib.framework.python": _module("fp"),
        "tensorflow.contrib.framework.python.ops": _module(
            "fpo", add_arg_scope=slim.add_arg_scope,
            variables=importlib.import_module("tf_slim.ops.variables")),
        "tensorflow.contrib.layers": _module("l"),
        "tensorflow.contrib.layers.python": _module("lp"),
        "tensorflow.contrib.layers.python.layers": _module(
            "lpl", initializers=initializers,
            utils=importlib.import_module("tf_slim.layers.utils")),
        "tensorflow.contrib.metrics": _module("m"),
        "tensorflow.contrib.metrics.python": _module("mp"),
        "tensorflow.contrib.metrics.python.ops": _module("mpo", set_ops=None),
    }

    def dropout(x, rate=0.5, training=False, **_):  # tf.layers.dropout (Keras 3 has none)
        return tf.nn.dropout(x, rate=rate) if training else x

    # `import tensorflow as tf` inside its files must give the TF1 API plus tf.contrib.
    tf1 = _module("tensorflow")
    tf1.__getattr__ = lambda name: getattr(tf.compat.v1, name)
    tf1.contrib = contrib
    tf1.layers = types.SimpleNamespace(dropout=dropout)
    real = sys.modules["tensorflow"]
    saved = {name: sys.modules.get(name) for name in shims}
    sys.modules.update(shims)
    sys.modules["tensorflow"] = tf1
    sys.path.insert(0, root)
    try:
        return importlib.import_module("nets.ssd_vgg_300")
    finally:
        sys.modules["tensorflow"] = real
        sys.path.remove(root)
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _ssd_tf_net(ssd, images, is_training: bool):
    from kslim.compat import import_tf_slim

    slim = import_tf_slim()
    net = ssd.SSDNet(ssd.SSDNet.default_params._replace(num_classes=NUM_CLASSES))
    with slim.arg_scope(net.arg_scope(weight_decay=WEIGHT_DECAY, data_format="NHWC")):
        predictions, localisations, logits, _ = net.net(images, is_training=is_training)
    return net, logits, localisations


def ssd_tf_infer(ssd, batch: int) -> Callable[[], object]:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.Variable(_images(batch), trainable=False)
        _, logits, localisations = _ssd_tf_net(ssd, images, is_training=False)
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())
    fetches = [logits, localisations]
    return lambda: session.run(fetches)


def ssd_tf_infer_tf2(ssd, batch: int) -> Callable[[], object]:
    """SSD-Tensorflow's inference graph run by TF2's function runtime
    (`tf.compat.v1.wrap_function`) instead of a Session: set against the Session row it
    shows what the runtime alone costs, against kslim what the graphs alone cost."""
    import tensorflow as tf

    spec = tf.TensorSpec([batch, SIZE, SIZE, 3], tf.float32)
    forward = tf.compat.v1.wrap_function(
        lambda images: _ssd_tf_net(ssd, images, is_training=False)[1:], [spec])
    x = tf.constant(_images(batch))
    return lambda: [t.numpy() for group in forward(x) for t in group]


def ssd_tf_train(ssd, batch: int, targets: dict[str, np.ndarray]) -> Callable[[], object]:
    import tensorflow as tf

    from kslim.compat import import_tf_slim

    slim = import_tf_slim()
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.Variable(_images(batch), trainable=False)
        net, logits, localisations = _ssd_tf_net(ssd, images, is_training=True)
        # The flat targets back to SSD-Tensorflow's per-layer [B, H, W, A, ...] lists.
        layered = {key: [] for key in targets}
        start = 0
        for layer in logits:
            shape = layer.shape.as_list()[1:4]
            count = int(np.prod(shape))
            for key, value in targets.items():
                part = value[:, start:start + count]
                layered[key].append(tf.constant(part.reshape([batch, *shape, *part.shape[2:]])))
            start += count
        net.losses(logits, localisations, layered["labels"], layered["localisations"],
                   layered["scores"], match_threshold=0.5, negative_ratio=3.0, alpha=1.0)
        loss = tf.compat.v1.losses.get_total_loss()  # + slim's L2 regularisation
        optimizer = tf.compat.v1.train.MomentumOptimizer(LEARNING_RATE, 0.9)
        train_op = slim.learning.create_train_op(loss, optimizer)
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())
    return lambda: session.run(train_op)


# -- kslim -------------------------------------------------------------------------------------

def _kslim_model():
    import kslim

    return kslim.models.create_model("ssd_300_vgg", num_classes=NUM_CLASSES,
                                      weight_decay=WEIGHT_DECAY)


def kslim_infer(batch: int, xla: bool = False) -> Callable[[], object]:
    import tensorflow as tf

    model = _kslim_model()
    forward = model.forward_function(jit_compile=xla)
    x = tf.constant(_images(batch))

    def step():
        out = forward(x)
        return out["logits"].numpy(), out["localisations"].numpy()

    return step


def kslim_train(batch: int, targets: dict[str, np.ndarray] | None = None):
    import tensorflow as tf

    import kslim
    from kslim.detection._train import ssd_compile_options

    model = _kslim_model()
    model.compile(optimizer=kslim.training.create_optimizer("momentum", LEARNING_RATE),
                  **ssd_compile_options(model))
    if targets is None:
        targets = flat_targets(model, batch)
    x = tf.constant(_images(batch))
    y = {key: tf.constant(value) for key, value in targets.items()}
    return (lambda: model.train_on_batch(x, y)), targets


# -- driver ------------------------------------------------------------------------------------

def run(ssd_tensorflow: str, batches=(1, 8), train_batch: int = 8, seconds: float = 3.0,
        xla: bool = False, log=print) -> list[tuple]:
    """`[(mode, batch, impl, images/s)]` for every case; implementations of a case are
    timed in interleaved rounds (`benchmarks._common.compare`)."""
    import gc

    import keras

    ssd = import_ssd_tensorflow(ssd_tensorflow)
    rows = []
    for mode, batch in [("infer", b) for b in batches] + [("train", train_batch)]:
        if mode == "infer":
            steps = {"kslim": kslim_infer(batch), "SSD-Tensorflow": ssd_tf_infer(ssd, batch),
                     "SSD-Tensorflow (TF2 function)": ssd_tf_infer_tf2(ssd, batch)}
            if xla:
                steps["kslim+XLA"] = kslim_infer(batch, xla=True)
        else:
            step, targets = kslim_train(batch)
            steps = {"kslim": step, "SSD-Tensorflow": ssd_tf_train(ssd, batch, targets)}
        rates = compare(steps, batch, seconds)
        for impl, rate in rates.items():
            rows.append((mode, batch, impl, rate))
            log(f"  ssd_300_vgg {mode} b{batch} {impl}: {rate:.2f} img/s")
        del steps
        keras.backend.clear_session()
        gc.collect()
    return rows


def table(rows) -> list[str]:
    impls = ["kslim", "SSD-Tensorflow", "SSD-Tensorflow (TF2 function)", "kslim+XLA"]
    impls = [i for i in impls if any(r[2] == i for r in rows)]
    titles = {"SSD-Tensorflow": "SSD-Tensorflow (TF1 Session)"}
    lines = ["| mode | batch | " + " | ".join(titles.get(i, i) for i in impls)
             + " | kslim / SSD-Tensorflow | kslim / SSD-Tensorflow as TF2 function |",
             "|---|---|" + "---|" * (len(impls) + 2)]
    for mode, batch in dict.fromkeys((r[0], r[1]) for r in rows):
        by = {r[2]: r[3] for r in rows if (r[0], r[1]) == (mode, batch)}

        def ratio(a, b):
            return f"{by[a] / by[b]:.2f}x" if by.get(a) and by.get(b) else "-"

        lines.append(f"| {mode} | {batch} | " + " | ".join(fmt(by.get(i)) for i in impls)
                     + f" | {ratio('kslim', 'SSD-Tensorflow')} | "
                     f"{ratio('kslim', 'SSD-Tensorflow (TF2 function)')} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ssd", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ssd_tensorflow", default=os.environ.get("SSD_TENSORFLOW"),
                        required=os.environ.get("SSD_TENSORFLOW") is None,
                        help="folder of a balancap/SSD-Tensorflow checkout (holds nets/)")
    parser.add_argument("--batches", default="1,8", help="inference batch sizes")
    parser.add_argument("--train_batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0, help="per timing round")
    parser.add_argument("--xla", action="store_true", help="also time kslim with XLA")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS_ssd.md"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    facts = machine()
    rows = run(args.ssd_tensorflow, tuple(int(b) for b in args.batches.split(",")),
               args.train_batch, args.seconds, xla=args.xla)
    lines = [f"# SSD benchmark: kslim ssd_300_vgg vs SSD-Tensorflow "
             f"({datetime.date.today().isoformat()})", "",
             f"Command: `python -m benchmarks.ssd {command_line(argv or sys.argv[1:])}`", "",
             f"Machine: {facts['cpu']}, {facts['cores']} cores; GPUs: {facts['gpus']}; "
             f"TensorFlow {facts['tensorflow']}, Keras {facts['keras']}, "
             f"Python {facts['python']}.", "",
             "Images/s, best of 3 interleaved rounds; 300x300 NHWC float32 inputs, 21 "
             "classes. Inference: raw logits and box offsets of the six layers. Training: "
             "one momentum-SGD step with SSD-Tensorflow's SSD-300 loss (hard negative "
             "mining) and L2 weight decay 0.0005, on the same encoded targets.", ""]
    lines += table(rows) + [""]
    with open(args.output, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
