"""MobileNet v2, v3 and EdgeTPU against research/slim's reference fixtures.

The fixtures (tests/fixtures/<net>-1001-224: manifest.json + expected.npz) were made
with research/slim's `nets/mobilenet/*` code: every variable name and shape, the
eval-mode logits for the recipe weights, and statistics of every end point. The
variants without a fixture are checked against depth tables computed by hand from
slim's rules (`_make_divisible`, `expand_input_by_factor`, finegrain mode).
"""

import json
import math
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import kslim
from kslim import compat
from kslim.models._mobilenet import (Conv, ConvDefs, ExpandedConv, ReduceTo1x1, depth,
                                     fixed_padding, hard_sigmoid_gate, make_divisible)
from kslim.models.mobilenet_v2 import MobileNetV2
from kslim.models.mobilenet_v3 import MobileNetV3
from slim_harness import assert_close, recipe_value

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
CASES = ["mobilenet_v2-1001-224", "mobilenet_v2_140-1001-224", "mobilenet_v3_small-1001-224",
         "mobilenet_v3_large-1001-224", "mobilenet_edgetpu-1001-224"]


def load_case(case):
    manifest = json.loads((FIXTURES / case / "manifest.json").read_text())
    expected = np.load(FIXTURES / case / "expected.npz")
    return manifest, expected


def fixture_inputs(manifest):
    size = manifest["image_size"]
    rng = np.random.default_rng(manifest["input_seed"])
    return rng.uniform(-1.0, 1.0, [manifest["batch"], size, size, 3]).astype(np.float32)


def shapes_of(model):
    return {name: tuple(v.shape) for name, v in compat.slim_variables(model).items()}


def assign_recipe(model):
    for name, variable in compat.slim_variables(model).items():
        variable.assign(recipe_value(name, variable.shape))


def fixture_shapes(case):
    return {name: tuple(shape) for name, shape in load_case(case)[0]["variables"]}


def small_inputs(batch=2, size=64, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)


# -- 1. parity with the fixtures --------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_matches_slim_fixture(case, tmp_path):
    manifest, expected = load_case(case)
    model = kslim.models.create_model(manifest["net"], **manifest["kwargs"])
    assert shapes_of(model) == {n: tuple(s) for n, s in manifest["variables"]}

    # The recipe weights go in through a slim-named checkpoint written from the
    # fixture's own variable list: every name maps, none is left over.
    prefix = compat.write_checkpoint(
        str(tmp_path / "model.ckpt"),
        {name: recipe_value(name, shape) for name, shape in manifest["variables"]})
    report = compat.restore(model, prefix)
    assert (report.missing, report.unused, report.mismatched) == ([], [], [])
    assert len(report.loaded) == len(manifest["variables"])

    images = fixture_inputs(manifest)
    logits = model(images, training=False)
    assert_close(logits, expected["logits"], f"{case} logits")
    points = model.endpoints(images)
    assert set(points) == set(manifest["end_points"])
    for key, stats in manifest["end_points"].items():
        value = np.asarray(points[key], np.float64)
        assert list(value.shape) == stats["shape"], key
        for stat, got in (("mean", value.mean()), ("std", value.std()),
                          ("absmax", np.abs(value).max())):
            want = stats[stat]
            assert abs(got - want) <= 1e-4 * abs(want) + 1e-7, (
                f"{case} end point {key} {stat}: {got} vs slim {want}")


# -- 2. variants without fixtures --------------------------------------------------------

def test_make_divisible_and_depth_by_hand():
    assert make_divisible(32 * 0.35, 8) == 16      # 8 would lose more than 10%
    assert make_divisible(24 * 0.35, 8) == 8
    assert make_divisible(48 * 0.75, 8) == 40      # 36 rounds half up
    assert make_divisible(32 * 1.4, 8) == 48
    assert make_divisible(88 / 24 * 24, 8) == 88   # float noise does not matter
    assert make_divisible(3, 8) == 8               # min_value defaults to the divisor
    assert depth(1280 / 0.35, 0.35) == 1280        # v2 finegrain: divided, then scaled
    assert depth(32, 0.25, min_depth=16) == 16
    assert depth(24, 0.5, divisible_by=4) == 12 and depth(24, 0.5) == 16


