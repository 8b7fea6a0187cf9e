"""AlexNet v2 and OverFeat against tf_slim's `nets/alexnet.py` and `nets/overfeat.py`,
built live in TF1 graphs, on checkpoints tf_slim's Saver wrote.

tf_slim 1.1.0 has neither `global_pool` nor `num_classes=0` for these nets (research/
slim added both). They are checked against tf_slim's own outputs: fc8 is a 1x1 affine
conv, so global pooling before it equals the spatial mean of tf_slim's unsqueezed fc8
output, and the features are tf_slim's `fc7` end point.
"""

import importlib

import numpy as np
import pytest
import tensorflow as tf

import kslim
from kslim import compat
from kslim.models import alexnet
from resnet_helpers import param_count, run_slim_fast
from slim_harness import assert_close, recipe_inputs

NETS = ["alexnet_v2", "overfeat"]
# (net, image size, num_classes, spatial_squeeze): each net at its full size with 1000
# classes, and larger (fc8 2x2, fully convolutional) with 7 classes.
CASES = [("alexnet_v2", 224, 1000, True), ("alexnet_v2", 256, 7, False),
         ("overfeat", 231, 1000, True), ("overfeat", 263, 7, False)]


def slim_net(net, num_classes, spatial_squeeze):
    from tf_slim.nets import alexnet as slim_alexnet
    from tf_slim.nets import overfeat as slim_overfeat
    from tf_slim.ops.arg_scope import arg_scope

    module = slim_alexnet if net == "alexnet_v2" else slim_overfeat
    scope = (slim_alexnet.alexnet_v2_arg_scope() if net == "alexnet_v2"
             else slim_overfeat.overfeat_arg_scope())

    def build(images):
        with arg_scope(scope):
            return getattr(module, net)(images, num_classes, is_training=False,
                                        spatial_squeeze=spatial_squeeze)

    return build


@pytest.fixture(scope="session")
def convfc_case(slim, tmp_path_factory):
    """Per case: the input, the slim run with its Saver checkpoint, and the kslim model
    restored from it, built once per session."""
    cache = {}

    def get(net, size, num_classes, spatial_squeeze):
        key = (net, size, num_classes, spatial_squeeze)
        if key not in cache:
            inputs = recipe_inputs(1, size, seed=size)
            folder = tmp_path_factory.mktemp(f"{net}_{size}")
            run = run_slim_fast(slim_net(net, num_classes, spatial_squeeze), inputs,
                                checkpoint=str(folder / "model.ckpt"))
            model = kslim.models.create_model(net, num_classes=num_classes,
                                              spatial_squeeze=spatial_squeeze,
                                              weights=run.checkpoint)
            cache[key] = (inputs, run, model)
        return cache[key]

    return get


@pytest.mark.parametrize("net,size,num_classes,squeeze", CASES)
def test_convfc_matches_slim(convfc_case, net, size, num_classes, squeeze):
    inputs, run, model = convfc_case(net, size, num_classes, squeeze)
    shapes = {key: tuple(v.shape) for key, v in compat.slim_variables(model).items()}
    assert shapes == dict(run.variables)
    assert model.count_params() == param_count(run)
    assert_close(model(inputs, training=False), run.output, f"{net} logits")
    points = model.endpoints(inputs)
    assert set(run.end_points) == set(points)
    for key, value in run.end_points.items():
        assert_close(points[key], value, f"{net} end point {key}")


@pytest.mark.parametrize("net,size", [("alexnet_v2", 256), ("overfeat", 263)])
def test_convfc_global_pool(convfc_case, net, size):
    """research/slim's global_pool (with weight decay): the mean of fc7 feeds fc8, which
    equals the spatial mean of tf_slim's fc8 map."""
    inputs, run, _ = convfc_case(net, size, 7, False)
    model = kslim.models.create_model(net, num_classes=7, global_pool=True,
                                      weight_decay=5e-4, weights=run.checkpoint)
    expected = run.output.mean(axis=(1, 2))
    assert_close(model(inputs), expected, f"{net} global_pool logits")
    points = model.endpoints(inputs)
    fc7 = run.end_points[f"{net}/fc7"]
    assert fc7.shape[1:3] == (2, 2)
    assert_close(points["global_pool"], fc7.mean(axis=(1, 2), keepdims=True), "global_pool")
    assert_close(points[f"{net}/fc8"], expected, "fc8 end point")
    # alexnet_v2_arg_scope / overfeat_arg_scope: slim's L2 on every weights tensor.
    weights = [v for key, v in compat.slim_variables(model).items()
               if key.endswith("/weights")]
    assert len(model.losses) == len(weights) == 8
    expected_loss = sum(5e-4 * float(tf.reduce_sum(tf.square(w))) / 2 for w in weights)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected_loss, rel=1e-5)


