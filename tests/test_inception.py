"""Inception v1/v2/v3 against tf_slim's `nets/inception_v1.py`, `inception_v2.py` and
`inception_v3.py`, built live in TF1 graphs, on checkpoints tf_slim's Saver wrote.

Each slim reference runs once per session (see `inception_helpers.run_slim_case`).
"""

import numpy as np
import pytest
import tensorflow as tf

import kslim
import kslim.preprocess
from kslim import compat
from kslim.models import inception
from inception_helpers import run_slim_case
from slim_harness import assert_close, recipe_inputs, recipe_value, with_scope

NETS = ("inception_v1", "inception_v2", "inception_v3")
LAST_BLOCK = {"inception_v1": "Mixed_5c", "inception_v2": "Mixed_5c",
              "inception_v3": "Mixed_7c"}

# Another size and class count per net, each at the smallest size the net accepts
# with slim's defaults (v2 accepts any size: 97 exercises the reduced 4x4 pool), and
# v2 thinned to 0.25 (depth(64) = 16, so the stem's depthwise multiplier is 5 and
# min_depth clamps the 32-deep convs).
OTHER = {
    "inception_v1": (193, 10, {}),
    "inception_v2": (97, 10, {"depth_multiplier": 0.25}),
    "inception_v3": (107, 10, {}),  # AuxLogits Conv2d_2a_1x1, Logits AvgPool_1a_2x2
}


def slim_build(net, num_classes, **kwargs):
    """`build(images, is_training, reuse)` for tf_slim's net under its arg scope."""
    from tf_slim.nets import inception as slim_inception

    net_fn = getattr(slim_inception, net)
    arg_scope = getattr(slim_inception, f"{net}_arg_scope")

    def build(images, is_training, reuse):
        return with_scope(arg_scope(), net_fn, images, num_classes,
                          is_training=is_training, reuse=reuse, **kwargs)

    return build


@pytest.fixture(scope="session")
def default_case(slim, tmp_path_factory):
    """Each slim net at its default size with 1001 classes, run once per session."""
    cache = {}

    def get(net):
        if net not in cache:
            size = kslim.models.get_spec(net).image_size
            inputs = recipe_inputs(1, size, seed=NETS.index(net))
            folder = tmp_path_factory.mktemp(net)
            cache[net] = inputs, run_slim_case(slim_build(net, 1001), inputs,
                                               str(folder / "model.ckpt"))
        return cache[net]

    return get


def shapes(model):
    return {name: tuple(v.shape) for name, v in compat.slim_variables(model).items()}


def check_end_points(model, inputs, case, what):
    points = model.endpoints(inputs)
    assert set(case.end_points) <= set(points), sorted(set(case.end_points) - set(points))
    return max(assert_close(points[key], value, f"{what} end point {key}")
               for key, value in case.end_points.items())


@pytest.mark.parametrize("net", NETS)
def test_matches_slim_at_default_size(default_case, net):
    inputs, case = default_case(net)
    model = kslim.models.create_model(net, weights=case.checkpoint)
    assert shapes(model) == dict(case.variables)
    sizes = {name: int(np.prod(shape)) for name, shape in case.variables}
    assert model.count_params() == sum(sizes.values())
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == sum(
        size for name, size in sizes.items() if "/moving_" not in name)
    assert_close(model(inputs, training=False), case.output, f"{net} logits")
    check_end_points(model, inputs, case, net)


@pytest.mark.parametrize("net", NETS)
def test_features_are_slims_prelogits(default_case, net):
    """num_classes=0 / include_top=False: slim's pooled features before dropout."""
    inputs, case = default_case(net)
    features = kslim.models.create_model(net, include_top=False, weights=case.checkpoint)
    assert not any("/Logits/" in n or "/AuxLogits/" in n for n in compat.slim_variables(features))
    # At the default size slim's Logits average pool (7x7, or 8x8 for v3) covers the
    # whole last block: the features are its mean.
    expected = case.end_points[LAST_BLOCK[net]].mean(axis=(1, 2), keepdims=True)
    output = features(inputs)
    assert_close(output, expected, f"{net} features")
    if "PreLogits" in case.end_points:  # v3: the same tensor, dropout is off in eval
        assert_close(output, case.end_points["PreLogits"], f"{net} PreLogits")
    if net == "inception_v1":  # keras.applications-style pooling of the features
        pooled = kslim.models.create_model(net, num_classes=0, pooling="avg",
                                           weights=case.checkpoint)
        assert_close(pooled(inputs), expected[:, 0, 0, :], f"{net} pooled features")


