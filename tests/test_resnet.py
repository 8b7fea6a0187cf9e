"""ResNet v1/v2 against tf_slim's `nets/resnet_v1.py` and `nets/resnet_v2.py`, built live
in TF1 graphs, on checkpoints tf_slim's Saver wrote.

tf_slim 1.1.0 has no `spatial_squeeze`: its logits (and `predictions`) are [B, 1, 1, C]
where kslim, like research/slim, squeezes them to [B, C] by default. The squeezed
outputs are compared with the reference's [:, 0, 0, :]; the `<scope>/logits` end point
is [B, 1, 1, C] on both sides.
"""

import contextlib

import numpy as np
import pytest
import tensorflow as tf

import kslim
from kslim import compat
from kslim.models import resnet
from kslim.models._layers import Conv2d, conv2d_same_padding
from resnet_helpers import bounded_bottleneck, param_count, run_slim_fast
from slim_harness import assert_close, recipe_inputs, recipe_value

NETS = [f"resnet_v{version}_{depth}" for version in (1, 2) for depth in (50, 101, 152, 200)]

# name: (image size, num_classes, options for both tf_slim and kslim). One full-size case
# per family, the others small (the 152/200-layer nets included), each family at
# another size and class count, with output_stride 16 and 8.
CASES = {
    "resnet_v1_50": (224, 1000, {}),
    "resnet_v2_50": (224, 1001, {}),
    "resnet_v1_101": (97, 7, {"output_stride": 16, "global_pool": False}),
    "resnet_v2_101": (75, 5, {"output_stride": 8, "global_pool": False}),
    "resnet_v1_152": (64, 3, {}),
    "resnet_v2_152": (57, 1001, {}),
    "resnet_v1_200": (48, 10, {}),
    "resnet_v2_200": (40, 4, {}),
}


def slim_module(name):
    from tf_slim.nets import resnet_v1, resnet_v2

    return resnet_v1 if name.startswith("resnet_v1") else resnet_v2


def slim_resnet(name, num_classes, is_training=False, **kwargs):
    module = slim_module(name)

    def build(images):
        from tf_slim.ops.arg_scope import arg_scope

        with arg_scope(module.resnet_arg_scope()):
            return getattr(module, name)(images, num_classes, is_training=is_training,
                                         **kwargs)

    return build


def kslim_options(options):
    """tf_slim's options plus `spatial_squeeze=False` where the logits stay spatial."""
    if options.get("global_pool", True):
        return dict(options)
    return {**options, "spatial_squeeze": False}


@pytest.fixture(scope="session")
def resnet_case(slim, tmp_path_factory):
    """Per net: the input, the slim run (with its Saver checkpoint) and the kslim model
    restored from that checkpoint, each built once per session."""
    cache = {}

    def get(name):
        if name not in cache:
            size, num_classes, options = CASES[name]
            inputs = recipe_inputs(1, size, seed=NETS.index(name))
            folder = tmp_path_factory.mktemp(name)
            # The 50-layer runs also fetch the pooled features that tf_slim returns
            # for num_classes=None (its `pool5` tensor).
            extra = {"features": f"{name}/pool5:0"} if name.endswith("_50") else None
            run = run_slim_fast(slim_resnet(name, num_classes, **options), inputs,
                                checkpoint=str(folder / "model.ckpt"), extra_fetches=extra)
            model = kslim.models.create_model(name, num_classes=num_classes,
                                              weights=run.checkpoint,
                                              **kslim_options(options))
            cache[name] = (inputs, run, model)
        return cache[name]

    return get


@contextlib.contextmanager
def kept_state(model):
    """Restores the model's non-trainable weights (moving statistics) afterwards."""
    saved = [(v, v.numpy()) for v in model.non_trainable_weights]
    try:
        yield
    finally:
        for variable, value in saved:
            variable.assign(value)


def compare_end_points(name, model, points, reference):
    """Every slim end point against kslim's (reshaping only the squeezed predictions);
    returns the largest difference."""
    assert set(reference) <= set(points), sorted(set(reference) - set(points))
    worst = 0.0
    for key, value in reference.items():
        if key == "predictions" and model.spatial_squeeze:
            value = value[:, 0, 0, :]
        worst = max(worst, assert_close(points[key], value, f"{name} end point {key}"))
    return worst


