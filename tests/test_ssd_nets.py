"""ssd_300_vgg and ssd_512_vgg against SSD-Tensorflow's `SSDNet.net` outputs on the
fixtures' recipe weights (tests/fixtures/ssd/net-*), their checkpoint names, restore
paths (SSD checkpoints, a vgg_16 backbone) and `model.fit` with encoded targets."""

import json
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import kslim
from kslim import compat
from fixture_case_helpers import check_end_point_stats
from slim_harness import assert_close, recipe_value

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "ssd"
CASES = {"ssd_300_vgg": "net-ssd_300_vgg-21-300", "ssd_512_vgg": "net-ssd_512_vgg-21-512"}
VGG_CONVS = [f"conv{b}/conv{b}_{i}" for b, n in enumerate((2, 2, 3, 3, 3), 1)
             for i in range(1, n + 1)]


def fixture_inputs(manifest):
    size = manifest["image_size"]
    rng = np.random.default_rng(manifest["input_seed"])
    return (rng.uniform(-1.0, 1.0, [manifest["batch"], size, size, 3]).astype(np.float32)
            * np.float32(100.0))


def assign_recipe(model):
    for name, variable in compat.slim_variables(model).items():
        variable.assign(recipe_value(name, variable.shape))


class Case:
    """One net with the recipe weights, run once on the fixture input."""

    def __init__(self, net):
        case = FIXTURES / CASES[net]
        self.manifest = json.loads((case / "manifest.json").read_text())
        self.expected = dict(np.load(case / "expected.npz"))
        self.model = kslim.models.create_model(net, num_classes=21)
        assign_recipe(self.model)
        self.inputs = fixture_inputs(self.manifest)
        # One pass gives the outputs and the end points (what call/endpoints return).
        self.outputs, self.points = self.model.forward(tf.constant(self.inputs),
                                                       training=False)


@pytest.fixture(scope="module")
def ssd300():
    return Case("ssd_300_vgg")


@pytest.fixture(scope="module")
def ssd512():
    return Case("ssd_512_vgg")


def check_parity(case):
    model, expected = case.model, case.expected
    assert model.feature_shapes == [tuple(s) for s in case.manifest["feat_shapes_from_net"]]
    for kind in ("logits", "localisations"):
        for layer, value in zip(model.params.feat_layers, model.split_layers(case.outputs[kind])):
            assert_close(value, expected[f"{kind}/{layer}"], f"{model.name} {kind}/{layer}")
    # Predictions are the softmax of each layer's logits (slim.softmax over classes):
    # exact from the reference logits; from ours, within what the logits' float32
    # differences allow (|dp| <= 2 p (1 - p) max|dz| <= max|dz| / 2).
    predictions = model.split_layers(tf.nn.softmax(case.outputs["logits"]))
    for layer, value in zip(model.params.feat_layers, predictions):
        ref = expected[f"predictions/{layer}"]
        np.testing.assert_allclose(tf.nn.softmax(expected[f"logits/{layer}"]).numpy(), ref,
                                   rtol=0, atol=1e-6)
        ours = model.split_layers(case.outputs["logits"])[
            model.params.feat_layers.index(layer)].numpy()
        bound = 0.5 * np.abs(ours - expected[f"logits/{layer}"]).max() + 1e-5
        np.testing.assert_allclose(value.numpy(), ref, rtol=0, atol=bound,
                                   err_msg=f"predictions/{layer}")


def check_names(case):
    ours = {n: tuple(v.shape) for n, v in compat.slim_variables(case.model).items()}
    theirs = {n: tuple(s) for n, s in case.manifest["variables"]}
    assert ours == theirs
    assert len(ours) == case.manifest["num_variables"]
    assert sum(int(np.prod(s)) for s in ours.values()) == case.manifest["num_parameters"]


