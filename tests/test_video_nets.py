"""The video nets i3d and s3dg against research/slim: the reference fixtures
(tests/fixtures/{i3d,s3dg}-400-224-frames16, made with the upstream `nets/i3d.py`,
`i3d_utils.py` and `s3dg.py`), and, for other clip sizes, class counts and options,
the same nets rebuilt from tf_slim's own layers in a TF1 graph (`slim_video_net`
below; tf_slim ships conv3d, max_pool3d, avg_pool3d and batch_norm but not the nets).

The 16x224x224 fixture clips run once per net; everything else uses small clips.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kslim
from fixture_case_helpers import (assign_recipe, case_variables, check_end_point_stats,
                                  load_case, model_variables)
from kslim import compat
from kslim.models.i3d import I3D
from kslim.models.s3dg import END_POINTS, S3DG
from kslim.models._video import CenterInitializer, SelfGating
from slim_harness import (assert_close, import_slim, recipe_value, restore_into_slim,
                          run_slim)
from training_helpers import run_cli

CASES = {"i3d": "i3d-400-224-frames16", "s3dg": "s3dg-400-224-frames16"}


def clips(batch, frames, height, width=None, seed=0):
    """Uniform [-1, 1) NDHWC clips, the fixtures' input recipe."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, [batch, frames, height, width or height, 3]).astype(
        np.float32)


# -- the reference: slim's s3dg/i3d from tf_slim layers ---------------------------------

