"""kslim.training's Python API against TF1 (the optimizers, schedules, loss and moving
averages slim ran) and the callbacks slim's training loop stood for."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kslim import compat, training
from kslim.training._optimizers import slot_variables
from training_helpers import snapshot, tiny_data, tiny_net

# -- optimizers: the same update and the same slot names as TF1 --------------------------

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]], np.float32)
Y = np.array([[1.0, -2.0], [0.5, 0.25]], np.float32)
W0 = np.array([[0.1, -0.2], [0.3, 0.05], [-0.4, 0.2]], np.float32)
B0 = np.array([0.05, -0.1], np.float32)
STEPS = 5
DECAY_STEPS = 2  # the rate changes within the run: TF1 and Keras momentum differ there

OPTIMIZERS = {
    "sgd": (lambda lr: tf.compat.v1.train.GradientDescentOptimizer(lr), {}),
    "momentum": (lambda lr: tf.compat.v1.train.MomentumOptimizer(lr, 0.9, name="Momentum"),
                 {"Momentum"}),
    "rmsprop": (lambda lr: tf.compat.v1.train.RMSPropOptimizer(lr, decay=0.9, momentum=0.9,
                                                               epsilon=1.0),
                {"RMSProp", "RMSProp_1"}),
    "adam": (lambda lr: tf.compat.v1.train.AdamOptimizer(lr, 0.9, 0.999, epsilon=1.0),
             {"Adam", "Adam_1"}),
    "adagrad": (lambda lr: tf.compat.v1.train.AdagradOptimizer(lr, 0.1), {"Adagrad"}),
    "adadelta": (lambda lr: tf.compat.v1.train.AdadeltaOptimizer(lr, rho=0.95, epsilon=1.0),
                 {"Adadelta", "Adadelta_1"}),
    "ftrl": (lambda lr: tf.compat.v1.train.FtrlOptimizer(lr, -0.5, 0.1, 0.0, 0.0),
             {"Ftrl", "Ftrl_1"}),
}


def _tf1_run(make_optimizer):
    """STEPS updates of `net/fc/{weights,biases}` on a squared error, in a TF1 graph, with
    slim's staircase exponential decay."""
    graph = tf.Graph()
    with graph.as_default():
        with tf.compat.v1.variable_scope("net/fc"):
            w = tf.compat.v1.get_variable("weights", initializer=W0)
            b = tf.compat.v1.get_variable("biases", initializer=B0)
        step = tf.compat.v1.train.get_or_create_global_step()
        lr = tf.compat.v1.train.exponential_decay(0.1, step, DECAY_STEPS, 0.5, staircase=True)
        loss = tf.reduce_sum(tf.square(tf.matmul(X, w) + b - Y))
        optimizer = make_optimizer(lr)
        train_op = optimizer.minimize(loss, global_step=step)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            for _ in range(STEPS):
                session.run(train_op)
            values = {v.op.name: session.run(v) for v in tf.compat.v1.global_variables()}
    return values


def _keras_run(name):
    from kslim.models._layers import FullyConnected

    layer = FullyConnected(2, activation_fn=None, name="fc")
    model = keras.Sequential([keras.Input((3,)), layer], name="net")
    layer.kernel.assign(W0)
    layer.biases.assign(B0)
    schedule = training.learning_rate_schedule("exponential", 0.1, num_samples_per_epoch=4,
                                               global_batch_size=2, num_epochs_per_decay=1.0,
                                               learning_rate_decay_factor=0.5)
    optimizer = training.create_optimizer(name, schedule)
    for _ in range(STEPS):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(model(X) - Y))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return model, optimizer


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_matches_tf1(name):
    make, slots = OPTIMIZERS[name]
    reference = _tf1_run(make)
    model, optimizer = _keras_run(name)
    for var_name, value in snapshot(model).items():
        np.testing.assert_allclose(value, reference[var_name], rtol=2e-5, atol=1e-6,
                                   err_msg=f"{name}: {var_name}")
    named = {n: np.asarray(v.numpy()) for n, v in slot_variables(optimizer, model).items()}
    expected = {f"net/fc/{v}/{s}" for v in ("weights", "biases") for s in slots}
    assert set(named) == expected
    for slot_name, value in named.items():
        np.testing.assert_allclose(value, reference[slot_name], rtol=2e-5, atol=1e-6,
                                   err_msg=slot_name)
    if name == "adam":
        powers = training._optimizers.non_slot_variables(optimizer)
        np.testing.assert_allclose(powers["beta1_power"], reference["beta1_power"], rtol=1e-6)
        np.testing.assert_allclose(powers["beta2_power"], reference["beta2_power"], rtol=1e-6)


def test_optimizer_defaults_and_errors():
    rmsprop = training.create_optimizer("rmsprop")  # slim: decay 0.9, momentum 0.9, eps 1.0
    assert (rmsprop.rho, rmsprop.momentum, rmsprop.epsilon) == (0.9, 0.9, 1.0)
    assert float(rmsprop.learning_rate) == pytest.approx(0.01)
    adam = training.create_optimizer("adam", 0.1, opt_epsilon=1e-8)
    assert (adam.beta_1, adam.beta_2, adam.epsilon) == (0.9, 0.999, 1e-8)
    with pytest.raises(ValueError, match=r"Optimizer \[adamw\] was not recognized.*rmsprop"):
        training.create_optimizer("adamw")
    with pytest.raises(ValueError, match="unknown optimizer option.*rmsprop_decy"):
        training.create_optimizer("rmsprop", rmsprop_decy=0.5)


