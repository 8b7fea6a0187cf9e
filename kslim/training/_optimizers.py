"""slim's optimizers on Keras: `train_image_classifier._configure_optimizer`.

`create_optimizer(name, learning_rate, **options)` takes the optimizer names and option
flags of research/slim `train_image_classifier.py` (with their defaults) and returns a
Keras optimizer whose update is the TF1 optimizer's update:

| slim `--optimizer` | TF1 class                    | Keras optimizer                               |
|--------------------|------------------------------|-----------------------------------------------|
| adadelta           | AdadeltaOptimizer            | keras.optimizers.Adadelta (same update)       |
| adagrad            | AdagradOptimizer             | keras.optimizers.Adagrad, epsilon=0 (TF1 adds none) |
| adam               | AdamOptimizer                | keras.optimizers.Adam (same "epsilon hat" form) |
| ftrl               | FtrlOptimizer                | keras.optimizers.Ftrl (same update)           |
| momentum           | MomentumOptimizer            | `Momentum` below (TF1 accumulates gradients)  |
| rmsprop            | RMSPropOptimizer             | `RMSProp` below (mean square starts at 1)     |
| sgd                | GradientDescentOptimizer     | keras.optimizers.SGD                          |

Two Keras optimizers differ from TF1 and get a small subclass each:
- Keras SGD with momentum accumulates `lr * grad`; TF1 accumulates `grad` and multiplies
  by the current learning rate (`accum = m * accum + g; var -= lr * accum`). The two agree
  only while the learning rate is constant; `Momentum` keeps TF1's form.
- Keras RMSprop starts its mean square at 0; TF1 starts it at 1, which with slim's
  `opt_epsilon=1.0` changes the first hundreds of steps. `RMSProp` starts it at 1.

slim passes its `--opt_epsilon` default, 1.0, to Adam too, where it damps every update
(LeNet on digits: 0.825 accuracy against 0.980 with 1e-8). kslim keeps that default, so
old command lines give slim's results, and says so once in the log when Adam runs with it.

`slot_variables(optimizer, model)` names each optimizer slot as TF1 did
(`<var>/Momentum`, `<var>/RMSProp`, `<var>/RMSProp_1`, `<var>/Adam`, `<var>/Adam_1`,
`<var>/Adagrad`, `<var>/Adadelta(_1)`, `<var>/Ftrl(_1)`), so slim-format training
checkpoints carry the optimizer state and a run resumes exactly.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import keras
import numpy as np
import tensorflow as tf
from keras import ops


__all__ = ["Momentum", "OPTIMIZER_DEFAULTS", "OPTIMIZERS", "RMSProp", "create_optimizer",
           "non_slot_variables", "slot_variables", "unwrap"]

log = logging.getLogger("kslim")
_adam_epsilon_noted = False

OPTIMIZERS = ("adadelta", "adagrad", "adam", "ftrl", "momentum", "rmsprop", "sgd")

# train_image_classifier.py's optimizer flags and defaults.
OPTIMIZER_DEFAULTS: dict[str, Any] = {
    "adadelta_rho": 0.95,
    "adagrad_initial_accumulator_value": 0.1,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "opt_epsilon": 1.0,
    "ftrl_learning_rate_power": -0.5,
    "ftrl_initial_accumulator_value": 0.1,
    "ftrl_l1": 0.0,
    "ftrl_l2": 0.0,
    "momentum": 0.9,
    "rmsprop_momentum": 0.9,
    "rmsprop_decay": 0.9,
}


def _fused_ok(variable, slot, gradient) -> bool:
    """TF's fused apply kernels take plain resource variables and dense gradients;
    under a tf.distribute strategy (mirrored variables) Keras's own update runs."""
    return (keras.backend.backend() == "tensorflow" and not tf.distribute.has_strategy()
            and isinstance(gradient, tf.Tensor) and hasattr(variable, "handle")
            and hasattr(slot, "handle"))