def test_ssd_300_matches_ssd_tensorflow(ssd300):
    check_names(ssd300)
    assert len(ssd300.manifest["variables"]) == 71
    check_parity(ssd300)
    points = ssd300.points
    check_end_point_stats(points, ssd300.manifest, "ssd_300_vgg")
    assert sorted(points) == sorted(ssd300.manifest["end_points"])


def test_ssd_512_matches_ssd_tensorflow(ssd512):
    check_names(ssd512)
    assert len(ssd512.manifest["variables"]) == 79
    check_parity(ssd512)
    # The end points come from the same forward code as the outputs: check the
    # statistics of the last extra block (block12, 512 only) and block4.
    points = ssd512.points
    picked = {k: ssd512.manifest["end_points"][k] for k in ("block4", "block12")}
    check_end_point_stats(points, {"end_points": picked}, "ssd_512_vgg")
    # The model's own loss is the per-layer SSD-512 variant (fixture: scaled outputs).
    from test_ssd_boxes import load, loss_inputs

    manifest, expected = load("loss")
    logits, locs, (labels, t_locs, scores), _ = loss_inputs(expected, manifest,
                                                            "ssd_512_vgg", "scaled")
    terms = ssd512.model.loss_terms({"labels": labels, "localisations": t_locs,
                                     "scores": scores},
                                    {"logits": logits, "localisations": locs})
    for term, value in terms.items():
        np.testing.assert_allclose(
            float(value), expected[f"ssd_512_vgg/scaled/ssd_losses/total/{term}"], rtol=1e-5)


def test_training_mode_dropout(ssd300):
    """SSD-300: dropout after conv6 and after conv7 in training; the block6 and block7
    end points are taken before their dropout."""
    model, x = ssd300.model, ssd300.inputs[:1]
    assert_close(model(x, training=False)["logits"], ssd300.outputs["logits"][:1], "eval")
    tf.keras.utils.set_random_seed(1)
    train = model.endpoints(x, training=True)
    np.testing.assert_allclose(train["block6"], ssd300.points["block6"][:1], atol=1e-3)
    assert np.abs(train["block7"] - ssd300.points["block7"][:1]).max() > 1.0
    # block7 itself is not dropped: its zeros are the ReLU's, about as many as in eval.
    zeros = lambda a: float(np.mean(np.asarray(a) == 0))  # noqa: E731
    assert abs(zeros(train["block7"]) - zeros(ssd300.points["block7"][:1])) < 0.1
    # keep_prob 1 (and SSD-512, which has none): training equals eval.
    model1 = kslim.models.create_model("ssd_300_vgg", input_shape=(264, 264, 3),
                                       dropout_keep_prob=1.0)
    small = np.random.default_rng(0).uniform(-100, 100, [1, 264, 264, 3]).astype(np.float32)
    a, b = model1(small, training=True), model1(small, training=False)
    np.testing.assert_allclose(a["logits"], b["logits"], atol=1e-4)
    assert not kslim.models.ssd_vgg.PARAMS["ssd_512_vgg"].dropout


def test_registry_and_errors():
    assert kslim.models.list_models("ssd_*_vgg") == ["ssd_300_vgg", "ssd_512_vgg"]
    spec = kslim.models.get_spec("ssd_512_vgg")
    assert (spec.image_size, spec.num_classes, spec.preprocessing) == (512, 21, "ssd_vgg")
    assert spec.head_scopes == tuple(f"ssd_512_vgg/{layer}_box/conv_cls" for layer in (
        "block4", "block7", "block8", "block9", "block10", "block11", "block12"))
    with pytest.raises(ValueError, match="at least 257x257"):
        kslim.models.create_model("ssd_300_vgg", input_shape=(256, 256, 3))
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        kslim.models.create_model("ssd_300_vgg", num_classes=1)
    with pytest.raises(ValueError, match="unknown option"):
        kslim.models.create_model("ssd_300_vgg", depth_multiplier=2)


