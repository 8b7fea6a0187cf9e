"""Moving averages of the model variables (slim's `--moving_average_decay`).

`train_image_classifier.py` keeps `tf.train.ExponentialMovingAverage(decay, global_step)`
of every model variable (`slim.get_model_variables()`, BatchNorm moving statistics
included) and updates it with each training step; `eval_image_classifier.py
--moving_average_decay` evaluates the averages. With `num_updates` (the global step) TF
uses `decay_t = min(decay, (1 + step) / (10 + step))`, so early averages follow the
weights closely; each update is `shadow -= (shadow - value) * (1 - decay_t)`.

`ExponentialMovingAverage` is that, as a Keras callback updating after every training
step (the step count is the global step before the step, as TF1's update op saw it).
Its shadows are written into slim checkpoints as `<name>/ExponentialMovingAverage`,
the names TF1's `variables_to_restore()` maps to; `kslim.compat.restore(...,
use_moving_average=True)` and `kslim eval --moving_average_decay` read them back.
"""

from __future__ import annotations

from typing import Mapping

import keras
import numpy as np
import tensorflow as tf

__all__ = ["EMA_SUFFIX", "ExponentialMovingAverage"]

EMA_SUFFIX = "/ExponentialMovingAverage"


class ExponentialMovingAverage(keras.callbacks.Callback):
    """TF1's `ExponentialMovingAverage(decay, num_updates=global_step)` over the slim
    model variables, as a callback for `model.fit`.

    Args:
        decay: slim's `--moving_average_decay` (e.g. 0.9999).
        use_num_updates: lower the decay early in training as TF1 does with
            `num_updates=global_step` (slim passes the global step; default True).

    Example:
        >>> ema = ExponentialMovingAverage(0.9999)
        >>> model.fit(ds, callbacks=[ema, SlimCheckpoint(train_dir, ema=ema)])
        >>> ema.shadow_values()        # {"LeNet/conv1/weights/ExponentialMovingAverage": ...}
    """

    def __init__(self, decay: float, use_num_updates: bool = True):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"moving_average_decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.use_num_updates = use_num_updates
        self._names: list[str] = []
        self._variables: list = []
        self._shadows: list[tf.Variable] = []
        self._update_fn = None

    def attach(self, model) -> "ExponentialMovingAverage":
        """Creates the shadows (equal to the current values) for `model`'s slim variables."""
        from kslim import compat

        if self._shadows and self.model is model:
            return self
        self.set_model(model)
        items = sorted(compat.slim_variables(model).items())
        self._names = [name for name, _ in items]
        self._variables = [variable for _, variable in items]
        with tf.init_scope():
            self._shadows = [
                tf.Variable(np.asarray(variable.numpy()), trainable=False,
                            name=name.replace("/", "_") + "_ema")
                for name, variable in items]
        self._update_fn = None
        return self

    def _update(self, step):
        if self._update_fn is None:
            values = [v.value for v in self._variables]
            shadows = self._shadows
            decay, use_num_updates = self.decay, self.use_num_updates

            @tf.function(autograph=False)
            def update(step):
                rate = tf.constant(decay, tf.float32)
                if use_num_updates:
                    step = tf.cast(step, tf.float32)
                    rate = tf.minimum(rate, (1.0 + step) / (10.0 + step))
                for shadow, value in zip(shadows, values):
                    current = tf.convert_to_tensor(value)
                    shadow.assign_sub((shadow - tf.cast(current, shadow.dtype))
                                      * tf.cast(1.0 - rate, shadow.dtype))

            self._update_fn = update
        self._update_fn(tf.constant(step, tf.int64))

    # -- Keras callback -----------------------------------------------------------------

    def on_train_begin(self, logs=None):
        self.attach(self.model)

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self._update(step - 1)  # the global step the update op saw, before the increment

    # -- reading and writing --------------------------------------------------------------

    def shadow_values(self) -> dict[str, np.ndarray]:
        """`{"<slim name>/ExponentialMovingAverage": value}` for a slim checkpoint."""
        return {name + EMA_SUFFIX: shadow.numpy()
                for name, shadow in zip(self._names, self._shadows)}

    def load(self, values: Mapping[str, np.ndarray]) -> list[str]:
        """Sets shadows from `{"<name>/ExponentialMovingAverage": value}` (a resumed run);
        returns the names set. Shadows not given keep their values."""
        loaded = []
        for name, shadow in zip(self._names, self._shadows):
            key = name + EMA_SUFFIX
            if key in values and tuple(np.shape(values[key])) == tuple(shadow.shape):
                shadow.assign(np.asarray(values[key], shadow.dtype.as_numpy_dtype))
                loaded.append(name)
        return loaded

    def assign_to_model(self) -> None:
        """Copies the averages into the model's variables (evaluate the averaged model)."""
        for variable, shadow in zip(self._variables, self._shadows):
            variable.assign(shadow.numpy())