@pytest.mark.parametrize("net", NETS)
def test_other_size_classes_and_training_mode(slim, tmp_path, net):
    """Eval parity at another size and class count; training mode (batch statistics,
    dropout off) and the batch-norm moving statistics after one update."""
    size, classes, options = OTHER[net]
    inputs = recipe_inputs(2, size, seed=7)
    case = run_slim_case(slim_build(net, classes, dropout_keep_prob=1.0, **options), inputs,
                         str(tmp_path / "model.ckpt"), training=True)
    model = kslim.models.create_model(net, num_classes=classes, input_shape=(size, size, 3),
                                      dropout_keep_prob=1.0, weights=case.checkpoint,
                                      **options)
    assert model.min_input_size == size or net == "inception_v2"
    assert shapes(model) == dict(case.variables)
    assert_close(model(inputs, training=False), case.output, f"{net} logits at {size}")
    check_end_points(model, inputs, case, f"{net} at {size}")

    assert not np.allclose(case.train_output, case.output, atol=1e-3), \
        "slim's training-mode output should differ from eval (batch statistics)"
    output = model(inputs, training=True)
    if net == "inception_v3":
        assert set(output) == {"logits", "aux_logits"}
        assert_close(output["aux_logits"], case.train_end_points["AuxLogits"],
                     f"{net} training aux logits")
        output = output["logits"]
    assert_close(output, case.train_output, f"{net} training logits")

    variables = compat.slim_variables(model)
    moving = [name for name in case.updated if "/moving_" in name]
    assert len(moving) == 2 * sum(n.endswith("/BatchNorm/beta") for n in case.updated)
    changed = 0
    for name in moving:
        assert_close(variables[name].numpy(), case.updated[name], f"{name} after one update")
        changed += not np.allclose(case.updated[name], recipe_value(name, variables[name].shape))
    assert changed == len(moving), "every moving statistic should have moved"


# Registry: each name at a small size it accepts, 5 classes.
SMALL = {"inception_v1": 193, "inception_v2": 64, "inception_v3": 107}


@pytest.mark.parametrize("net", NETS)
def test_registry_forward_and_config_round_trip(net):
    spec = kslim.models.get_spec(net)
    scope = {"inception_v1": "InceptionV1", "inception_v2": "InceptionV2",
             "inception_v3": "InceptionV3"}[net]
    heads = ("Logits", "AuxLogits") if net == "inception_v3" else ("Logits",)
    assert (spec.image_size, spec.num_classes, spec.preprocessing, spec.scope) == (
        299 if net == "inception_v3" else 224, 1001, net, scope)
    assert spec.head_scopes == tuple(f"{scope}/{head}" for head in heads)
    assert net in kslim.models.list_models("inception*")
    assert callable(getattr(kslim.models, net))
    kslim.preprocess.get_preprocessing(spec.preprocessing)  # a known preprocessing name

    size = SMALL[net]
    model = kslim.models.create_model(net, num_classes=5, input_shape=(size, size, 3))
    inputs = recipe_inputs(2, size, seed=11)
    logits = model(inputs, training=False)
    assert logits.shape == (2, 5) and np.all(np.isfinite(logits))
    train = model(inputs, training=True)
    if net == "inception_v3":
        assert train["logits"].shape == train["aux_logits"].shape == (2, 5)
        train = train["aux_logits"]
    assert train.shape == (2, 5) and np.all(np.isfinite(train))

    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    clone.build_for((size, size, 3))
    assert shapes(clone) == shapes(model)
    assert clone.count_params() == model.count_params()


