"""Deployment speed: slim's TF1 Session vs kslim's forward_function vs kslim's .tflite files.

`python -m benchmarks.deploy [--nets ...] [--seconds S]` (or `python -m benchmarks
--deploy`) writes benchmarks/RESULTS_deploy.md. For each net, in one process: images/s
at batch 1 and 8 of
- slim: the net's inference graph in a TF1 `Session` (the graph research/slim users
  export and freeze; see below for the MobileNets);
- kslim: `model.forward_function()` (a concrete `tf.function`);
- kslim .tflite float32 and int8 (full-integer, `kslim.export.to_tflite`), run by
  `kslim.export.TFLiteRunner` with 2 threads (the interpreter's default XNNPACK CPU
  delegate); the runner's call is timed whole: float input in, float logits out (the
  int8 model's input quantization and output dequantization included);
with the model file sizes. Nothing asserts: the table says how they compare.

MobileNet baselines: tf_slim does not ship research/slim's `mobilenet_v1.py` and
`mobilenet/mobilenet_v2.py`. With `--research_slim DIR` those files are used (as in
`benchmarks/models.py`); without it the graph is built here from tf_slim's layers as
those files build it (same scopes, arg scopes, ops: conv2d + fused batch norm + relu6,
separable_conv2d as depthwise, `SAME` padding, squeezed 1x1-conv logits, softmax
`Predictions`), and `--check_fixtures` confirms its logits equal the research/slim
fixtures' (tests/fixtures/mobilenet_v*-1001-224, recipe weights).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import sys
import tempfile

import numpy as np

from benchmarks import models
from benchmarks._common import HERE, command_line, compare, fmt, machine

NETS = ("mobilenet_v1", "mobilenet_v2", "inception_v3", "resnet_v1_50")
THREADS = 2


# -- slim's MobileNets from tf_slim layers ---------------------------------------------------

# mobilenet_v1.py's _CONV_DEFS: (kind, stride, depth); "conv" is a 3x3 conv, "sep" a
# 3x3 depthwise + 1x1 pointwise pair.
_V1 = (("conv", 2, 32), ("sep", 1, 64), ("sep", 2, 128), ("sep", 1, 128), ("sep", 2, 256),
       ("sep", 1, 256), ("sep", 2, 512), ("sep", 1, 512), ("sep", 1, 512), ("sep", 1, 512),
       ("sep", 1, 512), ("sep", 1, 512), ("sep", 2, 1024), ("sep", 1, 1024))
# mobilenet_v2.py's V2_DEF expanded_conv rows: (expansion, depth, repeats, stride).
_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
       (6, 160, 3, 2), (6, 320, 1, 1))


def _logits_head(slim, tf, net, num_classes):
    with tf.compat.v1.variable_scope("Logits"):
        net = slim.avg_pool2d(net, net.shape[1:3], padding="VALID", scope="AvgPool")
        logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                             normalizer_fn=None, scope="Conv2d_1c_1x1")
        return tf.squeeze(logits, [1, 2])


def slim_mobilenet_v1(images, num_classes: int):
    """research/slim `mobilenet_v1(images, num_classes, is_training=False)` under
    `mobilenet_v1_arg_scope()`, from tf_slim layers."""
    import tensorflow as tf

    from kslim.compat import import_tf_slim

    slim = import_tf_slim()
    bn = {"is_training": False, "decay": 0.9997, "epsilon": 0.001, "center": True,
          "scale": True}
    with tf.compat.v1.variable_scope("MobilenetV1"), slim.arg_scope(
            [slim.conv2d, slim.separable_conv2d], normalizer_fn=slim.batch_norm,
            normalizer_params=bn, activation_fn=tf.nn.relu6, padding="SAME"):
        net = images
        for i, (kind, stride, depth) in enumerate(_V1):
            if kind == "conv":
                net = slim.conv2d(net, depth, [3, 3], stride=stride, scope=f"Conv2d_{i}")
                continue
            net = slim.separable_conv2d(net, None, [3, 3], depth_multiplier=1, stride=stride,
                                        scope=f"Conv2d_{i}_depthwise")
            net = slim.conv2d(net, depth, [1, 1], scope=f"Conv2d_{i}_pointwise")
        logits = _logits_head(slim, tf, net, num_classes)
        slim.softmax(logits, scope="Predictions")
    return logits


def slim_mobilenet_v2(images, num_classes: int):
    """research/slim `mobilenet_v2.mobilenet(images, num_classes)` under
    `training_scope(is_training=False)`, from tf_slim layers."""
    import tensorflow as tf

    from kslim.compat import import_tf_slim

    slim = import_tf_slim()
    bn = {"is_training": False, "decay": 0.997, "epsilon": 0.001, "center": True,
          "scale": True}
    with tf.compat.v1.variable_scope("MobilenetV2"), slim.arg_scope(
            [slim.conv2d, slim.separable_conv2d], normalizer_fn=slim.batch_norm,
            normalizer_params=bn, activation_fn=tf.nn.relu6, padding="SAME"):
        net = slim.conv2d(images, 32, [3, 3], stride=2, scope="Conv")
        index = 0
        for expansion, depth, repeats, first_stride in _V2:
            for r in range(repeats):
                stride = first_stride if r == 0 else 1
                scope = "expanded_conv" + (f"_{index}" if index else "")
                with tf.compat.v1.variable_scope(scope):
                    block_input = net
                    if expansion > 1:
                        inner = int(block_input.shape[-1]) * expansion  # multiple of 8
                        net = slim.conv2d(net, inner, [1, 1], scope="expand")
                    net = slim.separable_conv2d(net, None, [3, 3], depth_multiplier=1,
                                                stride=stride, scope="depthwise")
                    net = slim.conv2d(net, depth, [1, 1], activation_fn=None,
                                      scope="project")
                    if stride == 1 and int(block_input.shape[-1]) == depth:
                        net = net + block_input
                index += 1
        net = slim.conv2d(net, 1280, [1, 1], scope="Conv_1")
        logits = _logits_head(slim, tf, net, num_classes)
        slim.softmax(logits, scope="Predictions")
    return logits


_BUILDERS = {"mobilenet_v1": slim_mobilenet_v1, "mobilenet_v2": slim_mobilenet_v2}


def slim_session(name: str, batch: int, research_slim: str | None):
    """`step()` running slim's inference graph of `name` in a TF1 Session."""
    import tensorflow as tf

    net = models.NETS[name]
    if name not in _BUILDERS or research_slim:
        return models.slim_infer(net, batch)
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.Variable(models._images(batch, net.size), trainable=False)
        logits = _BUILDERS[name](images, net.classes)
        session = tf.compat.v1.Session(graph=graph)
        session.run(tf.compat.v1.global_variables_initializer())
    return lambda: session.run(logits)