@keras.saving.register_keras_serializable(package="kslim")
class Momentum(keras.optimizers.SGD):
    """TF1's `MomentumOptimizer`: `accum = momentum * accum + grad; var -= lr * accum`.

    Keras's SGD keeps `lr * grad` in its accumulator instead, which differs from TF1 as
    soon as the learning rate decays. Slot variables are those of SGD (`momentums`).

    Example:
        >>> opt = Momentum(learning_rate=0.01, momentum=0.9)
    """

    def __init__(self, learning_rate=0.01, momentum: float = 0.9, name: str = "Momentum",
                 **kwargs):
        kwargs.pop("nesterov", None)
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=False,
                         name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.momentum == 0:
            self.assign_sub(variable, ops.multiply(gradient, learning_rate))
            return
        accum = self.momentums[self._get_variable_index(variable)]
        if _fused_ok(variable, accum, gradient):
            # TF1's own kernel (what MomentumOptimizer ran): one pass over the memory.
            tf.raw_ops.ResourceApplyMomentum(
                var=variable.handle, accum=accum.handle, lr=learning_rate, grad=gradient,
                momentum=ops.cast(self.momentum, variable.dtype), use_locking=False,
                use_nesterov=False)
            return
        self.assign(accum, ops.add(ops.multiply(accum, ops.cast(self.momentum, variable.dtype)),
                                   gradient))
        self.assign_sub(variable, ops.multiply(accum, learning_rate))

    def get_config(self):
        config = super().get_config()
        config.pop("nesterov", None)
        return config


@keras.saving.register_keras_serializable(package="kslim")
class RMSProp(keras.optimizers.RMSprop):
    """TF1's `RMSPropOptimizer`: Keras's RMSprop with the mean square starting at 1.

    Update (uncentered): `ms = decay * ms + (1 - decay) * g^2`,
    `mom = momentum * mom + lr * g / sqrt(ms + epsilon)`, `var -= mom`.

    Args:
        learning_rate: float or schedule.
        decay: slim's `rmsprop_decay` (Keras's `rho`).
        momentum: slim's `rmsprop_momentum`.
        epsilon: slim's `opt_epsilon` (default 1.0, as slim).
    """

    def __init__(self, learning_rate=0.01, decay: float | None = None, momentum: float = 0.9,
                 epsilon: float = 1.0, rho: float = 0.9, centered: bool = False,
                 name: str = "RMSProp", **kwargs):
        super().__init__(learning_rate=learning_rate, rho=rho if decay is None else decay,
                         momentum=momentum, epsilon=epsilon, centered=centered, name=name,
                         **kwargs)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for velocity in self._velocities:
            if velocity is not None:
                velocity.assign(ops.ones(velocity.shape, velocity.dtype))


