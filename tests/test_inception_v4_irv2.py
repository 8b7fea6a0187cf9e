"""Inception v4 and Inception-ResNet-v2 against research/slim's reference fixtures
(tests/fixtures/<net>-1001-299), plus training with the aux heads, IRv2's
align_feature_maps (checked against the shapes of slim's own tests), and errors.

The 299x299 nets are heavy on a CPU: each fixture runs once per session (batch 2)
and the other checks use the smallest sizes the nets accept.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kslim
from fixture_case_helpers import (assign_recipe, case_inputs, case_variables,
                                  check_end_point_stats, load_case, model_variables)
from kslim import compat
from kslim.models.inception_resnet_v2 import (InceptionResnetV2, _BiasDecayConv2d,
                                              residual_add)
from kslim.models.inception_v4 import FullConv, InceptionV4
from slim_harness import assert_close

CASES = {"inception_v4": "inception_v4-1001-299",
         "inception_resnet_v2": "inception_resnet_v2-1001-299"}
SCOPES = {"inception_v4": "InceptionV4", "inception_resnet_v2": "InceptionResnetV2"}


@pytest.fixture(scope="module")
def fixture_run():
    """Per net, once: the model at 299 with the recipe weights and its end points on
    the fixture's input."""
    cache = {}

    def get(net):
        if net not in cache:
            manifest, expected = load_case(CASES[net])
            model = kslim.models.create_model(net)
            variables = model_variables(model)
            assign_recipe(model)
            points = {k: np.asarray(v) for k, v in
                      model.endpoints(case_inputs(manifest)).items()}
            cache[net] = (model, variables, points, manifest, expected)
        return cache[net]

    return get


# -- 1. the research/slim fixtures ------------------------------------------------------

@pytest.mark.parametrize("net", sorted(CASES))
def test_matches_slim_fixture(fixture_run, net):
    _, variables, points, manifest, expected = fixture_run(net)
    assert variables == case_variables(manifest)
    assert_close(points["Logits"], expected["logits"], f"{net} logits")
    check_end_point_stats(points, manifest, net)
    assert set(points) == set(manifest["end_points"])


@pytest.mark.parametrize("net", sorted(CASES))
def test_other_image_size(fixture_run, net):
    """Built at 299, the net runs at 150 for inference; the aux head (sized for 299,
    as slim) is left out there, and training at 150 fails before anything runs."""
    model = fixture_run(net)[0]
    images = np.random.default_rng(1).uniform(-1, 1, (1, 150, 150, 3)).astype(np.float32)
    points = model.endpoints(images)
    assert "AuxLogits" not in points and points["Logits"].shape == (1, 1001)
    last = "Mixed_7d" if net == "inception_v4" else "Conv2d_7b_1x1"
    assert points[last].shape == (1, 3, 3, 1536)  # slim's testHalfSizeImages
    moving = [v for n, v in compat.slim_variables(model).items() if "moving_mean" in n]
    before = [np.array(v) for v in moving[:3]]
    with pytest.raises(ValueError, match=rf"{net}: the AuxLogits head was built for a 5x5 "
                                         r"map .*gives 1x1.*create_aux_logits=False"):
        model(images, training=True)
    for variable, value in zip(moving, before):
        np.testing.assert_array_equal(variable, value)


# -- 2. training: aux heads and model.fit ------------------------------------------------

TRAIN_CASES = {
    # the smallest image sizes with an aux head: 107 (VALID), 65 (align_feature_maps)
    "inception_v4": (107, {}),
    "inception_resnet_v2": (65, {"align_feature_maps": True}),
}


@pytest.fixture(scope="module")
def train_model():
    cache = {}

    def get(net):
        if net not in cache:
            size, options = TRAIN_CASES[net]
            keras.utils.set_random_seed(0)
            cache[net] = kslim.models.create_model(
                net, num_classes=3, input_shape=(size, size, 3), weight_decay=4e-5,
                **options)
        return cache[net]

    return get


