"""slim's learning-rate schedules: `train_image_classifier._configure_learning_rate`.

`--learning_rate_decay_type`:
- `fixed`: the constant `learning_rate`.
- `exponential` (slim's default): `learning_rate * decay_factor ** floor(step / decay_steps)`
  (`tf.train.exponential_decay(..., staircase=True)`).
- `polynomial`: linear (power 1.0, no cycling) from `learning_rate` to
  `end_learning_rate` over `decay_steps`, then constant.

with `decay_steps = int(num_samples_per_epoch * num_epochs_per_decay / batch)`.

The one deliberate difference from slim: `batch` here is the **global** batch (all
replicas, all workers). Slim divided by its per-clone `--batch_size`, so with
`--num_clones N` its learning rate decayed every `num_epochs_per_decay / N` real epochs
("learning rate decay happens per clone epochs", tensorflow/models#3498, #4065; the
MobileNet recipes compensate with `--num_epochs_per_decay=2.5/NUM_GPUS`). kslim decays
per real epoch whatever the number of replicas. A slim multi-clone recipe written for
per-clone decay (`--num_epochs_per_decay=E`) decays as slim did with
`--num_epochs_per_decay=E/N` here; one written with slim's compensation
(`--num_epochs_per_decay=E/N`) should pass `E`.

With `sync_replicas` slim also divided decay_steps by `replicas_to_aggregate`; kslim's
synchronous replicas already count one step per global batch, so that division is not
repeated.
"""

from __future__ import annotations

import keras

__all__ = ["DECAY_TYPES", "decay_steps", "learning_rate_schedule"]

DECAY_TYPES = ("exponential", "fixed", "polynomial")


def decay_steps(num_samples_per_epoch: int, num_epochs_per_decay: float,
                global_batch_size: int) -> int:
    """`int(num_samples_per_epoch * num_epochs_per_decay / global_batch_size)`, at least 1.

    Slim used its per-clone batch here; pass the per-clone batch to reproduce that.
    """
    if global_batch_size <= 0:
        raise ValueError(f"batch size must be positive, got {global_batch_size}")
    if num_samples_per_epoch <= 0:
        raise ValueError(f"num_samples_per_epoch must be positive, got {num_samples_per_epoch}")
    if num_epochs_per_decay <= 0:
        raise ValueError(f"num_epochs_per_decay must be positive, got {num_epochs_per_decay}")
    return max(1, int(num_samples_per_epoch * num_epochs_per_decay / global_batch_size))


def learning_rate_schedule(decay_type: str = "exponential", learning_rate: float = 0.01, *,
                           num_samples_per_epoch: int | None = None,
                           global_batch_size: int | None = None,
                           num_epochs_per_decay: float = 2.0,
                           learning_rate_decay_factor: float = 0.94,
                           end_learning_rate: float = 0.0001):
    """The learning rate (a float or a Keras schedule over the optimizer's step).

    Args:
        decay_type: "exponential", "fixed" or "polynomial" (slim's flag values).
        learning_rate: initial learning rate (slim default 0.01).
        num_samples_per_epoch: the training split's size (needed unless "fixed").
        global_batch_size: examples per step over all replicas (needed unless "fixed").
        num_epochs_per_decay: epochs between decays (slim default 2.0).
        learning_rate_decay_factor: exponential decay factor (slim default 0.94).
        end_learning_rate: polynomial decay's final rate (slim default 0.0001).

    Returns:
        A float for "fixed", else a `keras.optimizers.schedules.LearningRateSchedule`.

    Raises:
        ValueError: unknown decay type or missing sizes.

    Example:
        >>> lr = learning_rate_schedule("exponential", 0.01, num_samples_per_epoch=1437,
        ...                             global_batch_size=32)
        >>> optimizer = create_optimizer("rmsprop", lr)
    """
    if decay_type == "fixed":
        return float(learning_rate)
    if decay_type not in DECAY_TYPES:
        raise ValueError(f"learning_rate_decay_type [{decay_type}] was not recognized; use "
                         f"one of {', '.join(DECAY_TYPES)}")
    if not num_samples_per_epoch or not global_batch_size:
        raise ValueError(f"the {decay_type} learning rate needs num_samples_per_epoch and "
                         "global_batch_size (decay_steps = samples * num_epochs_per_decay / "
                         "batch)")
    steps = decay_steps(num_samples_per_epoch, num_epochs_per_decay, global_batch_size)
    if decay_type == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            learning_rate, steps, learning_rate_decay_factor, staircase=True,
            name="exponential_decay_learning_rate")
    return keras.optimizers.schedules.PolynomialDecay(
        learning_rate, steps, end_learning_rate, power=1.0, cycle=False,
        name="polynomial_decay_learning_rate")
