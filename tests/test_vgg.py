"""VGG against tf_slim's `nets/vgg.py`, on checkpoints tf_slim itself wrote."""

import numpy as np
import pytest
import tensorflow as tf

import kslim
from kslim import compat
from slim_harness import assert_close, recipe_inputs, run_slim, with_scope

# (net, num_classes, checkpoint format): each net at 224 with 1000 classes from a V2
# checkpoint and with 7 classes from a V1 checkpoint (the 2016 zoo format).
CASES = [(net, classes, fmt) for net in ("vgg_a", "vgg_16", "vgg_19")
         for classes, fmt in ((1000, "V2"), (7, "V1"))]


def slim_vgg(slim, net, num_classes, **kwargs):
    from tf_slim.nets import vgg

    def build(images):
        return with_scope(vgg.vgg_arg_scope(), getattr(vgg, net), images, num_classes,
                          is_training=False, **kwargs)

    return build


@pytest.fixture(scope="session")
def vgg_reference(slim, tmp_path_factory):
    """Runs each slim VGG once per case and keeps its checkpoint for the session."""
    cache = {}

    def get(net, num_classes, fmt):
        key = (net, num_classes, fmt)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"{net}_{num_classes}_{fmt}")
            inputs = recipe_inputs(1, 224, seed=len(cache))
            run = run_slim(slim_vgg(slim, net, num_classes), inputs,
                           checkpoint=str(folder / f"{net}.ckpt"), write_version=fmt)
            cache[key] = (inputs, run)
        return cache[key]

    return get


@pytest.mark.parametrize("net,num_classes,fmt", CASES)
def test_vgg_matches_slim(vgg_reference, net, num_classes, fmt):
    inputs, run = vgg_reference(net, num_classes, fmt)
    model = kslim.models.create_model(net, num_classes=num_classes, weights=run.checkpoint)
    assert set(compat.slim_variables(model)) == {name for name, _ in run.variables}
    shapes = {name: tuple(v.shape) for name, v in compat.slim_variables(model).items()}
    assert shapes == dict(run.variables)
    assert_close(model(inputs, training=False), run.output, f"{net} logits")
    points = model.endpoints(inputs)
    assert set(run.end_points) <= set(points)
    for key, value in run.end_points.items():
        assert_close(points[key], value, f"{net} end point {key}")


def test_vgg_options(vgg_reference):
    inputs, run = vgg_reference("vgg_16", 1000, "V2")
    model = kslim.models.vgg_16(weights=run.checkpoint, spatial_squeeze=False)
    assert model(inputs).shape == (1, 1, 1, 1000)
    pooled = kslim.models.vgg_16(weights=run.checkpoint, global_pool=True)
    assert_close(pooled(inputs), run.output, "global_pool at 224")  # fc7 is 1x1 here
    features = kslim.models.vgg16(include_top=False, weights=run.checkpoint)
    fc7 = run.end_points["vgg_16/fc7"]
    assert_close(features(inputs), fc7, "include_top=False features (fc7)")
    flat = kslim.models.vgg16(num_classes=0, pooling="avg", weights=run.checkpoint)
    assert_close(flat(inputs), fc7[:, 0, 0, :], "pooled features")
    # fc_conv_padding='SAME' runs fully convolutionally on a larger image.
    dense = kslim.models.vgg_16(fc_conv_padding="SAME", spatial_squeeze=False,
                                input_shape=(256, 256, 3))
    assert dense(np.zeros((1, 256, 256, 3), np.float32)).shape == (1, 8, 8, 1000)


