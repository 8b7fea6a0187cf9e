"""Deployment (issue 15): TFLite files (float, float16, dynamic, int8), the runner and
`kslim predict --tflite`, the frozen inference graph run by a TF1 Session, the `_quant`
zoo rows, and the bad-input cases.

Parity: float `.tflite` logits against kslim's and against slim's own logits (the
research/slim fixtures, recipe weights); the frozen graph's node names against a
tf_slim graph; quantized LeNet accuracy on the embedded digits against the float net's.
"""

from __future__ import annotations

import json
import logging
import os
import tarfile

import numpy as np
import pytest
import tensorflow as tf

import kslim
from kslim import compat, data, export
from fixture_case_helpers import assign_recipe, case_inputs, load_case
from slim_harness import recipe_inputs
from training_helpers import run_cli

TOL = 1e-4  # SPEC: |a - b| <= 1e-4 * max(1, max|reference|)


def _close(got, want, what):
    scale = max(1.0, float(np.abs(want).max()))
    worst = float(np.abs(got - want).max()) / scale
    assert worst <= TOL, f"{what}: max difference {worst:.3g} of max(1, |ref|)"
    assert (got.argmax(-1) == want.argmax(-1)).all(), f"{what}: top-1 differs"


def _no_partial_files(folder):
    leftovers = [n for n in os.listdir(folder) if n.endswith(".partial")]
    assert not leftovers, leftovers


# -- float .tflite == kslim == slim ---------------------------------------------------------


@pytest.mark.parametrize("case", ["mobilenet_v1-1001-224", "mobilenet_v2-1001-224"])
def test_float_tflite_matches_kslim_and_slim_fixture(tmp_path, case):
    manifest, expected = load_case(case)
    model = kslim.models.create_model(manifest["net"], num_classes=manifest["num_classes"])
    assign_recipe(model)
    images = case_inputs(manifest)  # batch 2
    path = export.to_tflite(model, tmp_path / "net.tflite")
    runner = export.TFLiteRunner(path, num_threads=2)
    got = runner(images)
    _close(got, model(images, training=False).numpy(), f"{case} tflite vs kslim")
    _close(got, expected["logits"], f"{case} tflite vs slim")
    assert runner.describe()["model_name"] == manifest["net"]


@pytest.mark.slow
def test_float_tflite_matches_kslim_inception_v3(tmp_path):
    model = kslim.models.create_model("inception_v3", num_classes=1001)
    assign_recipe(model)  # the fixtures' recipe weights (no research/slim fixture case)
    images = recipe_inputs(2, 299, seed=3)
    runner = export.TFLiteRunner(export.to_tflite(model, tmp_path / "v3.tflite"))
    _close(runner(images), model(images, training=False).numpy(), "inception_v3")


# -- quantized LeNet on digits -------------------------------------------------------------


@pytest.fixture(scope="module")
def lenet_digits(tmp_path_factory):
    """A LeNet trained on the embedded digits (the demo's run, 200 steps) and its slim
    checkpoint."""
    from kslim.training import train
    from kslim.training._demo import DEMO_FLAGS

    folder = tmp_path_factory.mktemp("lenet_digits")
    flags = {**DEMO_FLAGS, "max_number_of_steps": 200, "log_every_n_steps": 1000,
             "train_dir": str(folder / "train")}
    checkpoint = train(**flags).checkpoint
    model = kslim.models.create_model("lenet", num_classes=10, input_shape=(28, 28, 1),
                                      weights=checkpoint)
    test = [(x.numpy(), y.numpy()) for x, y in data.input_pipeline(
        data.get_split("digits", "test"), 128, "lenet", is_training=False)]
    images = np.concatenate([x for x, _ in test])
    labels = np.concatenate([y for _, y in test])
    return model, checkpoint, images, labels, folder


def _accuracy(logits, labels):
    return 100.0 * float((np.argmax(logits, -1) == labels).mean())