def test_squeeze_excite_gate_uses_slims_rounded_sixth():
    gate = hard_sigmoid_gate(tf.constant([-4.0, 0.0, 1.0, 4.0]))
    np.testing.assert_allclose(gate, [0.0, 0.50001, 0.66668, 1.00002], rtol=1e-6)


def test_fused_expansion_keeps_its_stride_under_output_stride():
    """slim's mbv3_fused binds the stride into the expansion conv: at output_stride 4
    the block is planned unstrided, its expansion still strides 2 (and the depthwise
    blocks after it get rate 2)."""
    model = kslim.models.mobilenet_edgetpu(output_stride=4, base_only=True,
                                           input_shape=(64, 64, 3))
    planned = model.plan[6]
    assert (planned.name, planned.stride, planned.rate) == ("expanded_conv_5", 1, 1)
    assert model.plan[10].rate == 2
    points = model.endpoints(small_inputs(size=64))
    assert points["layer_6"].shape == (2, 16, 16, 32)
    assert points["layer_7/expansion_output"].shape == (2, 8, 8, 256)
    assert points["layer_24"].shape == (2, 8, 8, 1280)


def _v2_shapes(first, blocks, last, num_classes=1001):
    """Slim names and shapes of a MobileNet v2 from its depth table.

    blocks: [(expanded depth or None, output depth)], in order.
    """
    bn = lambda scope, n: {f"{scope}/BatchNorm/{leaf}": (n,)  # noqa: E731
                           for leaf in ("gamma", "beta", "moving_mean", "moving_variance")}
    shapes = {"MobilenetV2/Conv/weights": (3, 3, 3, first), **bn("MobilenetV2/Conv", first)}
    depth_in = first
    for index, (inner, out) in enumerate(blocks):
        scope = "MobilenetV2/expanded_conv" + (f"_{index}" if index else "")
        mid = depth_in
        if inner is not None:
            shapes[f"{scope}/expand/weights"] = (1, 1, depth_in, inner)
            shapes.update(bn(f"{scope}/expand", inner))
            mid = inner
        shapes[f"{scope}/depthwise/depthwise_weights"] = (3, 3, mid, 1)
        shapes.update(bn(f"{scope}/depthwise", mid))
        shapes[f"{scope}/project/weights"] = (1, 1, mid, out)
        shapes.update(bn(f"{scope}/project", out))
        depth_in = out
    shapes["MobilenetV2/Conv_1/weights"] = (1, 1, depth_in, last)
    shapes.update(bn("MobilenetV2/Conv_1", last))
    shapes["MobilenetV2/Logits/Conv2d_1c_1x1/weights"] = (1, 1, last, num_classes)
    shapes["MobilenetV2/Logits/Conv2d_1c_1x1/biases"] = (num_classes,)
    return shapes


def test_mobilenet_v2_035_depths_by_hand():
    # depth_multiplier 0.35, finegrain: 32->16, 16->8, 24->8, 32->16, 64->24, 96->32,
    # 160->56, 320->112, and the last conv stays 1280; expansions are 6x the input.
    blocks = [(None, 8), (48, 8), (48, 8), (48, 16), (96, 16), (96, 16), (96, 24),
              (144, 24), (144, 24), (144, 24), (144, 32), (192, 32), (192, 32),
              (192, 56), (336, 56), (336, 56), (336, 112)]
    want = _v2_shapes(16, blocks, 1280)
    # The hand-made table reproduces the fixture-backed sibling at 1.0 exactly...
    blocks_10 = [(None, 16), (96, 24), (144, 24), (144, 32), (192, 32), (192, 32),
                 (192, 64), (384, 64), (384, 64), (384, 64), (384, 96), (576, 96),
                 (576, 96), (576, 160), (960, 160), (960, 160), (960, 320)]
    assert _v2_shapes(32, blocks_10, 1280) == fixture_shapes("mobilenet_v2-1001-224")
    # ... and kslim's 0.35 net is the same table with slim's 0.35 depths.
    model = kslim.models.mobilenet_v2_035(input_shape=(32, 32, 3))
    assert shapes_of(model) == want
    params = sum(math.prod(s) for n, s in want.items() if "moving_" not in n)
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == params
    assert abs(params / 1.66e6 - 1) < 0.03  # the MobileNet README: 1.66M parameters
    assert model(small_inputs(size=32)).shape == (2, 1001)
    # Without finegrain the last conv shrinks too: 1280 * 0.35 = 448.
    assert MobileNetV2(depth_multiplier=0.35).plan[-1].num_outputs == 448