def test_checkpoint_round_trip_and_class_change(ssd300, tmp_path):
    model = ssd300.model
    prefix = compat.save_slim_checkpoint(model, str(tmp_path / "ssd" / "model.ckpt"),
                                         global_step=7)
    again = kslim.models.create_model("ssd_300_vgg", weights=prefix)
    assert not again.supports_jit  # the mining's data-dependent top_k: no XLA for "auto"
    out = again(ssd300.inputs[:1], training=False)
    np.testing.assert_array_equal(out["logits"], model(ssd300.inputs[:1])["logits"])
    # Another class count: every conv_cls (six head scopes) stays as initialized.
    seven = kslim.models.create_model("ssd_300_vgg", num_classes=7)
    report = compat.restore(seven, prefix)
    heads = sorted(f"ssd_300_vgg/{layer}_box/conv_cls/{leaf}" for layer in
                   model.params.feat_layers for leaf in ("weights", "biases"))
    assert sorted(report.mismatched) == heads
    assert len(report.loaded) == 71 - 12 and not report.missing
    np.testing.assert_array_equal(
        compat.slim_variables(seven)["ssd_300_vgg/block4_box/conv_loc/weights"].numpy(),
        compat.slim_variables(model)["ssd_300_vgg/block4_box/conv_loc/weights"].numpy())
    with pytest.raises(compat.CheckpointError, match="conv_cls"):
        compat.restore(seven, prefix, strict=True)
    built = kslim.models.create_model("ssd_300_vgg", num_classes=7, weights=prefix,
                                      input_shape=(264, 264, 3))
    assert built(np.zeros((1, 264, 264, 3), np.float32))["logits"].shape[-1] == 7
    # get_config round trip: the same net, names and shapes.
    clone = type(built).from_config(built.get_config()).build_for((264, 264, 3))
    assert {n: tuple(v.shape) for n, v in compat.slim_variables(clone).items()} == {
        n: tuple(v.shape) for n, v in compat.slim_variables(built).items()}
    assert clone.get_config() == built.get_config()


def test_other_size_checkpoint_is_a_clear_error(ssd512, tmp_path):
    prefix = compat.save_slim_checkpoint(ssd512.model, str(tmp_path / "s512" / "model.ckpt"))
    with pytest.raises(compat.CheckpointError,
                       match=r"is an ssd_512_vgg checkpoint.*model is ssd_300_vgg.*"
                             r"create_model\('ssd_512_vgg'"):
        kslim.models.create_model("ssd_300_vgg", weights=prefix)
    # Through restore with the scope renamed, the shapes that differ are named.
    model = kslim.models.create_model("ssd_300_vgg", input_shape=(264, 264, 3))
    before = compat.slim_variables(model)["ssd_300_vgg/conv1/conv1_1/weights"].numpy()
    with pytest.raises(compat.CheckpointError, match="block10_box/conv_loc/weights"):
        compat.restore(model, prefix, rename={"ssd_300_vgg": "ssd_512_vgg"})
    np.testing.assert_array_equal(
        compat.slim_variables(model)["ssd_300_vgg/conv1/conv1_1/weights"].numpy(), before)


def write_vgg16_convs(prefix):
    """A slim vgg_16 checkpoint's conv tensors (plus a small fc8 and global_step),
    written with TF's own SaveV2 op; fc6/fc7 (120M parameters) are left out."""
    shapes = {}
    depth_in = 3
    for scope, depth in zip(VGG_CONVS, [64] * 2 + [128] * 2 + [256] * 3 + [512] * 6):
        shapes[f"vgg_16/{scope}/weights"] = (3, 3, depth_in, depth)
        shapes[f"vgg_16/{scope}/biases"] = (depth,)
        depth_in = depth
    shapes["vgg_16/fc8/weights"] = (1, 1, 4, 10)
    shapes["vgg_16/fc8/biases"] = (10,)
    names = sorted(shapes)
    tensors = [tf.constant(recipe_value(n, shapes[n])) for n in names]
    names.append("global_step")
    tensors.append(tf.constant(5, tf.int64))
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=tensors)
    return prefix