def test_quantized_lenet_keeps_its_accuracy(lenet_digits):
    model, _, images, labels, folder = lenet_digits
    keras_accuracy = _accuracy(model(images, training=False).numpy(), labels)
    calibration = export.calibration_images("digits", "train", None, "lenet", 28, 200, 1)
    accuracy, sizes = {}, {}
    for mode in (None, "float16", "dynamic", "int8"):
        path = export.to_tflite(model, folder / f"lenet_{mode}.tflite", quantize=mode,
                                representative_data=calibration, num_steps=200)
        runner = export.TFLiteRunner(path, num_threads=2)
        assert runner.quantized == (mode == "int8")
        accuracy[mode] = _accuracy(runner(images), labels)
        sizes[mode] = os.path.getsize(path)
    assert keras_accuracy > 90.0, keras_accuracy  # the trained net is a real classifier
    assert accuracy[None] == keras_accuracy
    assert abs(accuracy["float16"] - accuracy[None]) <= 0.2, accuracy
    assert abs(accuracy["dynamic"] - accuracy[None]) <= 0.2, accuracy
    assert abs(accuracy["int8"] - accuracy[None]) <= 1.0, accuracy
    assert sizes["int8"] < sizes[None] / 3 and sizes["float16"] < sizes[None] * 0.6, sizes


def test_cli_int8_export_and_predict_tflite(lenet_digits, tmp_path):
    """`kslim export --format=tflite --quantize=int8` calibrated on digits, then
    `kslim predict --tflite` on PNG files gives the Keras net's classes."""
    model, checkpoint, images, labels, _ = lenet_digits
    out = tmp_path / "lenet_int8.tflite"
    code, stdout, err = run_cli(
        "export", "--model_name=lenet", f"--weights={checkpoint}", "--format=tflite",
        "--quantize=int8", "--dataset_name=digits", "--dataset_split_name=train",
        "--num_steps=100", f"--output_file={out}")
    assert code == 0, err
    assert f"Wrote tflite {out}" in stdout
    runner = export.TFLiteRunner(out)
    assert runner.quantized and runner.describe()["labels"][:2] == ["zero", "one"]
    files = []
    for i in range(3):
        raw = data.get_split("digits", "test").dataset().skip(i).take(1)
        image, _ = next(iter(raw))
        files.append(tmp_path / f"digit_{i}.png")
        files[-1].write_bytes(tf.io.encode_png(image).numpy())
    code, stdout, err = run_cli("predict", "--tflite", str(out), "--top_k=1", "--json",
                                str(tmp_path))  # a folder: its images, by name
    assert code == 0, err
    got = [json.loads(line)["classes"][0] for line in stdout.splitlines()]
    assert len(got) == 3 and '"names": ["' in stdout
    code, stdout, err = run_cli("predict", "--model=lenet", f"--weights={checkpoint}",
                                "--top_k=1", "--json", *map(str, files))
    assert code == 0, err
    assert got == [json.loads(line)["classes"][0] for line in stdout.splitlines()]


# -- the frozen inference graph --------------------------------------------------------------


def _run_frozen(path, feeds, fetches):
    graph = tf.Graph()
    with graph.as_default():
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(open(path, "rb").read())
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run(fetches, feeds), graph_def


def test_frozen_graph_runs_in_a_session_with_slims_node_names(tmp_path, slim):
    from tf_slim.nets import resnet_v1

    model = kslim.models.create_model("resnet_v1_50", num_classes=10, input_shape=(64, 64, 3))
    assign_recipe(model)
    names = export.output_node_names(model)
    # slim's own graph has the node export_inference_graph users freeze at.
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [None, 64, 64, 3], name="input")
        with slim.arg_scope(resnet_v1.resnet_arg_scope()):
            resnet_v1.resnet_v1_50(images, num_classes=10, is_training=False)
        graph.get_operation_by_name(names["predictions"])
    path = export.to_frozen_graph(model, tmp_path / "frozen.pb")
    x = recipe_inputs(2, 64, seed=1)
    (probabilities, logits), graph_def = _run_frozen(
        path, {"input:0": x}, [names["predictions"] + ":0", "logits:0"])
    want = model(x, training=False).numpy()
    assert names["predictions"] == "resnet_v1_50/predictions/Reshape_1"
    assert not any(node.op in ("VarHandleOp", "VariableV2") for node in graph_def.node)
    _close(logits, want, "frozen logits")
    np.testing.assert_allclose(probabilities, tf.nn.softmax(want).numpy(), atol=1e-6)