# -- learning rates -------------------------------------------------------------------------

def test_schedules_match_tf1():
    assert training.decay_steps(1437, 2.0, 32) == 89  # int(1437 * 2 / 32)
    assert training.decay_steps(1437, 2.0, 64) == 44  # global batch of two clones
    exponential = training.learning_rate_schedule(
        "exponential", 0.01, num_samples_per_epoch=1437, global_batch_size=32)
    polynomial = training.learning_rate_schedule(
        "polynomial", 0.01, num_samples_per_epoch=1437, global_batch_size=32)
    assert training.learning_rate_schedule("fixed", 0.02) == 0.02
    for step in (0, 88, 89, 200, 500):
        tf1_exp = tf.compat.v1.train.exponential_decay(0.01, step, 89, 0.94, staircase=True)
        tf1_poly = tf.compat.v1.train.polynomial_decay(0.01, step, 89, 0.0001, power=1.0,
                                                       cycle=False)
        np.testing.assert_allclose(float(exponential(step)), float(tf1_exp()), rtol=1e-6)
        np.testing.assert_allclose(float(polynomial(step)), float(tf1_poly()), rtol=1e-6)
    with pytest.raises(ValueError, match="cosine.*not recognized"):
        training.learning_rate_schedule("cosine", 0.1, num_samples_per_epoch=1,
                                        global_batch_size=1)


# -- the loss -----------------------------------------------------------------------------

def test_softmax_cross_entropy_with_label_smoothing_matches_tf1():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5)).astype(np.float32)
    labels = np.array([0, 4, 2, 2, 1, 3])
    onehot = np.eye(5, dtype=np.float32)[labels]
    for smoothing in (0.0, 0.1):
        ours = training.SoftmaxCrossEntropy(label_smoothing=smoothing)(labels, logits)
        slim = tf.compat.v1.losses.softmax_cross_entropy(onehot, logits,
                                                         label_smoothing=smoothing)
        np.testing.assert_allclose(float(ours), float(slim), rtol=1e-6)
        dense = training.SoftmaxCrossEntropy(label_smoothing=smoothing)(onehot, logits)
        np.testing.assert_allclose(float(dense), float(slim), rtol=1e-6)


def test_total_loss_is_slims_cross_entropy_plus_aux_plus_weight_decay():
    images, labels = tiny_data(8)
    model = tiny_net(aux=True, weight_decay=0.01)
    model.compile(optimizer="sgd", loss=training.SoftmaxCrossEntropy())
    outputs = model(images, training=True)
    assert set(outputs) == {"logits", "aux_logits"}
    total = model.compute_loss(images, labels, outputs, training=True)
    xent = tf.compat.v1.losses.softmax_cross_entropy(np.eye(4)[labels], outputs["logits"])
    aux = tf.compat.v1.losses.softmax_cross_entropy(np.eye(4)[labels], outputs["aux_logits"])
    regularization = sum(0.01 * np.sum(np.square(v.numpy())) / 2
                         for n, v in compat.slim_variables(model).items()
                         if n.endswith("/weights") and "AuxLogits" not in n)
    np.testing.assert_allclose(float(total), float(xent) + 0.4 * float(aux) + regularization,
                               rtol=1e-5)


# -- trainable scopes -------------------------------------------------------------------------

def test_trainable_scopes_freeze_everything_else_and_batch_norm_stays_in_inference():
    images, labels = tiny_data(16)
    model = tiny_net()
    trained = training.set_trainable_scopes(model, "Tiny/logits")
    assert trained == ["Tiny/logits/biases", "Tiny/logits/weights"]
    assert not model.conv1.trainable and not model.conv1.norm.trainable
    before = snapshot(model)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss=training.SoftmaxCrossEntropy())
    model.fit(images, labels, batch_size=8, epochs=2, verbose=0)
    after = snapshot(model)
    for name, value in before.items():
        if name.startswith("Tiny/logits/"):
            assert not np.array_equal(after[name], value), f"{name} did not train"
        else:  # weights and BatchNorm moving statistics alike
            np.testing.assert_array_equal(after[name], value, err_msg=name)


def test_trainable_scope_inside_a_layer_freezes_the_rest_of_it():
    model = tiny_net()
    assert training.set_trainable_scopes(model, ["Tiny/logits/weights"]) == \
        ["Tiny/logits/weights"]
    assert [v.path for v in model.trainable_weights] == ["Tiny/logits/weights"]
    with pytest.raises(ValueError, match=r"Tiny/Logit match no trainable variable.*"
                                         r"Tiny/conv1.*Tiny/logits"):
        training.set_trainable_scopes(tiny_net(), "Tiny/Logit")


