"""MobileNet v1 against research/slim: the reference fixtures, a zoo-like checkpoint,
and (for the options the fixtures do not cover) a tf_slim graph built from slim's
own layers as `mobilenet_v1_base` + `mobilenet_v1` describe it."""

import gzip
import json
import logging
from collections import namedtuple

import keras
import numpy as np
import pytest
import tensorflow as tf

import kslim
from fixture_case_helpers import (FIXTURES, assign_recipe, case_inputs, case_variables,
                                  check_end_point_stats, load_case, model_variables)
from kslim import compat
from kslim.models.mobilenet_v1 import (MOBILENETV1_CONV_DEFS, Conv, DepthSepConv,
                                       MobileNetV1, fixed_padding, reduced_kernel_size)
from slim_harness import assert_close, import_slim, recipe_value

CASES = ["mobilenet_v1-1001-224", "mobilenet_v1_025-1001-224", "mobilenet_v1_050-1001-160"]
CKPT = FIXTURES / "mobilenet_v1_025-1001-224" / "ckpt" / "model.ckpt"


# -- 1. the research/slim fixtures ------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_matches_slim_fixture(case):
    manifest, expected = load_case(case)
    size = manifest["image_size"]
    model = kslim.models.create_model(manifest["net"], num_classes=manifest["num_classes"],
                                      input_shape=(size, size, 3))
    assert model_variables(model) == case_variables(manifest)
    assign_recipe(model)
    points = model.endpoints(case_inputs(manifest))
    assert_close(points["Logits"], expected["logits"], f"{case} logits")
    check_end_point_stats(points, manifest, case)
    assert set(points) == set(manifest["end_points"])


def test_075_variables_match_slim():
    """mobilenet_v1_075 has no fixture; its variable list comes from the same slim
    build (tests/fixtures/zoo_variables.json.gz, shared with the zoo tests)."""
    path = FIXTURES / "zoo_variables.json.gz"
    if not path.exists():
        pytest.skip("tests/fixtures/zoo_variables.json.gz is not in this checkout")
    table = json.loads(gzip.open(path).read())["variables"]["mobilenet_v1_075"]
    model = kslim.models.mobilenet_v1_075(input_shape=(32, 32, 3))
    assert model_variables(model) == {name: tuple(shape) for name, shape in table}


# -- 2. a zoo-like checkpoint: global_step, Momentum slots, EMA shadows ------------------

@pytest.fixture(scope="module")
def ckpt_case():
    manifest, expected = load_case("mobilenet_v1_025-1001-224")
    return manifest, expected, case_inputs(manifest)


def test_zoo_like_checkpoint_loads_cleanly(ckpt_case, caplog):
    manifest, expected, images = ckpt_case
    names = {name for name, _, _ in compat.list_checkpoint(str(CKPT))}
    assert "global_step" in names
    assert any(n.endswith("/Momentum") for n in names)
    assert any(n.endswith("/ExponentialMovingAverage") for n in names)

    with caplog.at_level(logging.WARNING, logger="kslim"):
        model = kslim.models.mobilenet_v1_025(weights=str(CKPT))
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    assert_close(model(images, training=False), expected["logits"], "checkpoint logits")

    report = compat.restore(model, str(CKPT))
    assert (report.missing, report.unused, report.mismatched) == ([], [], [])
    assert len(report.loaded) == len(manifest["variables"])



def test_moving_average_shadows(ckpt_case, tmp_path):
    """use_moving_average=True reads every `<name>/ExponentialMovingAverage`.

    The fixture's `logits_ema` is NaN throughout: its shadows follow the generic
    recipe, so some `moving_variance` shadows are negative. kslim must give the same
    NaNs; a copy of the checkpoint with positive variance shadows then checks finite
    numbers against slim eval's own path (`ExponentialMovingAverage.variables_to_restore`
    over the model variables, as eval_image_classifier's --moving_average_decay)."""
    manifest, expected, images = ckpt_case
    model = kslim.models.mobilenet_v1_025()
    report = compat.restore(model, str(CKPT), use_moving_average=True)
    assert (report.missing, report.unused, report.mismatched) == ([], [], [])
    reader = tf.train.load_checkpoint(str(CKPT))
    for name, variable in compat.slim_variables(model).items():
        assert report.sources[name] == name + "/ExponentialMovingAverage"
        np.testing.assert_array_equal(variable, reader.get_tensor(report.sources[name]))
    logits_ema = np.asarray(model(images, training=False))
    np.testing.assert_array_equal(np.isnan(logits_ema), np.isnan(expected["logits_ema"]))

    tensors = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    for name in tensors:
        if name.endswith("moving_variance/ExponentialMovingAverage"):
            tensors[name] = np.abs(tensors[name]) + 0.5
    prefix = compat.write_checkpoint(str(tmp_path / "ema.ckpt"), tensors)
    compat.restore(model, prefix, use_moving_average=True)
    ours = model(images, training=False)
    assert np.all(np.isfinite(ours))

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, images.shape)
        logits, _ = slim_mobilenet_v1(x, 1001, depth_multiplier=0.25)
        averages = tf.compat.v1.train.ExponentialMovingAverage(0.9999)
        model_vars = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.MODEL_VARIABLES)
        saver = tf.compat.v1.train.Saver(averages.variables_to_restore(model_vars))
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, prefix)
            reference = session.run(logits, {x: images})
    assert_close(ours, reference, "moving-average logits (slim eval's restore)")