def check_fixtures() -> list[str]:
    """The tf_slim-layer MobileNets against research/slim's fixture logits (recipe
    weights, tests/fixtures): one line per net."""
    import json

    import tensorflow as tf

    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
    from slim_harness import recipe_value

    lines = []
    for name in _BUILDERS:
        folder = os.path.join(os.path.dirname(HERE), "tests", "fixtures", f"{name}-1001-224")
        with open(os.path.join(folder, "manifest.json")) as f:
            manifest = json.load(f)
        expected = np.load(os.path.join(folder, "expected.npz"))["logits"]
        rng = np.random.default_rng(manifest["input_seed"])
        x = rng.uniform(-1.0, 1.0, [manifest["batch"], 224, 224, 3]).astype(np.float32)
        graph = tf.Graph()
        with graph.as_default():
            images = tf.compat.v1.placeholder(tf.float32, x.shape)
            logits = _BUILDERS[name](images, 1001)
            variables = tf.compat.v1.global_variables()
            ours = sorted((v.op.name, v.shape.as_list()) for v in variables)
            theirs = sorted((n, s) for n, s in manifest["variables"])
            with tf.compat.v1.Session(graph=graph) as session:
                for v in variables:
                    v.load(recipe_value(v.op.name, v.shape), session)
                got = session.run(logits, {images: x})
        diff = float(np.abs(got - expected).max()) / max(1.0, float(np.abs(expected).max()))
        lines.append(f"{name}: variables {'equal' if ours == theirs else 'DIFFER'} to "
                     f"research/slim's ({len(ours)}), logits max difference {diff:.2e} "
                     "(relative to max(1, |slim|))")
    return lines


# -- kslim ------------------------------------------------------------------------------------


def _randomize(model) -> None:
    """Distinct random weights for every variable (He-scaled kernels, BatchNorm
    statistics near 1). kslim's default initializers give layers of one shape the same
    values, which TFLite stores once: the file sizes would come out too small."""
    rng = np.random.default_rng(0)
    for variable in model.weights:
        shape, leaf = tuple(variable.shape), variable.path.rsplit("/", 1)[-1]
        if leaf == "moving_variance":
            value = rng.uniform(1.0, 1.5, shape)
        elif leaf == "gamma":
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif len(shape) >= 2:
            fan_in = np.prod(shape[:-1]) if leaf != "depthwise_weights" else np.prod(shape[:2])
            value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        else:
            value = 0.1 * rng.standard_normal(shape)
        variable.assign(value.astype(np.float32))