def _sparse_ce(labels, logits):
    logits = np.asarray(logits, np.float64)
    top = logits.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return float(np.mean(log_z - logits[np.arange(len(labels)), labels]))


def test_inception_v3_fit_adds_aux_loss():
    """compute_loss = CE(logits) + 0.4 * CE(aux logits); model.fit reports it and trains."""
    keras = pytest.importorskip("keras")
    model = kslim.models.create_model("inception_v3", num_classes=4, input_shape=(107, 107, 3),
                                      depth_multiplier=0.25, dropout_keep_prob=1.0)
    inputs = recipe_inputs(4, 107, seed=3)
    labels = np.array([0, 1, 2, 3])
    model.compile(optimizer=keras.optimizers.SGD(0.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    predicted = model(inputs, training=True)
    expected = (_sparse_ce(labels, predicted["logits"])
                + 0.4 * _sparse_ce(labels, predicted["aux_logits"]))
    assert _sparse_ce(labels, predicted["aux_logits"]) > 0.01  # the aux term is not empty
    loss = model.compute_loss(inputs, labels, predicted)
    assert float(loss) == pytest.approx(expected, rel=1e-5)

    before = [w.numpy() for w in model.trainable_weights]
    history = model.fit(inputs, labels, batch_size=4, epochs=1, verbose=0)  # lr 0: frozen
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-4)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.trainable_weights))

    model.optimizer.learning_rate.assign(0.01)
    history = model.fit(inputs, labels, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    aux = compat.slim_variables(model)["InceptionV3/AuxLogits/Conv2d_2b_1x1/weights"]
    index = next(i for i, w in enumerate(model.trainable_weights) if w is aux)
    assert not np.array_equal(aux.numpy(), before[index])


def test_options_global_pool_squeeze_and_arg_scope(default_case):
    inputs, case = default_case("inception_v1")
    model = kslim.models.inception_v1(global_pool=True, spatial_squeeze=False,
                                      weights=case.checkpoint)
    points = model.endpoints(inputs)
    assert "global_pool" in points and "AvgPool_0a_7x7" not in points
    # At 224 the last block is 7x7, so the global mean is slim's 7x7 window.
    assert_close(points["Logits"][:, 0, 0, :], case.output, "global_pool, no squeeze")
    assert model(np.zeros((1, 256, 256, 3), np.float32)).shape == (1, 1, 1, 1001)

    # inception_arg_scope's options, on a thinned v2 (names and shapes only; the
    # default names are checked against slim above).
    def build(**options):
        model = kslim.models.create_model("inception_v2", num_classes=3, depth_multiplier=0.25,
                                          input_shape=(32, 32, 3), **options)
        return model, shapes(model)

    model, default = build(weight_decay=4e-5)
    # depth(64) = 16: slim's depthwise multiplier min(int(16 / 3), 8) = 5.
    assert default["InceptionV2/Conv2d_1a_7x7/depthwise_weights"] == (7, 7, 3, 5)
    assert default["InceptionV2/Conv2d_1a_7x7/pointwise_weights"] == (1, 1, 15, 16)
    assert "InceptionV2/Conv2d_1a_7x7/biases" in default  # slim's separable conv: no BN
    regularized = [v for n, v in compat.slim_variables(model).items() if n.endswith("/weights")]
    assert len(model.losses) == len(regularized)  # conv2d weights only, as the arg scope
    expected = sum(4e-5 * float(tf.reduce_sum(tf.square(w))) / 2 for w in regularized)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)

    _, plain = build(use_separable_conv=False, batch_norm_scale=True)
    assert plain["InceptionV2/Conv2d_1a_7x7/weights"] == (7, 7, 3, 16)
    assert plain["InceptionV2/Conv2d_1a_7x7/BatchNorm/gamma"] == (16,)
    assert "InceptionV2/Conv2d_1a_7x7/depthwise_weights" not in plain
    _, rootless = build(use_batch_norm=False, include_root_block=False, global_pool=True)
    assert not any("BatchNorm" in n for n in rootless)
    assert rootless["InceptionV2/Mixed_5c/Branch_3/Conv2d_0b_1x1/biases"] == (32,)
    assert not any(n.startswith(("InceptionV2/Conv2d_", "InceptionV2/MaxPool")) for n in rootless)
    assert rootless["InceptionV2/Mixed_3b/Branch_0/Conv2d_0a_1x1/weights"] == (1, 1, 3, 16)