def _save_checkpoint(prefix, tensors: dict):
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[n]) for n in names])
    return str(prefix)


def test_cli_frozen_graph_flags_and_moving_averages(tmp_path):
    """--batch_size/--labels_offset/--image_size shape the graph as slim's flags do;
    the EMA shadows of a checkpoint are read unless --nouse_moving_average."""
    model = kslim.models.create_model("lenet", num_classes=9, input_shape=(28, 28, 1))
    raw = {n: v.numpy() for n, v in compat.slim_variables(model).items()}
    tensors = {**raw, **{f"{n}/ExponentialMovingAverage": 0.5 * v for n, v in raw.items()}}
    prefix = _save_checkpoint(tmp_path / "model.ckpt-7", tensors)
    x = recipe_inputs(2, 28, seed=2, channels=1)
    outputs = {}
    for ema in ("true", "false"):
        out = tmp_path / f"lenet_{ema}.pb"
        code, _, err = run_cli("export", "--model_name=lenet", "--dataset_name=mnist",
                               "--labels_offset=1", "--batch_size=2", f"--weights={prefix}",
                               f"--use_moving_average={ema}", "--format=frozen_graph",
                               f"--output_file={out}")
        assert code == 0, err
        (logits,), graph_def = _run_frozen(out, {"input:0": x}, ["logits:0"])
        placeholder = next(n for n in graph_def.node if n.op == "Placeholder")
        assert placeholder.name == "input"
        assert [d.size for d in placeholder.attr["shape"].shape.dim] == [2, 28, 28, 1]
        outputs[ema] = logits
    assert outputs["true"].shape == (2, 9)  # mnist's 10 classes less labels_offset
    for name, variable in compat.slim_variables(model).items():
        variable.assign(tensors[f"{name}/ExponentialMovingAverage"])
    _close(outputs["true"], model(x, training=False).numpy(), "EMA weights")
    for name, variable in compat.slim_variables(model).items():
        variable.assign(raw[name])
    _close(outputs["false"], model(x, training=False).numpy(), "raw weights")


def test_video_net_frozen_graph(tmp_path):
    """A video net (`--is_video_model`): the clip placeholder `input` [batch, frames, H,
    W, 3] and slim's `InceptionV1/Predictions/Reshape_1` (s3dg's scope), run by a
    Session, equal to kslim's."""
    model = kslim.models.create_model("s3dg", num_classes=3, depth_multiplier=0.25,
                                      input_shape=(3, 16, 16, 3))
    path = export.to_frozen_graph(model, tmp_path / "s3dg.pb", batch_size=2)
    x = np.random.default_rng(6).uniform(-1, 1, [2, 3, 16, 16, 3]).astype(np.float32)
    (probabilities, logits), graph_def = _run_frozen(
        path, {"input:0": x}, ["InceptionV1/Predictions/Reshape_1:0", "logits:0"])
    placeholder = next(n for n in graph_def.node if n.op == "Placeholder")
    assert [d.size for d in placeholder.attr["shape"].shape.dim] == [2, 3, 16, 16, 3]
    _close(logits, model(x, training=False).numpy(), "s3dg frozen logits")
    np.testing.assert_allclose(probabilities, tf.nn.softmax(logits).numpy(), atol=1e-6)


# -- the _quant zoo rows ---------------------------------------------------------------------