def test_1001_class_checkpoint_into_1000_classes(ckpt_case):
    _, expected, images = ckpt_case
    model = kslim.models.mobilenet_v1_025(num_classes=1000)
    report = compat.restore(model, str(CKPT), label_offset=1)
    assert (report.missing, report.unused, report.mismatched) == ([], [], [])
    assert_close(model(images, training=False), expected["logits"][:, 1:],
                 "label_offset=1 logits")


# -- 3. options against a tf_slim graph -----------------------------------------------

def _slim_pads(kernel, rate):
    effective = kernel[0] + (kernel[0] - 1) * (rate - 1)
    begin = (effective - 1) // 2
    return [[0, 0], [begin, effective - 1 - begin], [begin, effective - 1 - begin], [0, 0]]


def slim_mobilenet_v1(images, num_classes, depth_multiplier=1.0, min_depth=8,
                      conv_defs=MOBILENETV1_CONV_DEFS, output_stride=None,
                      use_explicit_padding=False, global_pool=False, spatial_squeeze=True,
                      dropout_keep_prob=0.999, is_training=False):
    """MobileNet v1 from tf_slim layers under mobilenet_v1_arg_scope's settings,
    following research/slim's mobilenet_v1_base (output_stride, explicit padding)
    and mobilenet_v1's head."""
    slim = import_slim()
    tf1 = tf.compat.v1

    def depth(d):
        return max(int(d * depth_multiplier), min_depth)

    end_points = {}
    padding = "VALID" if use_explicit_padding else "SAME"
    with slim.arg_scope([slim.conv2d, slim.separable_conv2d], activation_fn=tf.nn.relu6,
                        normalizer_fn=slim.batch_norm,
                        weights_initializer=tf1.truncated_normal_initializer(stddev=0.09)), \
            slim.arg_scope([slim.batch_norm], center=True, scale=True, decay=0.9997,
                           epsilon=0.001, is_training=is_training), \
            tf1.variable_scope("MobilenetV1"):
        net = images
        with slim.arg_scope([slim.conv2d, slim.separable_conv2d], padding=padding):
            current, rate = 1, 1
            for i, row in enumerate(conv_defs):
                if output_stride is not None and current == output_stride:
                    layer_stride, layer_rate = 1, rate
                    rate *= row.stride
                else:
                    layer_stride, layer_rate = row.stride, 1
                    current *= row.stride
                if isinstance(row, Conv):
                    if use_explicit_padding:
                        net = tf.pad(net, _slim_pads(row.kernel, 1))
                    net = slim.conv2d(net, depth(row.depth), row.kernel, stride=row.stride,
                                      scope=f"Conv2d_{i}")
                    end_points[f"Conv2d_{i}"] = net
                    continue
                if use_explicit_padding:
                    net = tf.pad(net, _slim_pads(row.kernel, layer_rate))
                net = slim.separable_conv2d(net, None, row.kernel, depth_multiplier=1,
                                            stride=layer_stride, rate=layer_rate,
                                            scope=f"Conv2d_{i}_depthwise")
                end_points[f"Conv2d_{i}_depthwise"] = net
                net = slim.conv2d(net, depth(row.depth), [1, 1], stride=1,
                                  scope=f"Conv2d_{i}_pointwise")
                end_points[f"Conv2d_{i}_pointwise"] = net
        with tf1.variable_scope("Logits"):
            if global_pool:
                net = end_points["global_pool"] = tf.reduce_mean(net, [1, 2], keepdims=True)
            else:
                shape = net.shape.as_list()
                kernel = [min(shape[1], 7), min(shape[2], 7)]
                net = slim.avg_pool2d(net, kernel, padding="VALID", scope="AvgPool_1a")
                end_points["AvgPool_1a"] = net
            if not num_classes:
                return net, end_points
            net = slim.dropout(net, keep_prob=dropout_keep_prob, is_training=is_training)
            logits = slim.conv2d(net, num_classes, [1, 1], activation_fn=None,
                                 normalizer_fn=None, scope="Conv2d_1c_1x1")
            if spatial_squeeze:
                logits = tf.squeeze(logits, [1, 2])
        end_points["Logits"] = logits
        end_points["Predictions"] = slim.softmax(logits)
    return logits, end_points