@pytest.mark.parametrize("net,size", [("alexnet_v2", 224), ("overfeat", 231)])
def test_convfc_features(convfc_case, net, size):
    """num_classes=0 / include_top=False: fc7's output, research/slim's features."""
    inputs, run, _ = convfc_case(net, size, 1000, True)
    features = kslim.models.create_model(net, include_top=False, weights=run.checkpoint)
    assert not any("/fc8/" in key for key in compat.slim_variables(features))
    fc7 = run.end_points[f"{net}/fc7"]
    assert_close(features(inputs), fc7, f"{net} features")
    assert f"{net}/fc8" not in features.endpoints(inputs)


@pytest.mark.parametrize("net", NETS)
def test_convfc_registry(convfc_case, net):
    """Spec, config round trip, train and eval forward on the smallest input."""
    size = {"alexnet_v2": 224, "overfeat": 231}[net]
    _, run, model = convfc_case(net, size, 1000, True)
    spec = kslim.models.get_spec(net)
    assert (spec.image_size, spec.num_classes, spec.scope) == (size, 1000, net)
    assert spec.head_scopes == (f"{net}/fc8",)
    assert kslim.preprocess.preprocessing_family(spec.preprocessing) == "vgg"
    config = model.get_config()
    assert type(model).from_config(config).get_config() == config
    smallest = model.min_input_size
    x = recipe_inputs(2, smallest, seed=4)
    eval_a, eval_b = model(x, training=False), model(x, training=False)
    np.testing.assert_array_equal(eval_a, eval_b)
    train = model(x, training=True)
    assert train.shape == eval_a.shape == (2, 1000)
    assert np.all(np.isfinite(train)) and not np.allclose(train, eval_a), "dropout is off"


def test_min_input_size_by_hand():
    # alexnet: 195 -conv1 11/4-> 47 -pool 3/2-> 23 -pool-> 11 -pool-> 5 -fc6 5x5-> 1
    assert alexnet.min_input_size(alexnet.TRUNK, 5) == 195
    # overfeat: 231 -> 56 -pool 2/2-> 28 -conv2 5x5-> 24 -> 12 -> 6 -fc6 6x6-> 1
    # (the package attribute `kslim.models.overfeat` is the factory, not the module)
    overfeat = importlib.import_module("kslim.models.overfeat")
    assert alexnet.min_input_size(overfeat.TRUNK, 6) == 231
    assert alexnet.AlexNetV2(num_classes=3).min_input_size == 195
    assert overfeat.OverFeat(num_classes=3).min_input_size == 231


def test_convfc_bad_input(convfc_case):
    _, _, model = convfc_case("alexnet_v2", 224, 1000, True)
    with pytest.raises(ValueError, match=r"alexnet_v2 .*at least 195x195, got height 194"):
        model(np.zeros((1, 194, 224, 3), np.float32))
    with pytest.raises(ValueError, match=r"alexnet_v2 .*3 input channels.*got 4"):
        model(np.zeros((1, 224, 224, 4), np.float32))
    with pytest.raises(ValueError, match=r"alexnet_v2: spatial_squeeze needs fc8 to be 1x1 "
                       r"but it is 2x2.*global_pool=True or spatial_squeeze=False"):
        model(np.zeros((1, 256, 256, 3), np.float32))
    _, _, overfeat = convfc_case("overfeat", 231, 1000, True)
    with pytest.raises(ValueError, match=r"overfeat .*at least 231x231, got width 230"):
        overfeat(np.zeros((1, 231, 230, 3), np.float32))
    with pytest.raises(ValueError, match=r"overfeat: unknown option output_stride=16; it "
                       r"takes dropout_keep_prob, global_pool"):
        kslim.models.create_model("overfeat", output_stride=16)
    with pytest.raises(ValueError, match=r"alexnet_v2: dropout_keep_prob must be in"):
        kslim.models.create_model("alexnet_v2", dropout_keep_prob=0.0)