@pytest.mark.parametrize("net", sorted(CASES))
def test_training_returns_aux_logits_and_fit_steps(train_model, net):
    model = train_model(net)
    size = TRAIN_CASES[net][0]
    assert model.min_input_size == size
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
    outputs = model(x, training=True)
    assert sorted(outputs) == ["aux_logits", "logits"]
    assert outputs["logits"].shape == outputs["aux_logits"].shape == (2, 3)
    assert model(x, training=False).shape == (2, 3)

    variables = compat.slim_variables(model)
    scope = SCOPES[net]
    watched = [f"{scope}/Conv2d_1a_3x3/weights", f"{scope}/Conv2d_1a_3x3/BatchNorm/moving_mean",
               f"{scope}/AuxLogits/Conv2d_1b_1x1/weights", f"{scope}/Logits/Logits/biases"]
    before = {n: np.array(variables[n]) for n in watched}
    # Graph-mode fit for Inception v4; IRv2's train step runs eagerly to keep the
    # suite fast (tracing its 900-variable backward pass costs ~13 CPU-seconds; its
    # forward pass is already traced in a graph when the model is built).
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  run_eagerly=net == "inception_resnet_v2")
    history = model.fit(x, np.array([0, 2]), batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for name, value in before.items():
        assert not np.allclose(variables[name], value), f"{name} did not change"


@pytest.mark.parametrize("net", sorted(CASES))
def test_weight_decay_is_slims_l2(train_model, net):
    """inception_arg_scope regularizes conv/fc weights; IRv2's arg scope biases too."""
    model = train_model(net)
    variables = compat.slim_variables(model)
    suffixes = ("/weights",) if net == "inception_v4" else ("/weights", "/biases")
    decayed = [v for n, v in variables.items() if n.endswith(suffixes)]
    assert len(model.losses) == len(decayed)
    expected = sum(4e-5 * float(tf.reduce_sum(tf.square(v))) / 2 for v in decayed)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-4)


def test_align_feature_maps_shapes(train_model):
    """SAME padding throughout the base: the sizes of slim's
    testBuildAndCheckAllEndPointsUptoPreAuxLogitsWithAlignedFeatureMaps at 299, and
    the real end points at 65."""
    model = train_model("inception_resnet_v2")
    assert model._sizes(299) == {
        "Conv2d_1a_3x3": 150, "Conv2d_2a_3x3": 150, "Conv2d_2b_3x3": 150,
        "MaxPool_3a_3x3": 75, "Conv2d_3b_1x1": 75, "Conv2d_4a_3x3": 75,
        "MaxPool_5a_3x3": 38, "Mixed_5b": 38, "Mixed_6a": 19, "Mixed_7a": 10}
    assert InceptionResnetV2()._sizes(299) == {
        "Conv2d_1a_3x3": 149, "Conv2d_2a_3x3": 147, "Conv2d_2b_3x3": 147,
        "MaxPool_3a_3x3": 73, "Conv2d_3b_1x1": 73, "Conv2d_4a_3x3": 71,
        "MaxPool_5a_3x3": 35, "Mixed_5b": 35, "Mixed_6a": 17, "Mixed_7a": 8}
    points = model.endpoints(np.zeros((1, 65, 65, 3), np.float32))
    for key, size in model._sizes(65).items():
        assert points[key].shape[1:3] == (size, size), key
    assert points["PreAuxLogits"].shape == (1, 5, 5, 1088)
    assert points["Conv2d_7b_1x1"].shape == (1, 3, 3, 1536)
    assert points["AuxLogits"].shape == (1, 3)


def test_features_without_classifier():
    """num_classes=0 (include_top=False): slim returns `global_pool` before dropout,
    with no Logits or AuxLogits variables; at 75x75, the smallest size without aux."""
    model = kslim.models.create_model("inception_v4", include_top=False,
                                      input_shape=(75, 75, 3))
    assert model.min_input_size == 75
    assert not [n for n in compat.slim_variables(model) if "Logits" in n]
    x = np.random.default_rng(2).uniform(-1, 1, (1, 75, 75, 3)).astype(np.float32)
    points = model.endpoints(x)
    assert points["Mixed_7d"].shape == (1, 1, 1, 1536)
    assert not {"AuxLogits", "Logits", "PreLogitsFlatten"} & set(points)
    np.testing.assert_allclose(model(x), points["global_pool"], rtol=1e-6)
    model.pooling = "avg"  # keras.applications' pooling= for the features
    np.testing.assert_allclose(model(x), points["global_pool"][:, 0, 0], rtol=1e-6)