def test_bad_input_and_options():
    v1 = kslim.models.create_model("inception_v1", num_classes=3)
    with pytest.raises(ValueError, match=r"inception_v1 \(InceptionV1\) needs images of at "
                       r"least 193x193, got height 192 .*global_pool=True accepts any size"):
        v1(np.zeros((1, 192, 224, 3), np.float32))
    with pytest.raises(ValueError, match=r"inception_v1 .*3 input channels.*got 1"):
        v1(np.zeros((1, 224, 224, 1), np.float32))
    with pytest.raises(ValueError, match=r"inception_v1: spatial_squeeze needs the logits "
                       r"to be 1x1 but it is 2x2.*global_pool=True"):
        v1(np.zeros((1, 256, 256, 3), np.float32))
    assert inception.InceptionV1(global_pool=True).min_input_size == 1
    assert inception.InceptionV2().min_input_size == 1
    v3 = inception.InceptionV3(num_classes=3)
    with pytest.raises(ValueError, match=r"inception_v3 \(InceptionV3\) needs images of at "
                       r"least 107x107, got width 100 .*create_aux_logits=False accepts 75x75"):
        v3(np.zeros((1, 299, 100, 3), np.float32))
    assert inception.InceptionV3(create_aux_logits=False).min_input_size == 75
    assert inception.InceptionV3(num_classes=0).min_input_size == 75

    with pytest.raises(ValueError, match=r"inception_v1: unknown option depth_multiplier=0.5; "
                       r"it takes batch_norm_decay, .*global_pool"):
        kslim.models.create_model("inception_v1", depth_multiplier=0.5)
    with pytest.raises(ValueError, match=r"inception_v2: unknown option create_aux_logits"):
        kslim.models.create_model("inception_v2", create_aux_logits=False)
    with pytest.raises(ValueError, match=r"inception_v3: unknown option use_separable_conv"):
        kslim.models.create_model("inception_v3", use_separable_conv=False)
    with pytest.raises(ValueError, match=r"unknown model name 'inception_v5'; did you "
                       r"mean") as error:
        kslim.models.create_model("inception_v5")
    assert all(net in str(error.value) for net in NETS)
    with pytest.raises(ValueError, match=r"data_format='NCHW' is not supported.*NHWC"):
        inception.InceptionV2(data_format="NCHW")
    with pytest.raises(ValueError, match=r"inception_v3: depth_multiplier must be greater "
                       r"than zero, got 0"):
        inception.InceptionV3(depth_multiplier=0)
    with pytest.raises(ValueError, match=r"inception_v2: dropout_keep_prob must be in"):
        inception.InceptionV2(dropout_keep_prob=0.0)


def test_inception_v3_aux_head_follows_build_size():
    """slim names the aux conv after the reduced kernel of the size the net is built for."""
    model = kslim.models.create_model("inception_v3", num_classes=3, depth_multiplier=0.25,
                                      input_shape=(155, 155, 3))
    names = set(compat.slim_variables(model))
    assert "InceptionV3/AuxLogits/Conv2d_2a_2x2/weights" in names  # 155: Mixed_6e 8x8, pooled 2x2
    inputs = np.zeros((2, 120, 120, 3), np.float32)  # pooled 1x1 < the built 2x2 kernel
    assert "AuxLogits" not in model.endpoints(inputs)  # inference skips it
    with pytest.raises(ValueError, match=r"AuxLogits head was built for a map of at least "
                       r"2x2 \(Conv2d_2a_2x2\).*gives 1x1"):
        model(inputs, training=True)