def test_quant_zoo_rows_are_listed():
    from kslim.models import zoo

    quant = [e for e in zoo.entries() if e.quantized]
    assert len(quant) == 16 + 22
    assert all(e.tag.endswith("_quant") and not e.default for e in quant)
    v1 = zoo.get("mobilenet_v1_1.0_224_quant")
    assert (v1.net, v1.top1, v1.top5) == ("mobilenet_v1", 70.1, 88.9)
    assert v1.url.endswith("mobilenet_v1_2018_08_02/mobilenet_v1_1.0_224_quant.tgz")
    v2 = zoo.get("quantized_v2_224_75")  # the archive's stem names it too
    assert v2.tag == "mobilenet_v2_0.75_224_quant" and v2.kwargs["depth_multiplier"] == 0.75
    assert v2.top1 is None  # the README gives no accuracy of its own for the uint8 rows


def test_quant_zoo_checkpoint_loads_float_weights_and_reports_fake_quant(
        tmp_path, monkeypatch, caplog):
    """A `_quant` archive (float weights + contrib.quantize min/max variables) from a
    mirror folder: the float net loads, the min/max variables are reported unused, and
    --quantize=int8 says it calibrates instead of using them."""
    tag = "mobilenet_v1_0.25_128_quant"
    source = kslim.models.create_model("mobilenet_v1_025", num_classes=1001,
                                       input_shape=(128, 128, 3))
    assign_recipe(source)
    tensors = {n: v.numpy() for n, v in compat.slim_variables(source).items()}
    fake_quant = {f"MobilenetV1/MobilenetV1/Conv2d_{i}/act_quant/{m}": np.float32(v)
                  for i in range(2) for m, v in (("min", 0.0), ("max", 6.0))}
    fake_quant["MobilenetV1/Conv2d_0/weights_quant/min"] = np.float32(-1.0)
    fake_quant["MobilenetV1/Conv2d_0/weights_quant/max"] = np.float32(1.0)
    work = tmp_path / "ckpt"
    work.mkdir()
    _save_checkpoint(work / f"{tag}.ckpt", {**tensors, **fake_quant,
                                            "global_step": np.int64(5)})
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / f"{tag}.tgz", "w:gz") as tar:
        for name in os.listdir(work):
            tar.add(work / name, arcname=name)
    monkeypatch.setenv("KSLIM_ZOO_MIRROR", str(mirror))
    monkeypatch.setenv("KSLIM_HOME", str(tmp_path / "home"))
    with caplog.at_level(logging.WARNING, logger="kslim"):
        model = kslim.models.create_model("mobilenet_v1_025", num_classes=1001,
                                          input_shape=(128, 128, 3), weights=f"slim:{tag}")
    for name, variable in compat.slim_variables(model).items():
        np.testing.assert_array_equal(variable.numpy(), tensors[name])
    warned = caplog.text
    assert tag in warned and "fake-quantization" in warned
    assert "MobilenetV1/Conv2d_0/weights_quant/max" in warned  # listed, not dropped
    from kslim.export._command import recorded_quantization_ranges

    assert sorted(recorded_quantization_ranges(f"slim:{tag}")) == sorted(fake_quant)

    out = tmp_path / "q.tflite"
    code, stdout, err = run_cli(
        "export", "--model_name=mobilenet_v1_025", f"--weights=slim:{tag}",
        "--image_size=128", "--format=tflite", "--quantize=int8", "--dataset_name=digits",
        "--num_steps=8", f"--output_file={out}")
    assert code == 0, err
    assert "records fake-quantization ranges (6 min/max variables" in stdout
    assert "calibrates on 8 images of digits/train instead" in stdout
    runner = export.TFLiteRunner(out)
    assert runner.quantized and runner.input_shape == (128, 128, 3)
    x = recipe_inputs(2, 128, seed=4)
    assert runner(x).shape == (2, 1001)


# -- bad input -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_net():
    return kslim.models.create_model("lenet", num_classes=10, input_shape=(28, 28, 1))


def test_int8_without_calibration_data_is_refused(tmp_path, tiny_net):
    with pytest.raises(ValueError, match=r"int8 \(full-integer\) needs calibration images"):
        export.to_tflite(tiny_net, tmp_path / "q.tflite", quantize="int8")
    code, _, err = run_cli("export", "--model_name=lenet", "--format=tflite",
                           "--quantize=int8", "--dataset_name=mnist",
                           f"--output_file={tmp_path / 'q.tflite'}")
    assert code == 1
    assert "--quantize=int8 calibrates on images of a split and cannot read mnist/train" in err
    assert "--dataset_dir" in err
    assert os.listdir(tmp_path) == []