def run_reference(build, images, run_update_ops=False):
    """Runs a tf_slim net in its own graph with the recipe weights, in one session
    call each for the assignment, the forward pass and the read-back (slim_harness's
    run_slim makes one call per variable, slow for the training graph).

    Returns (output, end points, [(name, shape)], {name: value after the run})."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, images.shape)
        net, end_points = build(x)
        variables = tf.compat.v1.global_variables()
        feeds, assigns = {}, []
        for variable in variables:
            value = recipe_value(variable.op.name, variable.shape.as_list())
            holder = tf.compat.v1.placeholder(variable.dtype.base_dtype, value.shape)
            assigns.append(variable.assign(holder))
            feeds[holder] = value
        updates = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(assigns, feeds)
            output, points, _ = session.run(
                [net, end_points, updates if run_update_ops else []], {x: images})
            after = session.run({v.op.name: v for v in variables})
    return (output, points, [(v.op.name, tuple(v.shape.as_list())) for v in variables],
            after)


# A table with a Conv row after the target output stride (slim keeps its stride and
# rate 1 there, while the next depthwise rows go atrous), 5x5 kernels, and a 1-wide map.
CUSTOM_DEFS = (Conv([3, 3], 2, 16), DepthSepConv([3, 3], 2, 24), DepthSepConv([5, 5], 2, 32),
               Conv([3, 3], 2, 24), DepthSepConv([5, 5], 1, 40), DepthSepConv([3, 3], 2, 48))
OPTION_CASES = {
    "atrous8_explicit_no_squeeze": ("mobilenet_v1_050", 96, dict(
        num_classes=7, output_stride=8, use_explicit_padding=True, spatial_squeeze=False)),
    "atrous16_global_pool_min_depth": ("mobilenet_v1_075", 72, dict(
        num_classes=5, output_stride=16, global_pool=True, min_depth=16)),
    "custom_conv_defs_features": ("mobilenet_v1", 40, dict(
        num_classes=0, conv_defs=CUSTOM_DEFS, output_stride=8, use_explicit_padding=True)),
}
_MULTIPLIERS = {"mobilenet_v1": 1.0, "mobilenet_v1_075": 0.75, "mobilenet_v1_050": 0.5,
                "mobilenet_v1_025": 0.25}


@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_options_match_slim_graph(case):
    net, size, options = OPTION_CASES[case]
    images = np.random.default_rng(7).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    slim_options = {k: v for k, v in options.items() if k != "num_classes"}
    output, slim_points, slim_variables, _ = run_reference(lambda x: slim_mobilenet_v1(
        x, options["num_classes"], depth_multiplier=_MULTIPLIERS[net], **slim_options), images)
    model = kslim.models.create_model(net, input_shape=(size, size, 3), **options)
    assert model_variables(model) == dict(slim_variables)
    assign_recipe(model)
    points = model.endpoints(images)
    assert set(points) == set(slim_points)
    for key, value in slim_points.items():
        assert_close(points[key], value, f"{case} end point {key}")
    assert_close(model(images, training=False), output, f"{case} output")


def test_training_mode_matches_slim_graph():
    """Batch statistics in the forward pass and slim's moving-average updates."""
    images = np.random.default_rng(3).uniform(-1, 1, (4, 64, 64, 3)).astype(np.float32)
    output, _, _, updated = run_reference(
        lambda x: slim_mobilenet_v1(x, 10, depth_multiplier=0.25, dropout_keep_prob=1.0,
                                    is_training=True), images, run_update_ops=True)
    model = kslim.models.mobilenet_v1_025(num_classes=10, dropout_keep_prob=1.0,
                                          input_shape=(64, 64, 3))
    assign_recipe(model)
    assert_close(model(images, training=True), output, "training-mode logits")
    moved = 0
    for name, variable in compat.slim_variables(model).items():
        assert_close(variable, updated[name], f"after one training step: {name}")
        moved += name.endswith("moving_mean") and not np.allclose(
            variable, recipe_value(name, variable.shape))
    assert moved == 27  # every BatchNorm's moving mean was updated


