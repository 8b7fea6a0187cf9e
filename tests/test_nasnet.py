"""NASNet-A and PNASNet-5 against research/slim's reference fixtures.

The fixtures (tests/fixtures/<net>-<classes>-<size>/, from slim's eval graph) hold the
variable list, the logits and per-end-point statistics for the recipe weights; see
tests/fixtures/README.md.
"""

import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import kslim
from kslim import compat
from kslim.models import _nasnet_utils as nu
from kslim.models._layers import deferred_initializers
from slim_harness import assert_close, recipe_inputs, recipe_value

FIXTURES = Path(__file__).parent / "fixtures"
CASES = [
    "nasnet_cifar-10-32",
    "nasnet_mobile-1001-224",
    pytest.param("nasnet_large-1001-331", marks=pytest.mark.slow),
    "pnasnet_mobile-1001-224",
    pytest.param("pnasnet_large-1001-331", marks=pytest.mark.slow),
]


def load_case(case):
    folder = FIXTURES / case
    manifest = json.loads((folder / "manifest.json").read_text())
    expected = dict(np.load(folder / "expected.npz"))
    inputs = recipe_inputs(manifest["batch"], manifest["image_size"], manifest["input_seed"])
    return manifest, expected, inputs


def with_recipe(model):
    for name, variable in compat.slim_variables(model).items():
        variable.assign(recipe_value(name, variable.shape))
    return model


def shapes(model):
    return {name: tuple(v.shape) for name, v in compat.slim_variables(model).items()}


def assert_stats(actual, stats, what):
    """End-point statistics within 1e-4 relative: std and absmax relative to
    themselves, the mean (which can be ~0) relative to the tensor's absmax."""
    value = np.asarray(actual, np.float64)
    assert list(value.shape) == stats["shape"], what
    got = {"mean": value.mean(), "std": value.std(), "absmax": np.abs(value).max()}
    for key, ref in ((k, stats[k]) for k in ("mean", "std", "absmax")):
        scale = stats["absmax"] if key == "mean" else abs(ref)
        bound = 1e-4 * max(1.0, scale)
        assert abs(got[key] - ref) <= bound, (
            f"{what} {key}: kslim {got[key]:.8g}, slim {ref:.8g} (bound {bound:.3g})")


def aux_variables(scope, channels, pooled, num_classes):
    """The auxiliary head's variables in slim's training graph (`_build_aux_head`)."""
    names = {f"{scope}/aux_logits/proj/weights": (1, 1, channels, 128),
             f"{scope}/aux_logits/Conv/weights": (pooled, pooled, 128, 768),
             f"{scope}/aux_logits/FC/weights": (768, num_classes),
             f"{scope}/aux_logits/FC/biases": (num_classes,)}
    for bn, depth in (("aux_bn0", 128), ("aux_bn1", 768)):
        for leaf in ("gamma", "beta", "moving_mean", "moving_variance"):
            names[f"{scope}/aux_logits/{bn}/{leaf}"] = (depth,)
    return names


# -- parity with slim ---------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_matches_slim_fixture(case):
    """Eval graph (slim builds no aux head with is_training=False): the exact variable
    list, then logits and every end point's statistics on the recipe weights."""
    manifest, expected, inputs = load_case(case)
    with deferred_initializers():  # zeros: the recipe overwrites every weight
        model = kslim.models.create_model(manifest["net"], num_classes=manifest["num_classes"],
                                          use_aux_head=False)
    assert not model.has_slim_scope
    assert set(compat.slim_variables(model)) == {name for name, _ in manifest["variables"]}
    assert shapes(model) == {name: tuple(shape) for name, shape in manifest["variables"]}
    with_recipe(model)
    points = model.endpoints(inputs)
    assert set(points) == set(manifest["end_points"])
    assert_close(points["Logits"], expected["logits"], f"{case} logits")
    for key, stats in manifest["end_points"].items():
        assert_stats(points[key], stats, f"{case} end point {key}")