def test_vgg16_backbone_restore(tmp_path):
    """The seed's partial restore: a vgg_16 checkpoint into the SSD trunk by renaming
    the scope; exactly the 13 convs load, everything after conv5 starts fresh."""
    prefix = write_vgg16_convs(str(tmp_path / "vgg_16.ckpt"))
    model = kslim.models.create_model("ssd_300_vgg", input_shape=(264, 264, 3))
    fresh = compat.slim_variables(model)["ssd_300_vgg/conv6/weights"].numpy()
    report = compat.restore(model, prefix, rename={"ssd_300_vgg": "vgg_16"},
                            ignore_missing=True)
    trunk = sorted(f"ssd_300_vgg/{scope}/{leaf}" for scope in VGG_CONVS
                   for leaf in ("weights", "biases"))
    assert sorted(report.loaded) == trunk and len(trunk) == 26
    assert report.unused == ["vgg_16/fc8/biases", "vgg_16/fc8/weights"]
    assert len(report.missing) == 71 - 26
    variables = compat.slim_variables(model)
    for name in trunk:
        np.testing.assert_array_equal(
            variables[name].numpy(), recipe_value(name.replace("ssd_300_vgg", "vgg_16"),
                                                  variables[name].shape))
    np.testing.assert_array_equal(variables["ssd_300_vgg/conv6/weights"].numpy(), fresh)
    # SSD-Tensorflow's README way: exclude the SSD-only scopes instead.
    excluded = [f"ssd_300_vgg/{s}" for s in ("conv6", "conv7", "block8", "block9", "block10",
                                             "block11", "block4_box", "block7_box",
                                             "block8_box", "block9_box", "block10_box",
                                             "block11_box")]
    report = compat.restore(model, prefix, rename={"ssd_300_vgg": "vgg_16"},
                            exclude=excluded)
    assert sorted(report.loaded) == trunk and not report.missing


def tiny_dataset(anchors, num_classes, size, count=4):
    rng = np.random.default_rng(3)
    images = rng.uniform(-100, 100, [count, size, size, 3]).astype(np.float32)
    boxes = np.array([[0.1, 0.1, 0.6, 0.5], [0.4, 0.3, 0.95, 0.9]], np.float32)
    labels = np.array([1, num_classes - 1], np.int64)

    def encode(image, labels, bboxes):
        t_labels, t_locs, t_scores = kslim.detection.encode(labels, bboxes, anchors,
                                                            num_classes)
        return image, {"labels": t_labels, "localisations": t_locs, "scores": t_scores}

    ds = tf.data.Dataset.from_tensor_slices(
        (images, np.repeat(labels[None], count, 0), np.repeat(boxes[None], count, 0)))
    return ds.map(encode).batch(2)


def test_fit_with_targets_encoded_in_tf_data():
    """One `fit` step: the logged loss is the three SSD terms plus slim's weight decay
    on the batch (dropout off so training and eval agree), and the weights move."""
    size, classes = 264, 5
    model = kslim.models.create_model("ssd_300_vgg", num_classes=classes, weight_decay=5e-4,
                                      dropout_keep_prob=1.0, input_shape=(size, size, 3))
    assign_recipe(model)
    ds = tiny_dataset(model.anchors(), classes, size).take(1)
    images, y = next(iter(ds))
    y_pred = model(images, training=False)
    terms = kslim.detection.ssd_losses(y_pred["logits"], y_pred["localisations"],
                                       y["labels"], y["localisations"], y["scores"])
    assert float(terms["cross_entropy_pos"]) > 0 and float(terms["localization"]) > 0
    decay = sum(5e-4 * float(np.sum(np.square(v.numpy()))) / 2
                for n, v in compat.slim_variables(model).items() if n.endswith("/weights"))
    expected = float(sum(terms.values())) + decay
    model.compile(optimizer=keras.optimizers.SGD(1e-2), jit_compile=False)
    bias = compat.slim_variables(model)["ssd_300_vgg/block8_box/conv_cls/biases"]
    before = bias.numpy()
    logs = model.fit(ds, epochs=1, verbose=0).history
    assert {"loss", "cross_entropy_pos", "cross_entropy_neg", "localization"} <= set(logs)
    np.testing.assert_allclose(logs["loss"][0], expected, rtol=1e-4)
    for term, value in terms.items():
        np.testing.assert_allclose(logs[term][0], float(value), rtol=1e-4, err_msg=term)
    assert np.abs(bias.numpy() - before).max() > 0