# (end point, kind, numbers) in s3dg_base's order; a block's numbers are its six
# num_outputs (Branch_0, Branch_1 a/b, Branch_2 a/b, Branch_3).
SLIM_ROWS = (
    ("Conv2d_1a_7x7", "stem", 64), ("MaxPool_2a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Conv2d_2b_1x1", "conv", 64), ("Conv2d_2c_3x3", "conv3", 192),
    ("MaxPool_3a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Mixed_3b", "block", (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", "block", (128, 128, 192, 32, 96, 64)),
    ("MaxPool_4a_3x3", "pool", ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", "block", (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", "block", (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", "block", (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", "block", (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", "block", (256, 160, 320, 32, 128, 128)),
    ("MaxPool_5a_2x2", "pool", ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", "block", (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", "block", (384, 192, 384, 48, 128, 128)),
)
I3D_BASE = {"first_temporal_kernel_size": 7, "temporal_conv_startat": "Conv2d_2c_3x3",
            "gating_startat": None, "separable": False}


def slim_video_net(images, num_classes, is_training=False, first_temporal_kernel_size=3,
                   temporal_conv_startat="Conv2d_2c_3x3", gating_startat="Conv2d_2c_3x3",
                   final_endpoint="Mixed_5c", min_depth=16, depth_multiplier=1.0,
                   separable=True, dropout_keep_prob=0.8, spatial_squeeze=True):
    """slim's `s3dg(...)` under `s3dg_arg_scope()` (weight decay 0, as nets_factory), or
    `i3d` with `I3D_BASE` and `separable` as i3d_arg_scope's `separable_conv3d`."""
    slim = import_slim()
    v1 = tf.compat.v1

    def depth(d):
        return max(int(d * depth_multiplier), min_depth)

    def conv(net, outputs, kernel, scope, stride=1, split=None):
        """i3d_utils.conv3d_spatiotemporal."""
        split = separable if split is None else split
        if split and kernel[0] != 1:
            net = slim.conv3d(net, outputs, [1, kernel[1], kernel[2]],
                              stride=[1, stride, stride], scope=scope)
            return slim.conv3d(net, outputs, [kernel[0], 1, 1], stride=[stride, 1, 1],
                               normalizer_fn=None, scope=scope + "/temporal")
        return slim.conv3d(net, outputs, list(kernel), stride=stride, scope=scope)

    def gate(net, scope):
        """s3dg.self_gating (NDHWC)."""
        t, h, w, c = net.shape.as_list()[1:]
        pooled = slim.avg_pool3d(net, [t, w, h], stride=1,
                                 scope=scope + "/self_gating/avg_pool3d")
        weights = slim.conv3d(pooled, c, [1, 1, 1], activation_fn=None, normalizer_fn=None,
                              biases_initializer=None,
                              scope=scope + "/self_gating/transformer_W")
        return tf.sigmoid(tf.tile(weights, [1, t, w, h, 1])) * net

    def block(net, sizes, t, gated, scope):
        """i3d_utils.inception_block_v1_3d."""
        maybe = gate if gated else (lambda x, scope: x)
        with v1.variable_scope(scope):
            with v1.variable_scope("Branch_0"):
                b0 = maybe(slim.conv3d(net, sizes[0], [1, 1, 1], scope="Conv2d_0a_1x1"),
                           "Conv2d_0a_1x1")
            outs = [b0]
            for index, (a, b) in ((1, sizes[1:3]), (2, sizes[3:5])):
                with v1.variable_scope(f"Branch_{index}"):
                    x = slim.conv3d(net, a, [1, 1, 1], scope="Conv2d_0a_1x1")
                    x = conv(x, b, [t, 3, 3], "Conv2d_0b_3x3")
                    outs.append(maybe(x, "Conv2d_0b_3x3"))
            with v1.variable_scope("Branch_3"):
                x = slim.max_pool3d(net, [3, 3, 3], scope="MaxPool_0a_3x3")
                x = slim.conv3d(x, sizes[5], [1, 1, 1], scope="Conv2d_0b_1x1")
                outs.append(maybe(x, "Conv2d_0b_1x1"))
            return tf.concat(outs, 4)

    batch_norm = {"decay": 0.999, "epsilon": 0.001, "fused": False}
    end_points = {}
    with v1.variable_scope("InceptionV1"), \
            slim.arg_scope([slim.batch_norm, slim.dropout], is_training=is_training):
        with slim.arg_scope([slim.conv3d], activation_fn=tf.nn.relu,
                            normalizer_fn=slim.batch_norm, normalizer_params=batch_norm,
                            weights_initializer=v1.truncated_normal_initializer(stddev=0.01)), \
                slim.arg_scope([slim.conv3d, slim.max_pool3d], stride=1, padding="SAME"):
            net, t, gated = images, 1, False
            for name, kind, numbers in SLIM_ROWS:
                if kind in ("conv3", "block"):
                    t = 3 if name == temporal_conv_startat else t
                    gated = gated or name == gating_startat
                if kind == "stem":
                    net = conv(net, depth(numbers), [first_temporal_kernel_size, 7, 7], name,
                               stride=2, split=False)
                elif kind == "pool":
                    net = slim.max_pool3d(net, list(numbers[0]), stride=list(numbers[1]),
                                          scope=name)
                elif kind == "conv":
                    net = slim.conv3d(net, depth(numbers), [1, 1, 1], scope=name)
                elif kind == "conv3":
                    net = conv(net, depth(numbers), [t, 3, 3], name)
                    net = gate(net, name) if gated else net
                else:
                    net = block(net, [depth(n) for n in numbers], t, gated, name)
                end_points[name] = net
                if name == final_endpoint:
                    break
        with v1.variable_scope("Logits"):
            shape = net.shape.as_list()
            kernel = [min(shape[1], 2), min(shape[2], 7), min(shape[3], 7)]
            net = slim.avg_pool3d(net, kernel, stride=1, scope="AvgPool_0a_7x7")
            net = slim.dropout(net, dropout_keep_prob, scope="Dropout_0b")
            logits = slim.conv3d(net, num_classes, [1, 1, 1], activation_fn=None,
                                 normalizer_fn=None, scope="Conv2d_0c_1x1")
            logits = tf.reduce_mean(logits, axis=1)
            if spatial_squeeze:
                logits = tf.squeeze(logits, [1, 2], name="SpatialSqueeze")
            end_points["Logits"] = logits
            end_points["Predictions"] = slim.softmax(logits, scope="Predictions")
    return logits, end_points


def assert_end_points(points, slim_points, what):
    assert set(points) == set(slim_points), what
    for key, value in slim_points.items():
        assert_close(points[key], value, f"{what} end point {key}")


# -- 1. the research/slim fixtures (16 frames, 224x224, 400 classes) ----------------------

@pytest.mark.parametrize("net", sorted(CASES))
def test_matches_slim_fixture(net):
    manifest, expected = load_case(CASES[net])
    frames, size = manifest["frames"], manifest["image_size"]
    model = kslim.models.create_model(net, num_classes=manifest["num_classes"],
                                      input_shape=(frames, size, size, 3))
    variables = model_variables(model)
    # names, shapes and creation order of slim's variable list (its checkpoint)
    assert list(variables.items()) == list(case_variables(manifest).items())
    assign_recipe(model)
    rng = np.random.default_rng(manifest["input_seed"])
    inputs = rng.uniform(-1.0, 1.0, [manifest["batch"], frames, size, size, 3]).astype(
        np.float32)
    points = {k: np.asarray(v) for k, v in model.endpoints(inputs).items()}
    assert_close(points["Logits"], expected["logits"], f"{net} logits")
    check_end_point_stats(points, manifest, net)
    assert set(points) == set(manifest["end_points"])
    np.testing.assert_allclose(model(inputs, training=False), points["Logits"], atol=1e-6)


def test_registry_specs():
    assert {"i3d", "s3dg"} <= set(kslim.models.list_models())
    for name, cls in (("i3d", I3D), ("s3dg", S3DG)):
        spec = kslim.models.get_spec(name)
        assert (spec.model_class, spec.image_size, spec.num_frames, spec.num_classes,
                spec.scope, spec.head_scopes) == (cls, 224, 64, 1000, "InceptionV1",
                                                  ("InceptionV1/Logits",))
    # an image net has no frame count
    assert kslim.models.get_spec("inception_v1").num_frames is None


# -- 2. other sizes, class counts and options against tf_slim ---------------------------

S3DG_OPTIONS = {"first_temporal_kernel_size": 5, "temporal_conv_startat": "Mixed_3c",
                "gating_startat": "Mixed_4b", "min_depth": 8, "depth_multiplier": 0.5,
                "spatial_squeeze": False}


def test_s3dg_options_checkpoint_round_trip(tmp_path):
    """s3dg with every base option changed, 10 frames of 40x40, 7 classes: a real
    slim checkpoint through `weights=`, then `save_slim_checkpoint` back into slim."""
    x = clips(2, 10, 40, seed=1)
    build = lambda images: slim_video_net(images, 7, **S3DG_OPTIONS)  # noqa: E731
    ref = run_slim(build, x, checkpoint=str(tmp_path / "slim" / "model.ckpt"))
    model = kslim.models.create_model("s3dg", num_classes=7, weights=ref.checkpoint,
                                      input_shape=(10, 40, 40, 3), **S3DG_OPTIONS)
    assert list(model_variables(model).items()) == ref.variables
    assert any("/temporal/" in n for n, _ in ref.variables)
    assert not any(n.startswith("InceptionV1/Mixed_3b/") and "self_gating" in n
                   for n, _ in ref.variables)  # gating starts at Mixed_4b
    points = model.endpoints(x)
    assert points["Logits"].shape == (2, 1, 1, 7)  # spatial_squeeze=False
    assert_end_points(points, ref.end_points, "s3dg options")

    prefix = compat.save_slim_checkpoint(model, str(tmp_path / "kslim" / "model.ckpt"),
                                         global_step=3)
    back = restore_into_slim(build, x, prefix)
    assert_close(back, ref.output, "slim restoring kslim's checkpoint")


def test_i3d_separable_other_endpoint_and_frame_size():
    """i3d_arg_scope(separable_conv3d=True), the head on Mixed_4f, thinner, 9 frames of
    48x64 (i3d has no gating, so frames need not be square)."""
    options = {"final_endpoint": "Mixed_4f", "depth_multiplier": 0.25}
    x = clips(2, 9, 48, 64, seed=2)
    ref = run_slim(lambda images: slim_video_net(
        images, 5, **{**I3D_BASE, "separable": True}, **options), x)
    model = kslim.models.create_model("i3d", num_classes=5, separable_conv3d=True,
                                      input_shape=(9, 48, 64, 3), **options)
    assert list(model_variables(model).items()) == ref.variables
    assign_recipe(model)
    assert_end_points(model.endpoints(x), ref.end_points, "i3d separable")
    assert set(model.endpoints(x)) == {*END_POINTS[:END_POINTS.index("Mixed_4f") + 1],
                                       "Logits", "Predictions"}
    # get_config rebuilds the same net (names and shapes)
    clone = I3D.from_config(model.get_config()).build_for((9, 48, 64, 3))
    assert model_variables(clone) == model_variables(model)
    assert clone.get_config() == model.get_config()


@pytest.fixture(scope="module")
def small_s3dg():
    """Default s3dg on 4 frames of 32x32, 3 classes, no dropout (for exact training)."""
    keras.utils.set_random_seed(0)
    return kslim.models.create_model("s3dg", num_classes=3, dropout_keep_prob=1.0,
                                     input_shape=(4, 32, 32, 3))


def test_training_mode_batch_statistics_and_moving_averages(small_s3dg):
    model = small_s3dg
    assign_recipe(model)
    x = clips(3, 4, 32, seed=3)
    ref = run_slim(lambda images: slim_video_net(images, 3, is_training=True,
                                                 dropout_keep_prob=1.0), x,
                   run_update_ops=True)
    assert_close(model(x, training=True), ref.output, "s3dg training-mode logits")
    variables = compat.slim_variables(model)
    moving = [n for n in ref.updated if "/moving_" in n]
    assert len(moving) == 2 * sum("BatchNorm/beta" in n for n, _ in ref.variables)
    for name in moving:
        # the updates are ~1e-3 of the values: compare them, not the values
        old = recipe_value(name, variables[name].shape)
        np.testing.assert_allclose(variables[name] - old, ref.updated[name] - old,
                                   rtol=1e-2, atol=1e-6, err_msg=name)


TINY = {"final_endpoint": "Mixed_3c", "depth_multiplier": 0.25,
        "input_shape": (4, 32, 32, 3)}  # every kind of layer, small


def test_features_are_what_the_logits_conv_reads():
    """num_classes=0: the head's pooled features averaged over time, [batch, channels];
    the logits are their affine map by Logits/Conv2d_0c_1x1."""
    model = kslim.models.create_model("s3dg", num_classes=3, **TINY)
    features = kslim.models.create_model("s3dg", include_top=False, **TINY)
    pooled = kslim.models.create_model("s3dg", num_classes=0, spatial_squeeze=False,
                                       pooling="max", **TINY)
    for net in (model, features, pooled):
        assign_recipe(net)
    assert set(model_variables(model)) - set(model_variables(features)) == {
        "InceptionV1/Logits/Conv2d_0c_1x1/weights", "InceptionV1/Logits/Conv2d_0c_1x1/biases"}
    x = clips(2, 4, 32, seed=4)
    f = features(x, training=False).numpy()
    assert f.shape == (2, 120)  # Mixed_3c's 480 channels x 0.25
    variables = compat.slim_variables(model)
    w = variables["InceptionV1/Logits/Conv2d_0c_1x1/weights"].numpy()[0, 0, 0]
    b = variables["InceptionV1/Logits/Conv2d_0c_1x1/biases"].numpy()
    assert_close(f @ w + b, model(x, training=False), "features -> logits")
    assert_close(pooled(x), f, "spatial_squeeze=False + pooling on a 1x1 map")


def test_fit_step_and_weight_decay():
    """One graph-mode model.fit step moves the spatial, temporal, gating, batch-norm
    and logits variables; s3dg_arg_scope's L2 covers every conv3d `weights`."""
    keras.utils.set_random_seed(1)
    model = kslim.models.create_model("s3dg", num_classes=3, weight_decay=1e-3, **TINY)
    variables = compat.slim_variables(model)
    weights = [v for n, v in variables.items() if n.endswith("/weights")]
    assert any("transformer_W" in v.path for v in weights)
    assert len(model.losses) == len(weights)
    expected = sum(1e-3 * float(tf.reduce_sum(tf.square(v))) / 2 for v in weights)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)

    watched = ["InceptionV1/Conv2d_1a_7x7/weights",
               "InceptionV1/Conv2d_2c_3x3/temporal/weights",
               "InceptionV1/Mixed_3c/Branch_3/Conv2d_0b_1x1/self_gating/transformer_W/weights",
               "InceptionV1/Mixed_3c/Branch_1/Conv2d_0b_3x3/BatchNorm/moving_mean",
               "InceptionV1/Logits/Conv2d_0c_1x1/biases"]
    before = {n: np.array(variables[n]) for n in watched}
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(clips(2, 4, 32, seed=5), np.array([0, 2]), batch_size=2, epochs=1,
                        verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for name, value in before.items():
        assert not np.allclose(variables[name], value), f"{name} did not change"


def test_temporal_convs_start_as_identity():
    """i3d_utils.center_initializer on every `.../temporal/weights`."""
    model = kslim.models.create_model("s3dg", num_classes=2, final_endpoint="Mixed_3b",
                                      depth_multiplier=0.25, input_shape=(3, 16, 16, 3))
    temporal = {n: v.numpy() for n, v in compat.slim_variables(model).items()
                if n.endswith("/temporal/weights")}
    assert len(temporal) == 3  # Conv2d_2c_3x3 and Mixed_3b's two 3x3 branches
    for name, value in temporal.items():
        expected = np.zeros_like(value)
        expected[1, 0, 0] = np.eye(value.shape[-1])
        np.testing.assert_array_equal(value, expected, err_msg=name)
    with pytest.raises(ValueError, match="temporal kernel size must be odd"):
        CenterInitializer()((2, 1, 1, 4, 4))
    # the compiled forward function takes clips of the build shape only
    x = clips(2, 3, 16, seed=6)
    forward = model.forward_function()
    np.testing.assert_allclose(forward(x), model(x, training=False), atol=1e-6)
    with pytest.raises(ValueError, match=r"compiled for images of shape \(batch, 3, 16, 16, 3\)"):
        forward(clips(2, 4, 16))


def test_any_clip_length_after_building_for_none_frames():
    """input_shape=(None, h, w, 3): one traced function serves every clip length; the
    head's temporal window (2, or 1 for a 1-frame map) is chosen at run time."""
    model = kslim.models.create_model("i3d", num_classes=2, final_endpoint="Mixed_3b",
                                      depth_multiplier=0.25, input_shape=(None, 16, 16, 3))
    assign_recipe(model)
    traced = tf.function(lambda x: model(x, training=False),
                         input_signature=[tf.TensorSpec([None, None, 16, 16, 3])])
    for frames in (1, 2, 5):  # Mixed_3b has ceil(frames / 2) frames
        x = clips(2, frames, 16, seed=frames)
        assert_close(traced(x), model(x, training=False), f"{frames} frames")


def test_self_gating_on_non_square_frames():
    """s3dg's self_gating averages the whole map; on non-square frames (where slim's
    `[t, w, h]` pool window fails) kslim computes the same formula."""
    gating = SelfGating(4)
    x = clips(2, 3, 5, 7, seed=8)[..., :1].repeat(4, axis=-1) * np.arange(1, 5)
    y = gating(x).numpy()
    w = gating.transformer.kernel.numpy()[0, 0, 0]
    expected = x / (1 + np.exp(-(x.mean(axis=(1, 2, 3), keepdims=True) @ w)))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)
    model = kslim.models.create_model("s3dg", num_classes=2, **{**TINY, "input_shape":
                                                                 (4, 32, 48, 3)})
    assert model.endpoints(clips(1, 4, 32, 48))["Mixed_3c"].shape == (1, 2, 4, 6, 120)


# -- 3. the CLI ---------------------------------------------------------------------------

def test_inspect_model(capsys):
    code, out, err = run_cli("inspect", "--model", "i3d")
    assert code == 0, err
    assert "i3d: image size 224, clips of 64 frames, 1000 classes" in out
    assert "InceptionV1/Conv2d_1a_7x7/weights (float32 7x7x7x3x64) [65856, bytes: 263424]" in out
    assert "InceptionV1/Logits/Conv2d_0c_1x1/biases (float32 1000)" in out


def test_export_video_saved_model(tmp_path, small_s3dg):
    model = small_s3dg
    prefix = compat.save_slim_checkpoint(model, str(tmp_path / "ckpt" / "model.ckpt"))
    out = tmp_path / "saved"
    code, stdout, err = run_cli("export", "--model_name=s3dg", "--is_video_model",
                                "--num_frames", "4", "--image_size=32", f"--weights={prefix}",
                                f"--output_dir={out}")
    assert code == 0, err
    loaded = tf.saved_model.load(str(out))
    assert sorted(loaded.signatures) == ["float_clips", "serving_default"]
    x = clips(2, 4, 32, seed=7)
    result = loaded.signatures["serving_default"](inputs=tf.constant(x))
    assert_close(result["logits"], model(x, training=False), "exported s3dg")
    assert result["top_k_classes"].shape == (2, 3)

    code, _, err = run_cli("export", "--model_name=s3dg", f"--output_dir={tmp_path}/b")
    assert code == 1 and "add --is_video_model and --num_frames N" in err
    code, _, err = run_cli("export", "--model_name=lenet", "--is_video_model",
                           f"--output_dir={tmp_path}/c")
    assert code == 1 and "lenet is an image net" in err


@pytest.mark.parametrize("command", ["train", "eval", "predict"])
def test_train_eval_predict_refuse_video_nets(tmp_path, command):
    argv = {"train": ["train", "--model_name=i3d", "--dataset_name=digits",
                      f"--train_dir={tmp_path}"],
            "eval": ["eval", "--model_name=s3dg", "--dataset_name=digits",
                     f"--checkpoint_path={tmp_path}"],
            "predict": ["predict", "image.jpg", "--model=i3d"]}[command]
    code, _, err = run_cli(*argv)
    assert code == 1
    assert f"kslim {command}: " in err and "is a video net" in err
    assert "slim has no video dataset" in err
    assert not any(tmp_path.iterdir())


# -- 4. bad input ---------------------------------------------------------------------------

def test_bad_clips_fail_naming_net_layout_and_shape(small_s3dg):
    model = small_s3dg
    with pytest.raises(ValueError, match=r"s3dg \(InceptionV1\) is a video net: it takes "
                                         r"5-D NDHWC clips .* got shape \(2, 32, 32, 3\): "
                                         r"a 4-D NHWC image batch"):
        model(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"needs clips of at least 1 frame\(s\), got 0 in "
                                         r"shape \(1, 0, 32, 32, 3\)"):
        model(np.zeros((1, 0, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"needs frames of at least 1x1, got width 0"):
        model(np.zeros((1, 4, 32, 0, 3), np.float32))
    with pytest.raises(ValueError, match=r"built for 3 input channels .* got 1"):
        model(np.zeros((1, 4, 32, 32, 1), np.float32))
    # spatial_squeeze needs a 1x1 logits map: at most 224x224 at Mixed_5c
    moving = [v for n, v in compat.slim_variables(model).items() if "moving_mean" in n]
    before = [np.array(v) for v in moving]
    with pytest.raises(ValueError, match=r"takes frames of at most 224x224 here, got height "
                                         r"256 .*spatial_squeeze=False"):
        model(np.zeros((1, 2, 256, 256, 3), np.float32), training=True)
    for variable, value in zip(moving, before):
        np.testing.assert_array_equal(variable, value)  # nothing ran
    with pytest.raises(ValueError, match=r"at most 112x112"):
        kslim.models.create_model("i3d", final_endpoint="Mixed_4f", input_shape=(8, 128, 128, 3))

    lenet = kslim.models.create_model("lenet")
    with pytest.raises(ValueError, match=r"lenet \(LeNet\) expects a 4-D NHWC batch of images, "
                                         r"got shape \(1, 4, 28, 28, 1\)"):
        lenet(np.zeros((1, 4, 28, 28, 1), np.float32))


@pytest.mark.parametrize("net, options, message", [
    ("s3dg", {"first_temporal_kernel_size": 4}, "can only be 1, 3, 5 or 7, got 4"),
    ("s3dg", {"final_endpoint": "Mixed_6a"}, "unknown final_endpoint 'Mixed_6a'"),
    ("s3dg", {"depth_multiplier": 0}, "depth_multiplier must be greater than zero"),
    ("s3dg", {"data_format": "NCDHW"}, "data_format must be 'NDHWC'"),
    ("i3d", {"dropout_keep_prob": 0.0}, r"dropout_keep_prob must be in \(0, 1\]"),
    ("i3d", {"gating_startat": "Mixed_3b"}, "gating_startat is fixed by slim's i3d_base"),
    ("i3d", {"frames": 8}, "unknown option frames=8"),
])
def test_bad_options(net, options, message):
    with pytest.raises(ValueError, match=message):
        kslim.models.create_model(net, input_shape=(2, 16, 16, 3), **options)