@pytest.mark.parametrize("net,sibling,published", [
    ("mobilenet_v3_small_minimalistic", "mobilenet_v3_small-1001-224", 2.0e6),
    ("mobilenet_v3_large_minimalistic", "mobilenet_v3_large-1001-224", 3.9e6),
])
def test_minimalistic_is_the_sibling_without_se_and_5x5(net, sibling, published):
    """Minimalistic = the same table with 3x3 depthwise, no squeeze-excite (and no
    hard-swish, which has no weights)."""
    want = {}
    for name, shape in fixture_shapes(sibling).items():
        if "/squeeze_excite/" in name:
            continue
        if name.endswith("depthwise_weights"):
            shape = (3, 3) + shape[2:]
        want[name] = shape
    model = kslim.models.create_model(net, input_shape=(64, 64, 3))
    assert shapes_of(model) == want
    params = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert params == sum(math.prod(s) for n, s in want.items() if "moving_" not in n)
    assert abs(params / published - 1) < 0.05  # the MobileNet README's figures
    assert model(small_inputs()).shape == (2, 1001)
    assert not any(a.activation_fn == "hard_swish" for a in model._flatten_layers()
                   if hasattr(a, "activation_fn"))


@pytest.fixture(scope="module")
def edgetpu_075():
    return kslim.models.mobilenet_edgetpu_075(input_shape=(32, 32, 3))


def test_mobilenet_edgetpu_075_depths_by_hand(edgetpu_075):
    # 0.75 with finegrain: 32->24, 16->16, 32->24, 48->40, 96->72, 160->120, 192->144;
    # the last conv stays 1280. Fused blocks: a 3x3 expansion, no depthwise; the first
    # (expansion 1) has no expansion at all.
    fused = [(None, 16), (128, 24), (96, 24), (96, 24), (96, 24), (192, 40), (160, 40),
             (160, 40), (160, 40)]
    regular = [(320, 72, 3), (288, 72, 3), (288, 72, 3), (288, 72, 3), (576, 72, 3),
               (288, 72, 3), (288, 72, 3), (288, 72, 3), (576, 120, 5), (480, 120, 5),
               (480, 120, 5), (480, 120, 5), (960, 144, 3)]
    model = edgetpu_075
    shapes = shapes_of(model)
    assert set(shapes) == set(fixture_shapes("mobilenet_edgetpu-1001-224"))
    scope = "MobilenetEdgeTPU"
    assert shapes[f"{scope}/Conv/weights"] == (3, 3, 3, 24)
    depth_in = 24
    for index, (inner, out) in enumerate(fused):
        block = f"{scope}/expanded_conv" + (f"_{index}" if index else "")
        if inner is None:
            assert f"{block}/expand/weights" not in shapes
        else:
            assert shapes[f"{block}/expand/weights"] == (3, 3, depth_in, inner)
        assert shapes[f"{block}/project/weights"] == (1, 1, inner or depth_in, out)
        depth_in = out
    for index, (inner, out, k) in enumerate(regular, start=len(fused)):
        block = f"{scope}/expanded_conv_{index}"
        assert shapes[f"{block}/expand/weights"] == (1, 1, depth_in, inner)
        assert shapes[f"{block}/depthwise/depthwise_weights"] == (k, k, inner, 1)
        assert shapes[f"{block}/project/weights"] == (1, 1, inner, out)
        depth_in = out
    assert shapes[f"{scope}/Conv_1/weights"] == (1, 1, 144, 1280)
    params = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    full = sum(math.prod(s) for n, s in fixture_shapes("mobilenet_edgetpu-1001-224").items()
               if "moving_" not in n)
    assert 0.6 < params / full < 0.8, (params, full)  # the head stays full size
    assert model(small_inputs(size=32)).shape == (2, 1001)


# -- options ---------------------------------------------------------------------------

def _layer_1_by_hand(model, images, pad, activation):
    """The first conv + batch norm (eval) + activation, computed directly."""
    variables = compat.slim_variables(model)
    get = lambda leaf: variables[f"{model.name}/Conv/{leaf}"].numpy()  # noqa: E731
    x = tf.pad(images, pad) if pad else images
    x = tf.nn.conv2d(x, get("weights"), 2, "VALID" if pad else "SAME")
    x = (x - get("BatchNorm/moving_mean")) / np.sqrt(get("BatchNorm/moving_variance") + 1e-3)
    return activation(x * get("BatchNorm/gamma") + get("BatchNorm/beta"))