def test_detect_is_the_documented_pipeline():
    size = 264
    model = kslim.models.create_model("ssd_300_vgg", num_classes=4, input_shape=(size, size, 3))
    assign_recipe(model)
    images = np.random.default_rng(5).uniform(-100, 100, [2, size, size, 3]).astype(np.float32)
    found = model.detect(images, select_threshold=0.3)
    out = model(images)
    boxes = kslim.detection.decode(out["localisations"], model.anchors())
    detections = kslim.detection.detected_bboxes(tf.nn.softmax(out["logits"]) , boxes,
                                                 select_threshold=0.3)
    for b in range(2):
        n = int(found["num_detections"][b])
        want = sorted(((float(s), c) for c, (scores, _) in detections.items()
                       for s in scores[b].numpy() if s > 0), reverse=True)[:200]
        assert n == len(want) > 0
        np.testing.assert_allclose(found["scores"][b, :n], [s for s, _ in want], rtol=1e-6)
        assert not found["scores"][b, n:].numpy().any()
    # Pixels and bbox_img: boxes relative to the original image, then scaled.
    bbox_img = tf.constant([0.0, 0.25, 1.0, 0.75])
    pixels = model.detect(images, select_threshold=0.3, bbox_img=bbox_img,
                          image_size=(100, 50))
    relative = kslim.detection.bboxes_resize(bbox_img, found["boxes"])
    n = int(found["num_detections"][0])
    np.testing.assert_allclose(pixels["boxes"][0, :n], relative[0, :n] * [100, 50, 100, 50],
                               rtol=1e-5, atol=1e-4)
    exported = tf.function(lambda x: model.detect(x)).get_concrete_function(
        tf.TensorSpec([None, size, size, 3], tf.float32))
    assert exported.structured_outputs["boxes"].shape.as_list() == [None, 200, 4]