@pytest.mark.parametrize("name", NETS)
def test_resnet_matches_slim(resnet_case, name):
    inputs, run, model = resnet_case(name)
    shapes = {key: tuple(v.shape) for key, v in compat.slim_variables(model).items()}
    assert shapes == dict(run.variables)
    expected = run.output[:, 0, 0, :] if model.spatial_squeeze else run.output
    assert_close(model(inputs, training=False), expected, f"{name} logits")
    points = model.endpoints(inputs)
    compare_end_points(name, model, points, run.end_points)
    assert_close(points[f"{name}/logits"], run.output, f"{name}/logits end point")


@pytest.mark.parametrize("name", NETS)
def test_resnet_registry(resnet_case, name):
    """Spec, parameter count, config round trip, train and eval forward on the smallest
    input the net takes."""
    _, run, model = resnet_case(name)
    spec = kslim.models.get_spec(name)
    assert (spec.image_size, spec.num_classes, spec.preprocessing, spec.scope) == (
        224, 1000 if name.startswith("resnet_v1") else 1001, name, name)
    assert spec.head_scopes == (f"{name}/logits",)
    assert kslim.preprocess.preprocessing_family(spec.preprocessing) == "vgg"
    assert model.count_params() == param_count(run)
    config = model.get_config()
    assert type(model).from_config(config).get_config() == config
    size = model.min_input_size
    assert size == 1  # conv2d_same and SAME pooling never run out of pixels
    x = recipe_inputs(2, size, seed=5)
    shape = (2, model.num_classes) if model.spatial_squeeze else (2, 1, 1, model.num_classes)
    with kept_state(model):
        for training in (True, False):
            y = model(x, training=training)
            assert y.shape == shape and np.all(np.isfinite(y)), (training, y.shape)


def check_training(name, model, inputs, run):
    """One training-mode forward: batch-statistics outputs equal slim's, and the moving
    statistics move as slim's update ops move them."""
    slim_vars = compat.slim_variables(model)
    before = {key: v.numpy() for key, v in slim_vars.items()}
    with kept_state(model):
        points = model.endpoints(inputs, training=True)  # one forward, one update
        after = {key: v.numpy() for key, v in slim_vars.items()}
    logits = points[f"{name}/spatial_squeeze"]
    assert_close(logits, run.output[:, 0, 0, :], f"{name} training logits")
    compare_end_points(name, model, points, run.end_points)
    decay = model.batch_norm_decay
    moving = [key for key in before if key.endswith(("/moving_mean", "/moving_variance"))]
    assert len(moving) == 2 * sum(key.endswith("/beta") for key in before) > 0
    for key in before:
        if key not in moving:
            np.testing.assert_array_equal(after[key], before[key], err_msg=key)
            continue
        assert not np.allclose(after[key], before[key]), f"{key} was not updated"
        assert_close(after[key], run.updated[key], f"{key} after one update")
        # The batch statistic each side averaged in, recovered from
        # moving' = moving - (moving - batch) * (1 - decay): sensitive to the variance
        # slim uses (fused batch norm's Bessel-corrected one) where the update is not.
        ours = before[key] + (after[key].astype(np.float64) - before[key]) / (1 - decay)
        theirs = before[key] + (run.updated[key].astype(np.float64) - before[key]) / (
            1 - decay)
        assert_close(ours, theirs, f"{key}: batch statistic")


@pytest.mark.parametrize("name", ["resnet_v1_50", "resnet_v2_50"])
def test_resnet_training_matches_slim(resnet_case, name):
    _, _, model = resnet_case(name)
    inputs = recipe_inputs(2, 64, seed=11)
    run = run_slim_fast(slim_resnet(name, model.num_classes, is_training=True), inputs,
                        run_update_ops=True)
    check_training(name, model, inputs, run)