@pytest.fixture(scope="module")
def v2_explicit_relu():
    """mobilenet_v2 with explicit padding, relu and output_stride 8, recipe weights
    (Conv's gamma x10 so relu and relu6 differ)."""
    model = kslim.models.mobilenet_v2(use_explicit_padding=True, activation_fn="relu",
                                      output_stride=8, input_shape=(64, 64, 3))
    assign_recipe(model)
    gamma = compat.slim_variables(model)["MobilenetV2/Conv/BatchNorm/gamma"]
    gamma.assign(gamma * 10.0)
    return model


def test_explicit_padding_and_activation_fn(v2_explicit_relu):
    model = v2_explicit_relu
    images = small_inputs(size=32)
    points = model.endpoints(images)
    # slim's _fixed_padding pads 1 on every side, then a VALID stride-2 conv; TF's
    # SAME would pad only bottom/right on this even size.
    pad = [[0, 0], [1, 1], [1, 1], [0, 0]]
    assert_close(points["layer_1"], _layer_1_by_hand(model, images, pad, tf.nn.relu),
                 "explicit padding, relu layer_1")
    assert np.asarray(points["layer_1"]).max() > 6.0  # relu, not relu6
    same = _layer_1_by_hand(model, images, None, tf.nn.relu)
    assert np.abs(np.asarray(points["layer_1"]) - same).max() > 0.1
    assert np.asarray(fixed_padding(tf.ones([1, 4, 4, 1]), 5, rate=2)).shape == (1, 12, 12, 1)


@pytest.fixture(scope="module")
def v3_small_os16():
    return kslim.models.mobilenet_v3_small(output_stride=16, base_only=True,
                                           input_shape=(64, 64, 3))


def test_output_stride_turns_strides_into_rates(v2_explicit_relu, v3_small_os16):
    model = v2_explicit_relu
    points = model.endpoints(small_inputs(size=64))
    assert points["layer_19"].shape == (2, 8, 8, 1280)
    rates = [(p.name, p.stride, p.rate) for p in model.plan]
    # The third stride-2 row (layer_8) runs unstrided at rate 1; rates double after it.
    assert rates[7] == ("expanded_conv_6", 1, 1)
    assert rates[8] == ("expanded_conv_7", 1, 2)
    assert rates[14] == ("expanded_conv_13", 1, 2) and rates[15][2] == 4
    assert rates[-1] == ("Conv_1", 1, 1)  # 1x1 convs never get a rate
    default = [(p.stride, p.rate) for p in MobileNetV2().plan]
    assert [s for s, _ in default].count(2) == 5 and {r for _, r in default} == {1}
    # v3: slim's graph cannot take a rate into reduce_to_1x1; kslim pools the map.
    v3 = v3_small_os16
    v3_points = v3.endpoints(small_inputs(size=64))
    assert v3_points["layer_13"].shape == (2, 4, 4, 576)
    assert v3_points["layer_14"].shape == (2, 1, 1, 576)
    assert v3(small_inputs(size=64)).shape == (2, 1, 1, 1024)  # base_only: no head
    assert not any("/Logits/" in name for name in compat.slim_variables(v3))


def test_depth_options_in_the_plan():
    def depths(**kwargs):
        return [p.num_outputs for p in MobileNetV2(**kwargs).plan]

    assert depths()[:3] == [32, 16, 24] and depths()[-1] == 1280
    assert depths(depth_multiplier=0.25, min_depth=16)[:3] == [16, 16, 16]
    assert depths(depth_multiplier=0.5, divisible_by=4)[:3] == [16, 8, 12]
    assert depths(depth_multiplier=0.5)[-1] == 640
    assert depths(depth_multiplier=0.5, finegrain_classification_mode=True)[-1] == 1280
    assert depths(depth_multiplier=1.4, finegrain_classification_mode=True)[-1] == 1792
    v3 = [p.num_outputs for p in MobileNetV3(conv_defs="V3_SMALL", depth_multiplier=0.75,
                                             finegrain_classification_mode=True).plan]
    assert v3[-3:] == [432, None, 1024]  # only the last row keeps its depth in v3
    table = ConvDefs(spec=(Conv(16, stride=2), ExpandedConv(8, expansion=1)))
    assert MobileNetV2(conv_defs=table, depth_multiplier=2.0).plan[1].num_outputs == 16