def test_compute_loss_under_mirrored_strategy():
    """Under tf.distribute each replica returns its loss / replicas (Keras's
    convention), so fit's gradients are the replica mean and its logged loss the
    plain SSD loss."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = kslim.models.create_model("ssd_300_vgg", num_classes=5,
                                          input_shape=(264, 264, 3))
    n = sum(h * w * a for h, w, a in model.feature_shapes)
    rng = np.random.default_rng(0)
    y_pred = {"logits": tf.constant(rng.normal(size=(1, n, 5)), tf.float32),
              "localisations": tf.constant(rng.normal(size=(1, n, 4)), tf.float32)}
    y = {"labels": tf.constant(rng.integers(0, 5, (1, n))),
         "localisations": tf.constant(rng.normal(size=(1, n, 4)), tf.float32),
         "scores": tf.constant(rng.uniform(0, 1, (1, n)), tf.float32)}
    alone = float(model.compute_loss(y=y, y_pred=y_pred))
    per_replica = strategy.run(lambda: model.compute_loss(y=y, y_pred=y_pred))
    values = [float(v) for v in strategy.experimental_local_results(per_replica)]
    np.testing.assert_allclose(values, [alone / 2] * 2, rtol=1e-6)


def tf1_ssd_300(num_classes):
    """SSD-300 as SSD-Tensorflow's `ssd_net` builds it (tf_slim layers in a TF1 graph,
    written from the layer table of its nets/ssd_vgg_300.py), for the class counts and
    input sizes the fixtures do not cover. Returns `build(images) -> (flat outputs
    [B, N, num_classes + 4], end_points)`."""
    from slim_harness import import_slim

    slim = import_slim()
    v1 = tf.compat.v1
    params = kslim.models.ssd_vgg.PARAMS["ssd_300_vgg"]

    def build(images):
        points = {}
        with slim.arg_scope([slim.conv2d], activation_fn=tf.nn.relu, padding="SAME"), \
                slim.arg_scope([slim.max_pool2d], padding="SAME"), \
                v1.variable_scope("ssd_300_vgg"):
            net = images
            for block, (repeats, depth) in enumerate(((2, 64), (2, 128), (3, 256),
                                                      (3, 512), (3, 512)), start=1):
                net = slim.repeat(net, repeats, slim.conv2d, depth, [3, 3],
                                  scope=f"conv{block}")
                points[f"block{block}"] = net
                net = slim.max_pool2d(net, [2, 2] if block < 5 else [3, 3],
                                      stride=2 if block < 5 else 1, scope=f"pool{block}")
            net = points["block6"] = slim.conv2d(net, 1024, [3, 3], rate=6, scope="conv6")
            net = points["block7"] = slim.conv2d(net, 1024, [1, 1], scope="conv7")
            for scope, d1, d, k, s, pad in params.extra_blocks:
                with v1.variable_scope(scope):
                    net = slim.conv2d(net, d1, [1, 1], scope="conv1x1")
                    net = tf.pad(net, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
                    net = points[scope] = slim.conv2d(net, d, [k, k], stride=s,
                                                      padding="VALID", scope="conv3x3")
            outputs = []
            for layer, sizes, ratios, norm in zip(params.feat_layers, params.anchor_sizes,
                                                  params.anchor_ratios, params.normalizations):
                anchors = len(sizes) + len(ratios)
                with v1.variable_scope(f"{layer}_box"):
                    net = points[layer]
                    if norm > 0:
                        with v1.variable_scope("L2Normalization"):
                            gamma = v1.get_variable("gamma", [net.shape[-1]],
                                                    initializer=v1.ones_initializer())
                        net = tf.nn.l2_normalize(net, -1, epsilon=1e-12) * gamma
                    loc = slim.conv2d(net, anchors * 4, [3, 3], activation_fn=None,
                                      scope="conv_loc")
                    cls = slim.conv2d(net, anchors * num_classes, [3, 3], activation_fn=None,
                                      scope="conv_cls")
                batch = tf.shape(cls)[0]
                outputs.append(tf.concat([tf.reshape(cls, [batch, -1, num_classes]),
                                          tf.reshape(loc, [batch, -1, 4])], -1))
        return tf.concat(outputs, 1), points

    return build


def test_ssd_300_other_classes_and_size_match_tf1_graph():
    from slim_harness import run_slim

    size, classes = 264, 7
    inputs = np.random.default_rng(11).uniform(-100, 100, [1, size, size, 3]).astype(np.float32)
    run = run_slim(tf1_ssd_300(classes), inputs)
    model = kslim.models.create_model("ssd_300_vgg", num_classes=classes,
                                      input_shape=(size, size, 3))
    assert {n: tuple(v.shape) for n, v in compat.slim_variables(model).items()} == dict(
        run.variables)
    assign_recipe(model)
    out, points = model.forward(tf.constant(inputs), training=False)
    assert_close(tf.concat([out["logits"], out["localisations"]], -1), run.output,
                 "ssd_300_vgg outputs at 264 with 7 classes")
    for key in ("block4", "block7", "block11"):
        assert_close(points[key], run.end_points[key], f"end point {key}")
    assert model.feature_shapes == [(33, 33, 4), (17, 17, 6), (9, 9, 6), (5, 5, 6),
                                    (3, 3, 4), (1, 1, 4)]