# -- 4. training with model.fit -----------------------------------------------------------

def test_fit_takes_a_step():
    keras.utils.set_random_seed(0)
    model = kslim.models.mobilenet_v1_025(num_classes=4, input_shape=(32, 32, 3),
                                          weight_decay=4e-5, dropout_keep_prob=0.8)
    variables = compat.slim_variables(model)
    moving = "MobilenetV1/Conv2d_3_pointwise/BatchNorm/moving_mean"
    kernel = "MobilenetV1/Conv2d_0/weights"
    before = {n: np.array(variables[n]) for n in (moving, kernel)}
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    history = model.fit(x, np.arange(4), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for name, value in before.items():
        assert not np.allclose(variables[name], value), f"{name} did not change"


def test_weight_decay_is_slims_l2():
    model = kslim.models.mobilenet_v1_025(num_classes=3, weight_decay=4e-5,
                                          input_shape=(32, 32, 3))
    convs = [v for n, v in compat.slim_variables(model).items() if n.endswith("/weights")]
    assert len(convs) == 15 and len(model.losses) == 15  # depthwise weights not regularized
    expected = sum(4e-5 * float(tf.reduce_sum(tf.square(w))) / 2 for w in convs)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)
    both = kslim.models.mobilenet_v1_025(num_classes=3, weight_decay=4e-5,
                                         regularize_depthwise=True, input_shape=(32, 32, 3))
    assert len(both.losses) == 15 + 13


# -- 5. quirks, by hand -------------------------------------------------------------------

def test_fixed_padding_quirk():
    assert fixed_padding([3, 3]) == [[0, 0], [1, 1], [1, 1], [0, 0]]
    assert fixed_padding([3, 3], rate=2) == [[0, 0], [2, 2], [2, 2], [0, 0]]
    assert fixed_padding([4, 4]) == [[0, 0], [1, 2], [1, 2], [0, 0]]
    assert fixed_padding([1, 1]) == [[0, 0], [0, 0], [0, 0], [0, 0]]
    # slim sizes both axes from kernel_size[0].
    assert fixed_padding([3, 5]) == [[0, 0], [1, 1], [1, 1], [0, 0]]


def test_reduced_kernel_and_pool_stride_quirks():
    assert reduced_kernel_size((2, 10, 3, 8)) == (7, 3)
    assert reduced_kernel_size((2, None, 3, 8)) == (7, 7)
    # AvgPool_1a keeps slim.avg_pool2d's default stride 2: a 9x9 map pools to 2x2.
    model = kslim.models.mobilenet_v1_025(num_classes=3, spatial_squeeze=False,
                                          input_shape=(288, 288, 3))
    points = model.endpoints(np.zeros((1, 288, 288, 3), np.float32))
    assert points["Conv2d_13_pointwise"].shape == (1, 9, 9, 256)
    assert points["AvgPool_1a"].shape == (1, 2, 2, 256)
    assert points["Logits"].shape == (1, 2, 2, 3)
    # Small images: the 7x7 pool shrinks to the map (3x3 here), any size >= 1 works.
    assert model(np.zeros((1, 80, 80, 3), np.float32)).shape == (1, 1, 1, 3)
    assert model(np.zeros((1, 1, 1, 3), np.float32)).shape == (1, 1, 1, 3)


# -- 6. registry, config, errors -----------------------------------------------------------

def test_registry():
    assert kslim.models.list_models("mobilenet_v1*") == [
        "mobilenet_v1", "mobilenet_v1_025", "mobilenet_v1_050", "mobilenet_v1_075"]
    for name, multiplier in _MULTIPLIERS.items():
        spec = kslim.models.get_spec(name)
        assert (spec.image_size, spec.num_classes, spec.preprocessing, spec.scope) == (
            224, 1001, name, "MobilenetV1")
        assert spec.defaults == {"depth_multiplier": multiplier}
        assert spec.head_scopes == ("MobilenetV1/Logits",)
    assert kslim.preprocess.get_preprocessing("mobilenet_v1_025") is not None