def test_vgg_registry_and_errors():
    assert kslim.models.list_models("vgg*") == ["vgg_16", "vgg_19", "vgg_a"]
    spec = kslim.models.get_spec("vgg16")
    assert (spec.name, spec.image_size, spec.num_classes, spec.preprocessing) == (
        "vgg_16", 224, 1000, "vgg")
    assert spec.head_scopes == ("vgg_16/fc8",)
    with pytest.raises(ValueError, match=r"unknown model name 'vgg_61'.*vgg_16"):
        kslim.models.create_model("vgg_61")
    model = kslim.models.create_model("vgg_a", num_classes=3)
    with pytest.raises(ValueError, match=r"vgg_a .*at least 224x224, got height 200"):
        model(np.zeros((1, 200, 224, 3), np.float32))
    with pytest.raises(ValueError, match=r"vgg_a .*3 input channels.*got 1"):
        model(np.zeros((1, 224, 224, 1), np.float32))
    with pytest.raises(ValueError, match=r"vgg_a.*spatial_squeeze.*2x2"):
        model(np.zeros((1, 256, 256, 3), np.float32))
    with pytest.raises(ValueError, match=r"vgg_a: unknown option depth_multiplier=2; it "
                       r"takes dropout_keep_prob, fc_conv_padding"):
        kslim.models.create_model("vgg_a", depth_multiplier=2)
    with pytest.raises(ValueError, match="fc_conv_padding must be 'SAME' or 'VALID'"):
        kslim.models.create_model("vgg_a", fc_conv_padding="FULL")


def test_vgg_config_round_trip():
    model = kslim.models.create_model("vgg_a", num_classes=5, global_pool=True,
                                      dropout_keep_prob=0.7, name="my_vgg")
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.build_for((224, 224, 3))
    assert sorted(compat.slim_variables(clone)) == sorted(compat.slim_variables(model))
    assert all(name.startswith("my_vgg/") for name in compat.slim_variables(clone))


def test_forward_function_is_the_call_compiled_once():
    model = kslim.models.create_model("vgg_a", num_classes=3, input_shape=(224, 224, 3))
    forward = model.forward_function()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 224, 224, 3)).astype(np.float32)
    np.testing.assert_allclose(forward(tf.constant(x)).numpy(),
                               model(x, training=False).numpy(), rtol=1e-5, atol=1e-6)
    assert forward(tf.constant(x[:1])).shape == (1, 3)  # any batch size
    with pytest.raises(ValueError, match=r"\(batch, 224, 224, 3\).*\(1, 256, 256, 3\)"):
        forward(tf.zeros([1, 256, 256, 3]))
    unbuilt = type(model)(num_classes=3)
    with pytest.raises(ValueError, match="input_shape"):
        unbuilt.forward_function()


def test_vgg_weight_decay_is_slims_l2():
    model = kslim.models.create_model("vgg_a", num_classes=4, weight_decay=5e-4)
    weights = [v for name, v in compat.slim_variables(model).items()
               if name.endswith("/weights")]
    expected = sum(5e-4 * float(tf.reduce_sum(tf.square(w))) / 2 for w in weights)
    assert len(model.losses) == len(weights)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)


def test_vgg_trains_with_fit():
    """model.fit on a repeated tiny batch: dropout active, the loss goes down."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(1)
    model = kslim.models.create_model("vgg_a", num_classes=4, fc_conv_padding="SAME",
                                      input_shape=(32, 32, 3))
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    y = np.array([0, 1, 2, 3])
    a, b = model(x, training=True), model(x, training=True)
    assert not np.allclose(a, b), "dropout is not active in training mode"
    np.testing.assert_allclose(model(x), model(x))  # and off in inference
    model.compile(optimizer=keras.optimizers.SGD(0.005, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=4, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0], losses


def test_vgg_fit_under_mirrored_strategy(tmp_path):
    """Weights loaded inside the strategy scope, trained over two logical CPUs."""
    keras = pytest.importorskip("keras")
    cpus = tf.config.list_logical_devices("CPU")
    assert len(cpus) >= 2, "conftest should configure two logical CPUs"
    source = kslim.models.create_model("vgg_a", num_classes=4, fc_conv_padding="SAME",
                                       input_shape=(32, 32, 3))
    prefix = compat.save_slim_checkpoint(source, str(tmp_path / "model.ckpt"))
    strategy = tf.distribute.MirroredStrategy([d.name for d in cpus[:2]])
    with strategy.scope():
        model = kslim.models.create_model("vgg_a", num_classes=4, fc_conv_padding="SAME",
                                          input_shape=(32, 32, 3), weights=prefix)
        model.compile(optimizer=keras.optimizers.SGD(0.005),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(model(x), source(x), atol=1e-5)
    history = model.fit(x, np.arange(4), batch_size=4, epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert len(history.history["loss"]) == 3