def test_resnet_v2_arg_scope_options_in_training(slim):
    """resnet_arg_scope's options (batch-norm decay/epsilon/scale, no batch norm on the
    convolutions, another activation) and include_root_block=False, in training mode."""
    from tf_slim.layers import layers as layers_lib
    from tf_slim.nets import resnet_v2
    from tf_slim.ops.arg_scope import arg_scope

    def build(images):
        blocks = [resnet_v2.resnet_v2_block(f"block{i}", base_depth=depth,
                                            num_units=units, stride=stride)
                  for i, (depth, units, stride) in enumerate(
                      zip(resnet.BASE_DEPTHS, resnet.UNITS[50], resnet.BLOCK_STRIDES), 1)]
        scope = resnet_v2.resnet_arg_scope(batch_norm_decay=0.9, batch_norm_epsilon=1e-3,
                                           batch_norm_scale=False)
        with arg_scope(scope):
            with arg_scope([layers_lib.conv2d], normalizer_fn=None,
                           activation_fn=tf.nn.relu6):
                return resnet_v2.resnet_v2(images, blocks, 6, is_training=True,
                                           include_root_block=False, scope="resnet_v2_50")

    inputs = recipe_inputs(2, 24, seed=7)
    run = run_slim_fast(build, inputs, run_update_ops=True)
    model = kslim.models.create_model(
        "resnet_v2_50", num_classes=6, include_root_block=False, batch_norm_decay=0.9,
        batch_norm_epsilon=1e-3, batch_norm_scale=False, use_batch_norm=False,
        activation_fn="relu6", input_shape=(24, 24, 3))
    shapes = {key: tuple(v.shape) for key, v in compat.slim_variables(model).items()}
    assert shapes == dict(run.variables)
    for key, variable in compat.slim_variables(model).items():
        variable.assign(recipe_value(key, variable.shape))
    check_training("resnet_v2_50", model, inputs, run)


@pytest.mark.parametrize("name,keywords", [("resnet_v1_50", {"num_classes": 0}),
                                           ("resnet_v2_50", {"include_top": False})])
def test_resnet_features(resnet_case, name, keywords):
    """num_classes=0 / include_top=False: the globally pooled pre-logits features that
    slim returns for num_classes=None (its `pool5` tensor)."""
    inputs, run, model = resnet_case(name)
    reference = run.extras["features"]
    assert reference.shape == (1, 1, 1, 2048)
    features = kslim.models.create_model(name, weights=run.checkpoint, **keywords)
    assert features.num_classes == 0
    assert not any("/logits/" in key for key in compat.slim_variables(features))
    assert_close(features(inputs), reference, f"{name} features")
    assert "predictions" not in features.endpoints(inputs)
    assert_close(model.endpoints(inputs)["global_pool"], reference, "global_pool end point")