def create_optimizer(name: str = "rmsprop", learning_rate=0.01, **options: Any):
    """A Keras optimizer configured as slim's `_configure_optimizer`.

    Args:
        name: one of `OPTIMIZERS` (slim's `--optimizer`; default rmsprop, as slim).
        learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule`
            (see `learning_rate_schedule`).
        **options: slim's option flags by name (`opt_epsilon`, `rmsprop_decay`,
            `rmsprop_momentum`, `momentum`, `adam_beta1`, `adam_beta2`, `adadelta_rho`,
            `adagrad_initial_accumulator_value`, `ftrl_learning_rate_power`,
            `ftrl_initial_accumulator_value`, `ftrl_l1`, `ftrl_l2`); missing ones take
            slim's defaults (`OPTIMIZER_DEFAULTS`). Options of other optimizers are
            accepted and ignored, as slim's flags are.

    Returns:
        A `keras.optimizers.Optimizer`.

    Raises:
        ValueError: unknown optimizer name or option, or an invalid value.

    Example:
        >>> opt = create_optimizer("rmsprop", 0.01)       # decay 0.9, momentum 0.9, eps 1.0
        >>> opt = create_optimizer("adam", schedule, opt_epsilon=1e-8)
    """
    unknown = sorted(set(options) - set(OPTIMIZER_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown optimizer option(s) {', '.join(unknown)}; slim's options "
                         f"are {', '.join(sorted(OPTIMIZER_DEFAULTS))}")
    o = {**OPTIMIZER_DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    if name == "adadelta":
        return keras.optimizers.Adadelta(learning_rate, rho=o["adadelta_rho"],
                                         epsilon=o["opt_epsilon"], name="Adadelta")
    if name == "adagrad":
        initial = o["adagrad_initial_accumulator_value"]
        if initial <= 0:
            raise ValueError("adagrad_initial_accumulator_value must be positive (TF's "
                             f"Adagrad divides by its square root), got {initial}")
        return keras.optimizers.Adagrad(learning_rate, initial_accumulator_value=initial,
                                        epsilon=0.0, name="Adagrad")
    if name == "adam":
        global _adam_epsilon_noted
        if o["opt_epsilon"] == 1.0 and not _adam_epsilon_noted:
            _adam_epsilon_noted = True
            log.warning("Adam runs with --opt_epsilon=1.0, slim's default for every "
                        "optimizer: it damps Adam's updates (slim gives the same results); "
                        "pass --opt_epsilon=1e-8 for Adam's usual epsilon")
        return keras.optimizers.Adam(learning_rate, beta_1=o["adam_beta1"],
                                     beta_2=o["adam_beta2"], epsilon=o["opt_epsilon"],
                                     name="Adam")
    if name == "ftrl":
        return keras.optimizers.Ftrl(
            learning_rate, learning_rate_power=o["ftrl_learning_rate_power"],
            initial_accumulator_value=o["ftrl_initial_accumulator_value"],
            l1_regularization_strength=o["ftrl_l1"],
            l2_regularization_strength=o["ftrl_l2"], name="Ftrl")
    if name == "momentum":
        return Momentum(learning_rate, momentum=o["momentum"])
    if name == "rmsprop":
        return RMSProp(learning_rate, decay=o["rmsprop_decay"],
                       momentum=o["rmsprop_momentum"], epsilon=o["opt_epsilon"])
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, name="GradientDescent")
    raise ValueError(f"Optimizer [{name}] was not recognized; use one of "
                     f"{', '.join(OPTIMIZERS)}")


# Keras slot lists -> TF1 slot names, per optimizer class (most specific first).
_SLOTS: tuple[tuple[type, Mapping[str, str]], ...] = (
    (Momentum, {"momentums": "Momentum"}),
    (RMSProp, {"_velocities": "RMSProp", "_momentums": "RMSProp_1"}),
    (keras.optimizers.RMSprop, {"_velocities": "RMSProp", "_momentums": "RMSProp_1"}),
    (keras.optimizers.Adam, {"_momentums": "Adam", "_velocities": "Adam_1"}),
    (keras.optimizers.Adagrad, {"_accumulators": "Adagrad"}),
    (keras.optimizers.Adadelta, {"_accumulated_grads": "Adadelta",
                                 "_accumulated_delta_vars": "Adadelta_1"}),
    (keras.optimizers.Ftrl, {"_accumulators": "Ftrl", "_linears": "Ftrl_1"}),
    (keras.optimizers.SGD, {"momentums": "Momentum"}),
)


def unwrap(optimizer):
    """The optimizer a `LossScaleOptimizer` (mixed_float16) wraps, else itself."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def slot_variables(optimizer, model) -> dict[str, Any]:
    """`{"<slim name>/<Slot>": optimizer variable}` for a built optimizer.

    Only optimizers of `create_optimizer` (and their Keras bases) are known; others
    give `{}` (their state is then not written into slim checkpoints).
    """
    from kslim import compat

    optimizer = unwrap(optimizer)
    if not getattr(optimizer, "built", False):
        return {}
    table = next((slots for cls, slots in _SLOTS if isinstance(optimizer, cls)), None)
    if table is None:
        return {}
    out = {}
    for name, variable in compat.slim_variables(model).items():
        if not variable.trainable:
            continue
        try:
            index = optimizer._get_variable_index(variable)
        except KeyError:  # not trained by this optimizer (frozen by trainable_scopes)
            continue
        for attribute, slot in table.items():
            slots = getattr(optimizer, attribute, None) or []
            if index < len(slots) and slots[index] is not None:
                out[f"{name}/{slot}"] = slots[index]
    return out


def non_slot_variables(optimizer) -> dict[str, np.ndarray]:
    """TF1's non-slot optimizer variables that follow from the step: Adam's
    `beta1_power` and `beta2_power` (`beta ** (step + 1)`, what TF1 holds after `step`
    updates). Written so a TF1 Saver restoring every variable finds them."""
    optimizer = unwrap(optimizer)
    if not isinstance(optimizer, keras.optimizers.Adam):
        return {}
    step = int(np.asarray(optimizer.iterations))
    return {"beta1_power": np.float32(optimizer.beta_1 ** (step + 1)),
            "beta2_power": np.float32(optimizer.beta_2 ** (step + 1))}