TINY = ConvDefs(activation_fn="relu", spec=(
    Conv(16, stride=2, activation_fn="hard_swish"),
    ExpandedConv(24, expansion=3, kernel_size=5, stride=2, squeeze_excite=True),
    ExpandedConv(24, expansion=2, fused=True),
    Conv(64, kernel_size=1),
    ReduceTo1x1(),
    Conv(128, kernel_size=1, batch_norm=False),
))


def test_custom_conv_defs_and_config_round_trip(edgetpu_075, v2_explicit_relu):
    model = MobileNetV3(num_classes=7, conv_defs=TINY, name="Tiny", net="tiny")
    model.build_for((32, 32, 3))
    shapes = shapes_of(model)
    assert shapes["Tiny/expanded_conv/squeeze_excite/Conv/weights"] == (1, 1, 48, 16)
    assert shapes["Tiny/expanded_conv/squeeze_excite/Conv_1/biases"] == (48,)
    assert shapes["Tiny/expanded_conv_1/expand/weights"] == (3, 3, 24, 48)
    assert "Tiny/expanded_conv_1/depthwise/depthwise_weights" not in shapes
    assert shapes["Tiny/Conv_2/biases"] == (128,)
    assert model(small_inputs(size=32)).shape == (2, 7)
    for original, size in ((model, 32), (edgetpu_075, 32), (v2_explicit_relu, 64)):
        config = json.loads(json.dumps(original.get_config()))
        clone = type(original).from_config(config)
        clone.build_for((size, size, 3))
        assert shapes_of(clone) == shapes_of(original)
        assert clone.get_config() == original.get_config()
    # weight_decay: slim's L2 on conv weights (SE and logits too), not on depthwise.
    decayed = MobileNetV3(num_classes=7, conv_defs=TINY, weight_decay=4e-5, name="Tiny")
    decayed.build_for((32, 32, 3))
    weights = [v for n, v in compat.slim_variables(decayed).items() if n.endswith("/weights")]
    assert len(decayed.losses) == len(weights) == 10
    expected = sum(4e-5 * float(tf.reduce_sum(tf.square(w))) / 2 for w in weights)
    assert float(tf.add_n(decayed.losses)) == pytest.approx(expected, rel=1e-5)
    features = MobileNetV3(num_classes=0, pooling="avg", conv_defs=TINY, name="Tiny")
    assert features(small_inputs(size=32)).shape == (2, 128)
    probabilities = MobileNetV3(num_classes=3, classifier_activation="softmax",
                                conv_defs=TINY)(small_inputs(size=32))
    np.testing.assert_allclose(np.sum(probabilities, axis=1), 1.0, rtol=1e-5)


# -- 3. training mode ----------------------------------------------------------------------