def test_resnet_v1_research_slim_options(slim):
    """research/slim's resnet_v1 options tf_slim 1.1.0 lacks or only has in its generic
    `resnet_v1()`: depth_multiplier/min_base_depth, include_root_block=False,
    store_non_strided_activations, bounded activations; with output_stride=4, weight
    decay and another top-level scope. The reference is tf_slim's `resnet_v1()` with the
    scaled blocks and the bounded bottleneck made of tf_slim layers (`resnet_helpers`)."""
    from tf_slim.nets import resnet_utils, resnet_v1
    from tf_slim.ops.arg_scope import arg_scope

    depths = [max(int(d * 0.25), 24) for d in resnet.BASE_DEPTHS]  # 24, 32, 64, 128
    collection = "backbone/_end_points"  # resnet_v1()'s end-points collection

    def build(images):
        blocks = []
        for i, (depth, units, stride) in enumerate(
                zip(depths, resnet.UNITS[50], resnet.BLOCK_STRIDES), 1):
            unit = dict(depth=4 * depth, depth_bottleneck=depth,
                        outputs_collections=collection)
            args = [dict(unit, stride=1)] * (units - 1) + [dict(unit, stride=stride)]
            blocks.append(resnet_utils.Block(f"block{i}", bounded_bottleneck, args))
        with arg_scope(resnet_v1.resnet_arg_scope()):
            return resnet_v1.resnet_v1(images, blocks, 6, is_training=False,
                                       output_stride=4, include_root_block=False,
                                       scope="backbone")

    inputs = recipe_inputs(1, 33, seed=8)
    run = run_slim_fast(build, inputs)
    model = kslim.models.create_model(
        "resnet_v1_50", num_classes=6, depth_multiplier=0.25, min_base_depth=24,
        include_root_block=False, store_non_strided_activations=True,
        use_bounded_activations=True, output_stride=4, weight_decay=1e-4, name="backbone",
        input_shape=(33, 33, 3))
    slim_vars = compat.slim_variables(model)
    assert {key: tuple(v.shape) for key, v in slim_vars.items()} == dict(run.variables)
    for key, variable in slim_vars.items():
        variable.assign(recipe_value(key, variable.shape))
    assert_close(model(inputs), run.output[:, 0, 0, :], "logits")
    points = model.endpoints(inputs)
    assert "backbone/block1/unit_3/bottleneck_v1" in run.end_points
    assert set(run.end_points) <= set(points)
    full_resolution = 0
    for key, value in run.end_points.items():
        ours = np.asarray(points[key])
        if key == "predictions":
            value = value[:, 0, 0, :]
        if ours.shape != value.shape:
            # store_non_strided_activations: the last unit of block1 and block2 (and the
            # block outputs) are recorded before the stride slim applies inside them.
            full_resolution += 1
            factor = -(-ours.shape[1] // value.shape[1])
            ours = np.asarray(resnet.subsample(ours, factor))
        assert_close(ours, value, f"end point {key}")
    # block1 and block2 (block3 is already atrous): the block, its last unit, conv2, conv3.
    assert full_resolution == 2 * 4
    # slim's l2_regularizer on every conv weight: wd * sum(w^2) / 2.
    weights = [v for key, v in slim_vars.items() if key.endswith("/weights")]
    assert len(model.losses) == len(weights)
    expected = sum(1e-4 * float(tf.reduce_sum(tf.square(w))) / 2 for w in weights)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config() and clone.name == "backbone"


def test_plan_units_rates():
    """stack_blocks_dense's bookkeeping, worked by hand for resnet_50's blocks."""
    blocks = list(zip(resnet.UNITS[50], resnet.BASE_DEPTHS, resnet.BLOCK_STRIDES))

    def strides_rates(plan):
        return [[(u.stride, u.rate) for u in units] for units, _ in plan]

    nominal = strides_rates(resnet.plan_units(blocks))
    assert nominal == [[(1, 1), (1, 1), (2, 1)], [(1, 1)] * 3 + [(2, 1)],
                       [(1, 1)] * 5 + [(2, 1)], [(1, 1)] * 3]
    assert resnet.plan_units(blocks, 32) == resnet.plan_units(blocks)
    # 16: block3's last stride becomes rate 2 for block4.
    assert strides_rates(resnet.plan_units(blocks, 16))[2:] == [[(1, 1)] * 6, [(1, 2)] * 3]
    # 8: block2's last stride is dropped, block3 runs at rate 2, block4 at rate 4.
    assert strides_rates(resnet.plan_units(blocks, 8))[1:] == [
        [(1, 1)] * 4, [(1, 2)] * 6, [(1, 4)] * 3]
    # store_non_strided_activations: the stride moves after the block's end point.
    stored = resnet.plan_units(blocks, store_non_strided_activations=True)
    assert [after for _, after in stored] == [2, 2, 2, 1]
    assert all(u.stride == 1 for units, _ in stored for u in units)
    assert [u.depth for units, _ in stored for u in units[:1]] == [256, 512, 1024, 2048]


def test_conv2d_same_quirk(slim):
    """conv2d_same pads (k_eff - 1) // 2 before and the rest after, whatever the input
    size, where TF's SAME pads a strided conv on an even input only after."""
    assert conv2d_same_padding(3) == [[0, 0], [1, 1], [1, 1], [0, 0]]
    assert conv2d_same_padding(7) == [[0, 0], [3, 3], [3, 3], [0, 0]]
    assert conv2d_same_padding(3, rate=2) == [[0, 0], [2, 2], [2, 2], [0, 0]]
    assert conv2d_same_padding(4) == [[0, 0], [1, 2], [1, 2], [0, 0]]
    # By hand: a 3x3/2 box filter on a 4x4 ramp. conv2d_same's first window covers rows
    # and columns -1..1, SAME's 0..2.
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    conv = Conv2d(1, 3, stride=2, padding="conv2d_same", activation_fn=None,
                  kernel_initializer="ones", name="conv")
    np.testing.assert_allclose(conv(x)[0, :, :, 0], [[10, 24], [51, 90]])
    same = Conv2d(1, 3, stride=2, activation_fn=None, kernel_initializer="ones", name="s")
    assert float(same(x)[0, 0, 0, 0]) == 45.0
    # Against slim's resnet_utils.conv2d_same, strided and atrous.
    from tf_slim.nets import resnet_utils
    from tf_slim.ops.arg_scope import arg_scope

    for kernel, stride, rate, size in ((3, 2, 1, 8), (7, 2, 1, 9), (3, 1, 2, 9)):
        inputs = recipe_inputs(1, size, seed=kernel + stride + rate, channels=2)

        def build(images, kernel=kernel, stride=stride, rate=rate):
            from tf_slim.layers import layers as layers_lib

            with arg_scope([layers_lib.conv2d], activation_fn=None):
                net = resnet_utils.conv2d_same(images, 3, kernel, stride, rate=rate,
                                               scope="conv")
            return net, {}

        run = run_slim_fast(build, inputs)
        ours = Conv2d(3, kernel, stride=stride, rate=rate, padding="conv2d_same",
                      activation_fn=None, name="conv")
        ours.build(inputs.shape)
        ours.kernel.assign(recipe_value("conv/weights", ours.kernel.shape))
        ours.biases.assign(recipe_value("conv/biases", ours.biases.shape))
        assert_close(ours(inputs), run.output, f"conv2d_same k={kernel} s={stride} r={rate}")


def test_subsample_quirk():
    """subsample: slim's 1x1 max pool with a stride keeps rows/columns 0, s, 2s, ..."""
    x = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)
    np.testing.assert_array_equal(resnet.subsample(x, 2)[0, :, :, 0],
                                  [[0, 2, 4], [10, 12, 14], [20, 22, 24]])
    np.testing.assert_array_equal(
        resnet.subsample(x, 2), tf.nn.max_pool2d(x, 1, 2, "SAME"))
    assert resnet.subsample(x, 1) is x