def test_final_endpoint_builds_and_returns_slims_prefix():
    manifest, _, inputs = load_case("nasnet_cifar-10-32")
    model = kslim.models.nasnet_cifar(final_endpoint="Reduction_Cell_0")
    names = set(compat.slim_variables(model))
    assert names < {name for name, _ in manifest["variables"]}
    assert {n.split("/")[0] for n in names} == {
        "l1_stem_3x3", "l1_stem_bn", "reduction_cell_0", *(f"cell_{i}" for i in range(6))}
    with_recipe(model)
    assert_stats(model(inputs), manifest["end_points"]["Reduction_Cell_0"],
                 "final_endpoint=Reduction_Cell_0")
    spec = model.compute_output_spec(keras.KerasTensor((2, 32, 32, 3)))
    assert spec.shape == (2, 16, 16, 256)


# -- training -----------------------------------------------------------------------


def test_nasnet_cifar_trains_with_aux_head_and_drop_path():
    keras.utils.set_random_seed(3)
    model = kslim.models.nasnet_cifar()  # slim's training graph: aux_11 exists
    manifest, _, _ = load_case("nasnet_cifar-10-32")
    eval_graph = {name: tuple(shape) for name, shape in manifest["variables"]}
    assert shapes(model) == {**eval_graph, **aux_variables("aux_11", 384, 4, 10)}
    x = recipe_inputs(2, 32, seed=5)
    assert "AuxLogits" not in model.endpoints(x)
    # No optimizer and no step yet: slim's fresh global step 0, so keep prob 1.
    assert float(model.drop_path_progress()) == 0.0
    model.set_drop_path_step(tf.Variable(model.total_training_steps))  # the schedule's end
    assert float(model.drop_path_progress()) == 1.0
    first, second = model(x, training=True), model(x, training=True)
    assert set(first) == {"logits", "aux_logits"} and first["aux_logits"].shape == (2, 10)
    assert not np.allclose(first["logits"], second["logits"]), "drop path is not active"
    model.set_drop_path_step(None)

    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  run_eagerly=True)
    model.optimizer.iterations.assign(model.total_training_steps // 4)
    assert float(model.drop_path_progress()) == pytest.approx(0.25)  # reads the global step
    moving = compat.slim_variables(model)["cell_17/beginning_bn/moving_mean"].numpy()
    history = model.fit(x, np.array([1, 7]), batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert int(model.optimizer.iterations) == model.total_training_steps // 4 + 1
    assert not np.allclose(moving,
                           compat.slim_variables(model)["cell_17/beginning_bn/moving_mean"])


@pytest.mark.parametrize("net,aux_scope,channels", [("nasnet_mobile", "aux_7", 528),
                                                    ("pnasnet_mobile", "aux_5", 540)])
def test_imagenet_nets_fit_at_a_small_size(net, aux_scope, channels):
    """Each family's ImageNet net at 96x96: the aux head is built for that size (a 1x1
    pooled map) and a fit step runs, with drop path forced on for the mobile configs
    (their slim drop_path_keep_prob is 1.0)."""
    keras.utils.set_random_seed(4)
    model = kslim.models.create_model(net, num_classes=5, input_shape=(96, 96, 3),
                                      drop_path_keep_prob=0.5)
    aux = {k: v for k, v in shapes(model).items() if k.startswith(aux_scope + "/")}
    assert aux == aux_variables(aux_scope, channels, 1, 5)
    model.set_drop_path_step(model.total_training_steps)
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  run_eagerly=True)
    x = recipe_inputs(2, 96, seed=6)
    history = model.fit(x, np.array([0, 4]), batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def small_cifar(**kwargs):
    """A 2-cell NASNet-CIFAR (reductions before both cells), quick to build and trace."""
    return kslim.models.nasnet_cifar(num_cells=2, num_conv_filters=8, **kwargs)


def test_fit_in_graph_mode_reads_the_optimizer_step():
    keras.utils.set_random_seed(5)
    model = small_cifar(num_classes=3, input_shape=(16, 16, 3))
    assert model.aux_head.name == "aux_0"
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.optimizer.iterations.assign(model.total_training_steps)
    history = model.fit(recipe_inputs(4, 16, seed=7), np.array([0, 1, 2, 0]), batch_size=2,
                        epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert int(model.optimizer.iterations) == model.total_training_steps + 2


# -- cell machinery -----------------------------------------------------------------


def test_reduction_layers_and_drop_path_schedule():
    assert nu.calc_reduction_layers(18, 2) == [6, 12]
    assert nu.calc_reduction_layers(12, 2) == [4, 8]
    assert nu.calc_reduction_layers(9, 2) == [3, 6]
    # cell 4 of 20 with p=0.6: by depth 1 - 5/20 * 0.4 = 0.9; half way: 1 - 0.5 * 0.1.
    assert float(nu.scheduled_keep_prob(0.6, 4, 20, tf.constant(0.5))) == pytest.approx(0.95)
    keras.utils.set_random_seed(0)
    out = nu.drop_path(tf.ones([64, 2, 2, 3]), tf.constant(0.5)).numpy()
    per_example = out.reshape(64, -1)
    assert set(np.unique(out)) == {0.0, 2.0}  # dropped, or kept and scaled by 1/0.5
    assert np.all(per_example == per_example[:, :1])  # whole examples at once
    assert nu.parse_operation("separable_7x7_2") == ("separable", 7, 2)
    assert nu.parse_operation("max_pool_3x3") == ("pool", "max", 3)
    with pytest.raises(ValueError, match="unknown NASNet operation 'conv_3x3'"):
        nu.parse_operation("conv_3x3")


def test_factorized_reduction_by_hand():
    """Path 1 keeps pixels (0, 0), (0, 2), ...; path 2 the pixels one step down-right,
    zero-padded past the border (slim pads bottom/right, then crops the top/left)."""
    params = nu.NetParams(0.0, 0.9, 1e-3, bounded=False)
    layers = nu._factorized_layers(params, 2, 2)
    nu._build_factorized(layers, 1)
    conv1, conv2, bn = layers
    conv1.kernel.assign(np.ones([1, 1, 1, 1]))
    conv2.kernel.assign(np.ones([1, 1, 1, 1]))
    bn.moving_variance.assign(np.full([2], 1.0 - 1e-3))  # BN becomes the identity
    x = tf.reshape(tf.range(1.0, 10.0), [1, 3, 3, 1])
    out = nu._factorized_call(layers, x, training=False).numpy()[0]
    np.testing.assert_allclose(out[..., 0], [[1, 3], [7, 9]], atol=1e-5)
    np.testing.assert_allclose(out[..., 1], [[5, 0], [0, 0]], atol=1e-5)
    even = tf.reshape(tf.range(1.0, 17.0), [1, 4, 4, 1])
    np.testing.assert_allclose(nu._factorized_call(layers, even, False).numpy()[0, ..., 1],
                               [[6, 8], [14, 16]], atol=1e-5)


def test_bounded_activation_clips_the_cell_states():
    x = recipe_inputs(2, 16, seed=8) * 4
    for bounded in (False, True):
        model = small_cifar(input_shape=(16, 16, 3), use_bounded_activation=bounded)
        with_recipe(model)
        points = model.endpoints(x)
        combined = [points["Reduction_Cell_0"], points["Cell_1"][..., 32:]]  # comb states
        inside = all(float(tf.reduce_min(p)) >= 0 and float(tf.reduce_max(p)) <= 6
                     for p in combined)
        assert inside == bounded


def test_logits_final_endpoint_keeps_slims_quirk():
    """slim returns the (dropped-out) pooled features when it ends at Logits."""
    model = small_cifar(final_endpoint="Logits", input_shape=(16, 16, 3))
    x = recipe_inputs(1, 16, seed=9)
    points = model.endpoints(x)
    np.testing.assert_allclose(model(x), points["global_pool"], rtol=1e-6)
    assert points["Logits"].shape == (1, 10)
    # Ending at global_pool builds no FC (the aux head, before it, stays); with no
    # classes there is neither.
    for kwargs, heads in (({"final_endpoint": "global_pool"}, {"aux_0"}),
                          ({"num_classes": 0}, set())):
        features = small_cifar(input_shape=(16, 16, 3), **kwargs)
        names = {n.split("/")[0] for n in shapes(features)}
        assert "final_layer" not in names and {n for n in names if "aux" in n} == heads
        assert features(x).shape == (1, 192)
    pooled = kslim.models.nasnet_cifar(include_top=False, pooling="avg", num_cells=2,
                                       num_conv_filters=8, final_endpoint="Cell_0",
                                       input_shape=(16, 16, 3))
    assert pooled(x).shape == (1, 96)


# -- registry, config, errors -------------------------------------------------------


def test_registry_entries():
    expected = {"nasnet_cifar": (32, 10, "cifarnet"), "nasnet_mobile": (224, 1001, "nasnet_mobile"),
                "nasnet_large": (331, 1001, "nasnet_large"),
                "pnasnet_mobile": (224, 1001, "pnasnet_mobile"),
                "pnasnet_large": (331, 1001, "pnasnet_large")}
    for name, (size, classes, preprocessing) in expected.items():
        spec = kslim.models.get_spec(name)
        assert (spec.image_size, spec.num_classes, spec.preprocessing, spec.scope) == (
            size, classes, preprocessing, "")
        assert spec.head_scopes == ("final_layer/FC", "aux_*/aux_logits/FC")
    from kslim import preprocess

    assert preprocess.preprocessing_family("nasnet_cifar") == "cifarnet"
    assert preprocess.preprocessing_family("pnasnet_large") == "inception"


def test_config_round_trip_and_keras_file(tmp_path):
    model = small_cifar(num_classes=4, input_shape=(16, 16, 3), drop_path_keep_prob=0.8,
                        weight_decay=1e-4, name="tiny")
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.build_for((16, 16, 3))
    assert shapes(clone) == shapes(model)
    assert all(not n.startswith("tiny/") for n in shapes(model))
    assert len(model.losses) == sum(n.endswith(("/weights", "pointwise_weights"))
                                    for n in shapes(model))
    x = recipe_inputs(1, 16, seed=10)
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-5, atol=1e-5)
    # A slim checkpoint: scope-less names, loaded back through weights=.
    prefix = compat.save_slim_checkpoint(model, str(tmp_path / "ckpt" / "model.ckpt"))
    names = {name for name, _, _ in compat.list_checkpoint(prefix)}
    assert set(shapes(model)) <= names and "final_layer/FC/weights" in names
    restored = small_cifar(num_classes=4, input_shape=(16, 16, 3), weights=prefix)
    np.testing.assert_allclose(restored(x), model(x), rtol=1e-5, atol=1e-5)


def test_bad_input_and_options():
    with pytest.raises(ValueError, match=r"nasnet_mobile \(nasnet_mobile\) needs images of at "
                       r"least 19x19, got height 18"):
        kslim.models.create_model("nasnet_mobile", input_shape=(18, 18, 3))
    with pytest.raises(ValueError, match=r"pnasnet_large: unknown option depth_multiplier=2; "
                       r"it takes .*drop_path_keep_prob"):
        kslim.models.create_model("pnasnet_large", depth_multiplier=2)
    with pytest.raises(ValueError, match=r"nasnet_large: data_format='NCHW' is not supported"):
        kslim.models.create_model("nasnet_large", data_format="NCHW")
    with pytest.raises(ValueError, match=r"nasnet_cifar: unknown final_endpoint 'Cell_9'; it "
                       r"is one of Stem, Reduction_Cell_0, Cell_0, Reduction_Cell_1, Cell_1"):
        small_cifar(final_endpoint="Cell_9")
    with pytest.raises(ValueError, match="dense_dropout_keep_prob must be in"):
        small_cifar(dense_dropout_keep_prob=0.0)
    model = small_cifar(input_shape=(8, 8, 3))  # too small for the 5x5 aux pool
    assert model.min_input_size == 3 and model.aux_head.aux_logits.pooled_size is None
    with pytest.raises(ValueError, match=r"nasnet_cifar \(nasnet_cifar\) needs images of at "
                       r"least 3x3, got width 2"):
        model(np.zeros((1, 8, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"nasnet_cifar .*3 input channels.*got 1"):
        model(np.zeros((1, 8, 8, 1), np.float32))
    with pytest.raises(ValueError, match=r"nasnet_cifar \(nasnet_cifar\): the auxiliary head "
                       r"needs a map of at least 5x5 at aux_0 \(images of at least 9x9\), but "
                       r"this input gives a 4x4 map"):
        model(np.zeros((1, 8, 8, 3), np.float32), training=True)
    assert model(np.zeros((1, 8, 8, 3), np.float32)).shape == (1, 10)
    model = small_cifar(input_shape=(16, 16, 3))  # aux head built for a 2x2 pooled map
    assert model.aux_head.aux_logits.pooled_size == (2, 2)
    with pytest.raises(ValueError, match=r"nasnet_cifar .*auxiliary head needs the aux_0 map "
                       r"it was built for \(pooled 2x2.*this input gives a 16x16 map"):
        model(np.zeros((1, 32, 32, 3), np.float32), training=True)
    assert model(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 10)  # inference: any size