def tflite_files(name: str, folder: str) -> dict[str, str]:
    """The float and int8 `.tflite` files of `name` (random weights; int8 calibrated on
    8 random images: the timing does not depend on the ranges)."""
    import kslim

    net = models.NETS[name]
    model = kslim.models.create_model(name, num_classes=net.classes)
    _randomize(model)
    calibration = [models._images(1, net.size)[0] * s for s in np.linspace(0.5, 1.0, 8)]
    paths = {
        "float": kslim.export.to_tflite(model, os.path.join(folder, f"{name}.tflite")),
        "int8": kslim.export.to_tflite(model, os.path.join(folder, f"{name}_int8.tflite"),
                                       quantize="int8", representative_data=calibration),
    }
    return paths


def tflite_step(path: str, name: str, batch: int):
    from kslim.export import TFLiteRunner

    runner = TFLiteRunner(path, num_threads=THREADS)
    x = models._images(batch, models.NETS[name].size)
    return lambda: runner(x)


# -- driver -------------------------------------------------------------------------------------


def run(nets, batches, seconds, research_slim, folder, rounds=3, log=print):
    import keras

    if research_slim:
        sys.path.insert(0, research_slim)
    rows, sizes = [], {}
    for name in nets:
        files = tflite_files(name, folder)
        sizes[name] = {kind: os.path.getsize(path) for kind, path in files.items()}
        log(f"{name}: .tflite float {sizes[name]['float'] / 1e6:.1f} MB, int8 "
            f"{sizes[name]['int8'] / 1e6:.1f} MB")
        for batch in batches:
            steps = {
                "slim Session": slim_session(name, batch, research_slim),
                "kslim forward_function": models.kslim_infer(name, models.NETS[name], batch),
                "kslim .tflite float": tflite_step(files["float"], name, batch),
                "kslim .tflite int8": tflite_step(files["int8"], name, batch),
            }
            rates = compare(steps, batch, seconds, rounds=rounds)
            rows.append((name, batch, rates))
            log(f"  {name} b{batch}: " + ", ".join(f"{k} {v:.1f}" for k, v in rates.items()))
            del steps
            keras.backend.clear_session()
            gc.collect()
    return rows, sizes


def table(rows, sizes) -> list[str]:
    impls = ("slim Session", "kslim forward_function", "kslim .tflite float",
             "kslim .tflite int8")
    lines = ["| net | batch | " + " | ".join(impls) + " | forward_function / slim | "
             ".tflite float / slim | .tflite int8 / slim |",
             "|---|---|" + "---|" * (len(impls) + 3)]
    for name, batch, rates in rows:
        slim = rates["slim Session"]
        lines.append(f"| {name} | {batch} | " + " | ".join(fmt(rates[i], 1) for i in impls)
                     + " | " + " | ".join(f"{rates[i] / slim:.2f}x" for i in impls[1:]) + " |")
    lines += ["", "| net | float .tflite | int8 .tflite |", "|---|---|---|"]
    for name, size in sizes.items():
        lines.append(f"| {name} | {size['float'] / 1e6:.1f} MB | {size['int8'] / 1e6:.1f} MB |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.deploy",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default=",".join(NETS), help=f"from {', '.join(NETS)}")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--seconds", type=float, default=2.0, help="per timing round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="timing rounds (the best counts: other load only slows)")
    parser.add_argument("--research_slim", default=os.environ.get("RESEARCH_SLIM"),
                        help="folder holding research/slim's nets/ (default: the "
                             "MobileNet graphs built here from tf_slim layers)")
    parser.add_argument("--check_fixtures", action="store_true",
                        help="first compare the tf_slim-layer MobileNets with the fixtures")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS_deploy.md"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    unknown = sorted(set(nets) - set(NETS))
    if unknown:
        parser.error(f"unknown nets {unknown}; choose from {list(NETS)}")
    facts = machine()
    checks = check_fixtures() if args.check_fixtures else []
    for line in checks:
        print(line)
    with tempfile.TemporaryDirectory(prefix="kslim-deploy-") as folder:
        rows, sizes = run(nets, tuple(int(b) for b in args.batches.split(",")),
                          args.seconds, args.research_slim, folder, args.rounds)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [f"# Deployment speed ({datetime.date.today().isoformat()})", "",
             f"Command: `python -m benchmarks.deploy {command_line(argv or sys.argv[1:])}`", "",
             f"Machine: {facts['cpu']}, {facts['cores']} cores; TensorFlow "
             f"{facts['tensorflow']}, Keras {facts['keras']}, Python {facts['python']}; "
             f"1-minute load average at the end {load:.1f}.", "",
             f"Images/s, best of {args.rounds} interleaved rounds; .tflite files run by "
             f"`kslim.export.TFLiteRunner` with {THREADS} threads (XNNPACK).",
             ""] + table(rows, sizes) + [""]
    if checks:
        lines += ["MobileNet baselines (tf_slim layers, see benchmarks/deploy.py) against "
                  "research/slim's fixture logits:", ""] + [f"- {c}" for c in checks] + [""]
    with open(args.output, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
