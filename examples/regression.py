"""The walkthrough's first network: a regression MLP on `produce_batch`, with model.fit.

research/slim's slim_walkthrough.ipynb, "Creating your first neural network with TF-Slim":
`regression_model` (fc1 32 -> dropout 0.8 -> fc2 16 -> prediction 1, ReLU, L2 0.01),
trained on noisy sin(x) + 5 data with Adam 0.005, checkpoints in a train_dir, several
losses (mean squared error + absolute difference + regularization), streaming MSE and MAE
evaluation, and prediction from the restored checkpoint.

    python examples/regression.py                  # the walkthrough's 5000 steps
    python examples/regression.py --steps 500      # shorter
"""

from __future__ import annotations

import argparse
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

import kslim
from kslim import compat, training


@keras.saving.register_keras_serializable(package="examples")
class RegressionModel(keras.Model):
    """The walkthrough's `regression_model`, scope `deep_regression`.

    slim's `arg_scope([fully_connected], activation_fn=relu,
    weights_regularizer=l2_regularizer(0.01))`: Keras's L2 counts `l2 * sum(w^2)`, slim's
    `l2_regularizer(s)` counts `s * sum(w^2) / 2`, hence `L2(0.01 / 2)`.
    """

    def __init__(self, name="deep_regression", **kwargs):
        super().__init__(name=name, **kwargs)
        l2 = keras.regularizers.L2(0.01 / 2)
        self.fc1 = keras.layers.Dense(32, activation="relu", kernel_regularizer=l2, name="fc1")
        self.dropout = keras.layers.Dropout(0.2, name="dropout")  # keep_prob 0.8
        self.fc2 = keras.layers.Dense(16, activation="relu", kernel_regularizer=l2, name="fc2")
        self.prediction = keras.layers.Dense(1, kernel_regularizer=l2, name="prediction")

    def endpoints(self, inputs, training=False):
        """The walkthrough's end_points dict."""
        points = {}
        net = points["fc1"] = self.fc1(inputs)
        net = self.dropout(net, training=training)
        net = points["fc2"] = self.fc2(net)
        points["out"] = self.prediction(net)
        return points

    def call(self, inputs, training=None):
        return self.endpoints(inputs, training=training)["out"]


def total_loss(y_true, y_pred):
    """The walkthrough's "multiple loss functions": mean squared error plus absolute
    difference (Keras adds the regularization losses, as `get_total_loss` did)."""
    return (keras.losses.mean_squared_error(y_true, y_pred)
            + keras.losses.mean_absolute_error(y_true, y_pred))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="training steps")
    parser.add_argument("--train_dir", default=None, help="checkpoint folder (default: temp)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    train_dir = args.train_dir or tempfile.mkdtemp(prefix="regression_model-")
    keras.utils.set_random_seed(args.seed)

    # Create the model and examine its structure: names follow the scopes.
    x_train, y_train = kslim.data.produce_batch(200, seed=args.seed)
    x_test, y_test = kslim.data.produce_batch(200, seed=args.seed + 1)
    model = RegressionModel()
    model(x_train[:1])  # builds the layers inside the model's scope
    for name, value in model.endpoints(x_train[:1]).items():
        print(f"end point {name}: {tuple(value.shape)}")
    names = sorted(compat.slim_variables(model))
    for name in names:
        print(f"variable {name}")

    # Fit: Adam 0.005 on the whole batch every step; a slim checkpoint in train_dir.
    model.compile(optimizer=keras.optimizers.Adam(0.005), loss=total_loss)
    checkpoints = training.SlimCheckpoint(train_dir, save_interval_secs=None)
    batches = tf.data.Dataset.from_tensors((x_train, y_train)).repeat()
    model.fit(batches, steps_per_epoch=args.steps, epochs=1, verbose=0, shuffle=False,
              callbacks=[checkpoints, training.StopOnNaN()])
    regularization = float(sum(np.asarray(loss) for loss in model.losses))
    print(f"trained {args.steps} steps; regularization loss {regularization:.4f}; "
          f"checkpoint {checkpoints.saved[-1]}")

    # Load the saved model and predict: a fresh model restored from the checkpoint.
    restored = RegressionModel()
    restored(x_test[:1])
    report = compat.restore(restored, train_dir)
    predictions = restored.predict(x_test, verbose=0)
    same = bool(np.array_equal(predictions, model.predict(x_test, verbose=0)))
    print(f"{report}\nrestored model predicts as the trained one: {same}")

    # Evaluation metrics: mean squared and absolute error over the test batch.
    mse = float(keras.metrics.MeanSquaredError()(y_test, predictions))
    mae = float(keras.metrics.MeanAbsoluteError()(y_test, predictions))
    print(f"Mean Squared Error: {mse:.4f}\nMean Absolute Error: {mae:.4f}")
    for x, y, p in list(zip(x_test[:, 0], y_test[:, 0], predictions[:, 0]))[:5]:
        print(f"x={x:.2f}  y={y:.3f}  prediction={p:.3f}  sin(x)+5={np.sin(x) + 5:.3f}")
    return {"mse": mse, "mae": mae, "restored_equal": same, "variables": names,
            "checkpoint": checkpoints.saved[-1]}


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf.get_logger().setLevel("ERROR")
    main()