def test_config_round_trip_with_conv_defs():
    # research/slim's own namedtuples (same type names) are accepted as rows.
    SlimConv = namedtuple("Conv", ["kernel", "stride", "depth"])
    SlimDepthSepConv = namedtuple("DepthSepConv", ["kernel", "stride", "depth"])
    defs = [SlimConv([3, 3], 2, 16), SlimDepthSepConv([3, 3], 1, 32)]
    model = MobileNetV1(num_classes=5, conv_defs=defs, output_stride=16, global_pool=True,
                        use_explicit_padding=True, name="my_mobilenet")
    config = model.get_config()
    assert config["conv_defs"] == [["Conv", [3, 3], 2, 16], ["DepthSepConv", [3, 3], 1, 32]]
    clone = MobileNetV1.from_config(config)
    assert clone.get_config() == config
    clone.build_for((32, 32, 3))
    assert sorted(compat.slim_variables(clone)) == [
        "my_mobilenet/Conv2d_0/BatchNorm/beta", "my_mobilenet/Conv2d_0/BatchNorm/gamma",
        "my_mobilenet/Conv2d_0/BatchNorm/moving_mean",
        "my_mobilenet/Conv2d_0/BatchNorm/moving_variance", "my_mobilenet/Conv2d_0/weights",
        "my_mobilenet/Conv2d_1_depthwise/BatchNorm/beta",
        "my_mobilenet/Conv2d_1_depthwise/BatchNorm/gamma",
        "my_mobilenet/Conv2d_1_depthwise/BatchNorm/moving_mean",
        "my_mobilenet/Conv2d_1_depthwise/BatchNorm/moving_variance",
        "my_mobilenet/Conv2d_1_depthwise/depthwise_weights",
        "my_mobilenet/Conv2d_1_pointwise/BatchNorm/beta",
        "my_mobilenet/Conv2d_1_pointwise/BatchNorm/gamma",
        "my_mobilenet/Conv2d_1_pointwise/BatchNorm/moving_mean",
        "my_mobilenet/Conv2d_1_pointwise/BatchNorm/moving_variance",
        "my_mobilenet/Conv2d_1_pointwise/weights",
        "my_mobilenet/Logits/Conv2d_1c_1x1/biases", "my_mobilenet/Logits/Conv2d_1c_1x1/weights"]


def test_bad_input_and_options():
    model = kslim.models.mobilenet_v1_025(num_classes=3, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match=r"mobilenet_v1_025 \(MobilenetV1\) was built for 3 "
                                         r"input channels.*got 1"):
        model(np.zeros((1, 32, 32, 1), np.float32))
    with pytest.raises(ValueError, match=r"mobilenet_v1_025 \(MobilenetV1\) needs images of "
                                         r"at least 1x1, got height 0"):
        model(np.zeros((1, 0, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"mobilenet_v1_025: spatial_squeeze needs 1x1 "
                                         r"logits but they are 2x2"):
        model(np.zeros((1, 288, 288, 3), np.float32))
    with pytest.raises(ValueError, match=r"mobilenet_v1_025: unknown option "
                                         r"depth_multiplier=0.5; it takes .*conv_defs"):
        kslim.models.create_model("mobilenet_v1_025", depth_multiplier=0.5)
    with pytest.raises(ValueError, match=r"mobilenet_v1: unknown option align_feature_maps"):
        kslim.models.create_model("mobilenet_v1", align_feature_maps=True)
    with pytest.raises(ValueError, match=r"output_stride must be one of .*got 4"):
        kslim.models.create_model("mobilenet_v1", output_stride=4)
    with pytest.raises(ValueError, match=r"depth_multiplier must be greater than zero"):
        MobileNetV1(depth_multiplier=0)
    with pytest.raises(ValueError, match=r"conv_defs row 1 is .*expected Conv"):
        MobileNetV1(conv_defs=[Conv([3, 3], 2, 8), ("Pool", [3, 3], 2, 8)])


def test_same_shaped_layers_start_with_their_own_values():
    # The family's shared initializer instance must not give Conv2d_8 and Conv2d_9 (same
    # shapes) the same draw: Keras 3 fixes an unseeded instance's seed at creation.
    model = kslim.models.create_model("mobilenet_v1_025", num_classes=10, input_shape=(32, 32, 3))
    weights = compat.slim_variables(model)
    for leaf in ("pointwise/weights", "depthwise/depthwise_weights"):
        a = weights[f"MobilenetV1/Conv2d_8_{leaf}"].numpy()
        b = weights[f"MobilenetV1/Conv2d_9_{leaf}"].numpy()
        assert a.shape == b.shape and not np.array_equal(a, b), leaf