def test_resnet_bad_input(resnet_case):
    with pytest.raises(ValueError, match=r"resnet_v1_50: output_stride=12 cannot be "
                       r"reached.*one of 4, 8, 16, 32 or None"):
        kslim.models.create_model("resnet_v1_50", output_stride=12)
    with pytest.raises(ValueError, match=r"resnet_v2_101: output_stride=6 .*multiple of 4"):
        kslim.models.create_model("resnet_v2_101", output_stride=6)
    with pytest.raises(ValueError, match=r"output_stride=3 .*one of 1, 2, 4, 8 or None"):
        kslim.models.create_model("resnet_v1_50", output_stride=3, include_root_block=False)
    with pytest.raises(ValueError, match=r"output_stride must be a positive int"):
        kslim.models.create_model("resnet_v1_50", output_stride=0)
    with pytest.raises(ValueError, match=r"resnet_v2_50: unknown option "
                       r"depth_multiplier=0.5; it takes .*output_stride"):
        kslim.models.create_model("resnet_v2_50", depth_multiplier=0.5)
    with pytest.raises(ValueError, match=r"resnet_v1_152: unknown option num_layers=34"):
        kslim.models.create_model("resnet_v1_152", num_layers=34)
    with pytest.raises(ValueError, match=r"unknown model name 'resnet_v1_51'.*resnet_v1_50"):
        kslim.models.create_model("resnet_v1_51")
    _, _, model = resnet_case("resnet_v1_50")
    with pytest.raises(ValueError, match=r"resnet_v1_50 .*3 input channels.*got 1"):
        model(np.zeros((1, 64, 64, 1), np.float32))
    with pytest.raises(ValueError, match=r"resnet_v1_50 .*at least 1x1, got height 0"):
        model(np.zeros((1, 0, 64, 3), np.float32))
    # An unbuilt model called eagerly (cheaper than a symbolic build): 64 -> 2x2 logits.
    dense = resnet.ResNetV1(num_classes=3, global_pool=False, depth_multiplier=0.125)
    with pytest.raises(ValueError, match=r"resnet_v1_50: spatial_squeeze needs 1x1 logits "
                       r"but they are 2x2.*global_pool=True or spatial_squeeze=False"):
        dense(np.zeros((1, 64, 64, 3), np.float32))