@pytest.mark.parametrize("net", ["mobilenet_v2_035", "mobilenet_v3_small"])
def test_training_mode_and_fit(net):
    keras.utils.set_random_seed(3)
    model = kslim.models.create_model(net, num_classes=4, input_shape=(32, 32, 3))
    x = small_inputs(batch=4, size=32, seed=1)
    variables = compat.slim_variables(model)
    scope = model.name
    mean = variables[f"{scope}/Conv/BatchNorm/moving_mean"]
    before = mean.numpy()
    a = model(x, training=True)
    # slim's batch norm update with decay 0.997, from the batch statistics.
    pre = tf.nn.conv2d(x, variables[f"{scope}/Conv/weights"], 2, "SAME")
    batch_mean = tf.reduce_mean(pre, axis=[0, 1, 2]).numpy()
    np.testing.assert_allclose(mean.numpy(), before - (before - batch_mean) * 0.003,
                               rtol=1e-5, atol=1e-6)
    b = model(x, training=True)
    assert not np.allclose(a, b), "dropout is not active in training mode"
    np.testing.assert_allclose(model(x), model(x))
    assert not np.allclose(model(x), a)
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    kernel = variables[f"{scope}/Logits/Conv2d_1c_1x1/weights"]
    start = kernel.numpy()
    history = model.fit(x, np.arange(4), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(kernel.numpy(), start)


def test_dropout_is_the_only_randomness_in_training():
    """Fused expansion, squeeze-excite and the head train with batch statistics."""
    model = MobileNetV3(num_classes=4, conv_defs=TINY, dropout_keep_prob=1.0, name="Tiny")
    x = small_inputs(batch=2, size=32)
    model.build_for((32, 32, 3))
    fused = compat.slim_variables(model)["Tiny/expanded_conv_1/expand/BatchNorm/moving_mean"]
    before = fused.numpy()
    a = model(x, training=True)
    assert not np.allclose(fused.numpy(), before)
    np.testing.assert_allclose(a, model(x, training=True), rtol=1e-6)
    assert not np.allclose(a, model(x, training=False))


# -- 4. bad input ------------------------------------------------------------------------

def test_registry_specs():
    names = ["mobilenet_edgetpu", "mobilenet_edgetpu_075", "mobilenet_v2", "mobilenet_v2_035",
             "mobilenet_v2_140", "mobilenet_v3_large", "mobilenet_v3_large_minimalistic",
             "mobilenet_v3_small", "mobilenet_v3_small_minimalistic"]
    assert set(names) <= set(kslim.models.list_models("mobilenet_*"))
    for name in names:
        spec = kslim.models.get_spec(name)
        assert (spec.image_size, spec.num_classes, spec.preprocessing) == (224, 1001, name)
    assert kslim.models.get_spec("mobilenet_edgetpu_075").head_scopes == (
        "MobilenetEdgeTPU/Logits",)
    assert kslim.models.get_spec("mobilenet_v2_140").scope == "MobilenetV2"


def test_bad_input_messages(edgetpu_075, v3_small_os16):
    with pytest.raises(ValueError, match=r"mobilenet_edgetpu_075 \(MobilenetEdgeTPU\) was "
                                         r"built for 3 input channels.*got 1"):
        edgetpu_075(np.zeros((1, 32, 32, 1), np.float32))
    with pytest.raises(ValueError, match=r"mobilenet_edgetpu_075 .*at least 1x1, got "
                                         r"height 0"):
        edgetpu_075(np.zeros((1, 0, 32, 3), np.float32))
    assert edgetpu_075(np.zeros((1, 9, 13, 3), np.float32)).shape == (1, 1001)
    # reduce_to_1x1 pools a 7x7 window unless the map is square: at output stride 16,
    # non-square images need ceil(side / 16) >= 7, i.e. sides of at least 97.
    v3 = v3_small_os16
    assert v3(np.zeros((1, 40, 40, 3), np.float32)).shape == (1, 1, 1, 1024)
    with pytest.raises(ValueError, match=r"mobilenet_v3_small \(MobilenetV3\) needs "
                                         r"non-square images of at least 97x97 .*got "
                                         r"height 80"):
        v3(np.zeros((1, 80, 112, 3), np.float32))
    assert v3(np.zeros((1, 112, 128, 3), np.float32)).shape == (1, 1, 2, 1024)
    assert MobileNetV3(conv_defs="V3_SMALL")._min_non_square_size() == 193
    with pytest.raises(ValueError, match=r"mobilenet_v3_small: unknown option "
                                         r"activation_fn='relu'; it takes .*depth_multiplier"):
        kslim.models.mobilenet_v3_small(activation_fn="relu")
    with pytest.raises(ValueError, match=r"mobilenet_v2_140: unknown option "
                                         r"depth_multiplier=2"):
        kslim.models.mobilenet_v2_140(depth_multiplier=2)
    with pytest.raises(ValueError, match=r"mobilenet_v2: output_stride must be None, 1 or "
                                         r"a multiple of 2, got 3"):
        kslim.models.mobilenet_v2(output_stride=3)
    with pytest.raises(ValueError, match=r"mobilenet_v2: depth_multiplier must be > 0"):
        kslim.models.mobilenet_v2(depth_multiplier=0)
    with pytest.raises(ValueError, match=r"mobilenet_v2: unknown conv_defs 'V3_SMALL'; "
                                         r"expected one of \['V2_DEF'\]"):
        kslim.models.mobilenet_v2(conv_defs="V3_SMALL")
    with pytest.raises(ValueError, match=r"mobilenet_v2: unknown activation 'swishy'"):
        kslim.models.mobilenet_v2(activation_fn="swishy")