def test_unknown_format_and_quantize_are_refused(tmp_path):
    code, _, err = run_cli("export", "--model_name=lenet", "--format=onnx",
                           f"--output_file={tmp_path / 'x.onnx'}")
    assert code == 1 and "--format='onnx': choose saved_model, tflite, frozen_graph" in err
    code, _, err = run_cli("export", "--model_name=lenet", "--format=tflite",
                           "--quantize=int4", f"--output_file={tmp_path / 'x.tflite'}")
    assert code == 1 and "--quantize='int4': choose float16, dynamic, int8" in err
    code, _, err = run_cli("export", "--model_name=lenet", "--format=frozen_graph",
                           "--quantize=int8", f"--output_file={tmp_path / 'x.pb'}")
    assert code == 1 and "applies to --format=tflite only" in err
    assert os.listdir(tmp_path) == []


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "lenet.tflite"
    out.write_bytes(b"keep me")
    args = ["export", "--model_name=lenet", "--dataset_name=digits", "--format=tflite",
            f"--output_file={out}"]
    code, _, err = run_cli(*args)
    assert code == 1 and f"{out}' exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"keep me"
    code, _, err = run_cli(*args, "--overwrite")
    assert code == 0, err
    assert export.TFLiteRunner(out).input_shape == (28, 28, 1)
    _no_partial_files(tmp_path)


def test_unconvertible_op_gives_a_clear_error_and_no_file(tmp_path):
    import keras

    class Gamma(keras.Model):
        """A net with an op TFLite has no kernel for (Igamma)."""

        def call(self, x):
            return tf.reshape(tf.math.igamma(tf.abs(x) + 1.0, tf.abs(x) + 1.0), [-1, 4])

    model = Gamma(name="gamma_net")
    model(np.ones([1, 2, 2, 1], np.float32))
    with pytest.raises(ValueError, match=r"TensorFlow Lite cannot convert gamma_net: .*Igamma"):
        export.to_tflite(model, tmp_path / "gamma.tflite", input_shape=(2, 2, 1))
    assert os.listdir(tmp_path) == []


def test_failed_write_leaves_no_partial_file(tmp_path, tiny_net, monkeypatch):
    from kslim.export import _files

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(_files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        export.to_frozen_graph(tiny_net, tmp_path / "g.pb")
    assert os.listdir(tmp_path) == []


def test_runner_errors(tmp_path, tiny_net):
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        export.TFLiteRunner(tmp_path / "missing.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="bad.tflite' is not a TFLite model"):
        export.TFLiteRunner(bad)
    runner = export.TFLiteRunner(export.to_tflite(tiny_net, tmp_path / "t.tflite"))
    with pytest.raises(ValueError, match=r"takes float batches of shape \(N, 28, 28, 1\)"):
        runner(np.zeros([1, 32, 32, 1], np.float32))
    code, _, err = run_cli("predict", "--tflite", str(tmp_path / "t.tflite"),
                           "--model=lenet", str(bad))
    assert code == 1 and "leave out --model" in err


def test_litert_backend_or_its_install_hint(tmp_path, tiny_net):
    """LiteRT (the `tflite` extra) gives TensorFlow's interpreter's numbers; without
    it, asking for it says what to install."""
    path = export.to_tflite(tiny_net, tmp_path / "t.tflite")
    x = recipe_inputs(2, 28, seed=5, channels=1)
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"pip install 'kslim\[tflite\]'"):
            export.TFLiteRunner(path, backend="litert")
        assert export.TFLiteRunner(path).backend == "tensorflow"
        return
    litert = export.TFLiteRunner(path, backend="litert")
    assert export.TFLiteRunner(path).backend == "litert"
    np.testing.assert_array_equal(litert(x), export.TFLiteRunner(path, backend="tensorflow")(x))