# -- moving averages ------------------------------------------------------------------------

def test_moving_averages_match_tf1_with_num_updates():
    values = [np.array([1.0, 2.0], np.float32), np.array([3.0, -1.0], np.float32),
              np.array([0.5, 0.5], np.float32), np.array([2.0, 4.0], np.float32)]
    graph = tf.Graph()
    with graph.as_default():
        var = tf.compat.v1.Variable(values[0], name="net/fc/weights")
        step = tf.compat.v1.placeholder(tf.int64, [])
        ema = tf.compat.v1.train.ExponentialMovingAverage(0.99, num_updates=step)
        apply = ema.apply([var])
        new_value = tf.compat.v1.placeholder(tf.float32, [2])
        assign = var.assign(new_value)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            for k, value in enumerate(values[1:]):
                session.run(assign, {new_value: value})
                session.run(apply, {step: k})
            reference = session.run(ema.average(var))
            assert ema.average_name(var) == "net/fc/weights/ExponentialMovingAverage"
    from kslim.models._layers import FullyConnected

    layer = FullyConnected(1, activation_fn=None, name="fc")
    model = keras.Sequential([keras.Input((2,)), layer], name="net")
    layer.kernel.assign(values[0][:, None])
    averages = training.ExponentialMovingAverage(0.99).attach(model)
    for k, value in enumerate(values[1:]):
        layer.kernel.assign(value[:, None])
        averages._update(k)
    shadows = averages.shadow_values()
    np.testing.assert_allclose(shadows["net/fc/weights/ExponentialMovingAverage"][:, 0], reference,
                               rtol=1e-6)


# -- callbacks: slim-format checkpoints, step limit, NaN ------------------------------------

def test_checkpoint_callback_writes_slim_checkpoints_and_resumes(tmp_path):
    images, labels = tiny_data(16)
    model = tiny_net()
    model.compile(optimizer=training.create_optimizer("momentum", 0.05),
                  loss=training.SoftmaxCrossEntropy())
    ema = training.ExponentialMovingAverage(0.9)
    saver = training.SlimCheckpoint(tmp_path, save_interval_secs=None, save_every_n_steps=2,
                                    max_to_keep=2, ema=ema)
    model.fit(images, labels, batch_size=4, epochs=2, verbose=0,
              callbacks=[training.StopAtStep(7), ema, saver])
    assert [os.path.basename(p) for p in saver.saved] == \
        ["model.ckpt-2", "model.ckpt-4", "model.ckpt-6", "model.ckpt-7"]
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == \
        ["model.ckpt-6", "model.ckpt-7"]
    assert not os.path.exists(tmp_path / "model.ckpt-4.index")
    names = dict((n, s) for n, s, _ in compat.list_checkpoint(str(tmp_path)))
    assert names["global_step"] == ()
    assert "Tiny/conv1/weights/Momentum" in names
    assert "Tiny/conv1/BatchNorm/moving_mean/ExponentialMovingAverage" in names

    resumed = tiny_net()
    resumed.compile(optimizer=training.create_optimizer("momentum", 0.05),
                    loss=training.SoftmaxCrossEntropy())
    step = training.restore_training_checkpoint(resumed, str(tmp_path / "model.ckpt-7"),
                                                resumed.optimizer)
    assert step == 7 and int(resumed.optimizer.iterations.numpy()) == 7
    for name, value in snapshot(model).items():
        np.testing.assert_array_equal(snapshot(resumed)[name], value, err_msg=name)
    for name, slot in slot_variables(resumed.optimizer, resumed).items():
        np.testing.assert_array_equal(
            slot.numpy(), slot_variables(model.optimizer, model)[name].numpy())


def test_nan_loss_stops_with_the_step_named():
    images, labels = tiny_data(16)
    images[9] = np.nan  # in the third batch of 4
    model = tiny_net()
    model.compile(optimizer="sgd", loss=training.SoftmaxCrossEntropy())
    with pytest.raises(training.LossDivergedError, match="loss became nan at global step 3"):
        model.fit(images, labels, batch_size=4, shuffle=False, verbose=0,
                  callbacks=[training.StopOnNaN()])


# -- mixed precision ------------------------------------------------------------------------

def test_mixed_bfloat16_keeps_float32_logits_and_variables(tmp_path):
    result = training.train(model_name="lenet", dataset_name="digits",
                            train_dir=str(tmp_path), batch_size=4, max_number_of_steps=3,
                            mixed_precision="mixed_bfloat16", seed=0, verbose="0",
                            save_interval_secs=0)
    model = result.model
    assert keras.config.dtype_policy().name == "float32"  # restored after training
    assert model.conv1.compute_dtype == "bfloat16"
    assert model.fc4.compute_dtype == "float32"
    assert all(v.dtype == "float32" for v in model.weights)
    logits = model(np.zeros((2, 28, 28, 1), np.float32), training=False)
    assert logits.dtype == tf.float32
    assert len(result.losses) == 3 and all(np.isfinite(list(result.losses.values())))
    assert result.global_step == 3
    assert compat.resolve_checkpoint(train_dir=str(tmp_path)).endswith("model.ckpt-3")