# -- 3. quirks, by hand -------------------------------------------------------------------

def test_residual_add_quirk():
    net = tf.constant([1.0, -2.0, 3.0])
    up = tf.constant([100.0, -100.0, 1.0])
    # relu6 clips the scaled residual to [-6, 6] first (slim's "bandpass" quirk).
    np.testing.assert_allclose(residual_add(net, up, 0.1, "relu6"), [6.0, 0.0, 3.1], rtol=1e-6)
    np.testing.assert_allclose(residual_add(net, up, 0.1, "relu"), [11.0, 0.0, 3.1], rtol=1e-6)
    np.testing.assert_allclose(residual_add(net, up, 0.1, None), [11.0, -12.0, 3.1], rtol=1e-6)


def test_irv2_bias_decay_and_full_conv_layers():
    layer = _BiasDecayConv2d(4, 1, activation_fn=None, weight_decay=0.5, name="Conv2d_1x1")
    layer(tf.ones((1, 2, 2, 3)))
    layer.biases.assign(tf.fill([4], 2.0))
    expected = 0.5 * float(tf.reduce_sum(tf.square(layer.kernel))) / 2 + 0.5 * 16.0 / 2
    assert float(tf.add_n(layer.losses)) == pytest.approx(expected, rel=1e-5)
    full = FullConv(6, name="Conv2d_2a", activation_fn=None)
    assert full(tf.ones((2, 5, 3, 4))).shape == (2, 1, 1, 6)
    assert tuple(full.kernel.shape) == (5, 3, 4, 6)
    with pytest.raises(ValueError, match=r"Conv2d_2a: the auxiliary head needs a known "
                                         r"image size.*create_aux_logits=False"):
        FullConv(6, name="Conv2d_2a").build((None, None, None, 4))


# -- 4. registry, config, errors ----------------------------------------------------------

def test_registry_and_config():
    for net, scope in SCOPES.items():
        spec = kslim.models.get_spec(net)
        assert (spec.image_size, spec.num_classes, spec.preprocessing, spec.scope) == (
            299, 1001, net, scope)
        assert spec.head_scopes == (f"{scope}/Logits", f"{scope}/AuxLogits")
    for model in (InceptionV4(num_classes=5, create_aux_logits=False, dropout_keep_prob=0.5,
                              activation_fn="relu6", batch_norm_scale=True, name="v4"),
                  InceptionResnetV2(num_classes=0, align_feature_maps=True,
                                    activation_fn="relu6", conv_activation_fn="relu6")):
        config = model.get_config()
        assert type(model).from_config(config).get_config() == config
    assert (InceptionV4().min_input_size, InceptionV4(create_aux_logits=False).min_input_size,
            InceptionV4(num_classes=0).min_input_size) == (107, 75, 75)
    assert (InceptionResnetV2().min_input_size,
            InceptionResnetV2(create_aux_logits=False).min_input_size,
            InceptionResnetV2(align_feature_maps=True, num_classes=0).min_input_size) == (
                107, 75, 1)


@pytest.mark.parametrize("net", sorted(CASES))
def test_bad_input(fixture_run, net):
    model = fixture_run(net)[0]
    scope = SCOPES[net]
    with pytest.raises(ValueError, match=rf"{net} \({scope}\) needs images of at least "
                                         r"107x107, got width 100"):
        model(np.zeros((1, 120, 100, 3), np.float32))
    with pytest.raises(ValueError, match=rf"{net} \({scope}\) was built for 3 input "
                                         r"channels.*got 4"):
        model(np.zeros((1, 299, 299, 4), np.float32))
    with pytest.raises(ValueError, match=rf"{net}: unknown option output_stride=8; it "
                                         r"takes .*create_aux_logits"):
        kslim.models.create_model(net, output_stride=8)
    with pytest.raises(ValueError, match=r"unknown activation 'gelu6'"):
        kslim.models.create_model(net, activation_fn="gelu6")
