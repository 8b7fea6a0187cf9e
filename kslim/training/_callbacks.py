"""Keras callbacks for slim-style training: checkpoints, summaries, logging, stopping.

- `SlimCheckpoint`: slim's Supervisor saver. Writes slim-format checkpoints
  (`train_dir/model.ckpt-<step>`, see `save_training_checkpoint`) every
  `save_interval_secs` seconds (slim's default 600) and/or every `save_every_n_steps`
  steps, and at the end of training; keeps `max_to_keep` (5, the Saver default). Only
  the chief writes under multi-worker training.
- `SlimSummaries`: TensorBoard scalars every `save_summaries_secs` (slim's default 600):
  `total_loss`, `learning_rate`, `regularization_loss` and the compiled metrics
  (`train/<name>`), written to `train_dir` as slim's summary op did.
- `StepLogger`: slim's `global step N: loss = X (S sec/step)` line every
  `log_every_n_steps` steps (10, as slim).
- `StopAtStep`: slim's `--max_number_of_steps`, counted on the global step (the
  optimizer's iteration count), so a resumed run stops at the same step.
- `StopOnNaN`: stops at the first NaN or infinite loss and raises `LossDivergedError`
  naming the global step (slim's `check_numerics` on the total loss); nothing is saved
  from the diverged state.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from kslim.training._state import save_training_checkpoint

__all__ = ["LossDivergedError", "SlimCheckpoint", "SlimSummaries", "StepLogger", "StopAtStep",
           "StopOnNaN", "global_step", "write_scalar"]

log = logging.getLogger("kslim")


class LossDivergedError(FloatingPointError):
    """The training loss became NaN or infinite; `.step` is the global step."""

    def __init__(self, step: int, value: float):
        self.step = int(step)
        self.value = value
        super().__init__(
            f"loss became {value} at global step {step}; training stopped and no checkpoint "
            "was written from the diverged weights. Lower --learning_rate (or check the "
            "data and labels); the last good checkpoint in train_dir resumes the run.")


def write_scalar(name: str, value: float, step: int) -> None:
    """A TensorBoard scalar in the default `tf.summary` writer.

    What `tf.summary.scalar` writes, through TensorFlow's own `tf.summary.write` with the
    "scalars" plugin metadata, so event files are written whether or not the
    `tensorboard` package is installed.
    """
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    tf.summary.write(name, tf.constant(float(value), tf.float32), step=step,
                     metadata=metadata)


def global_step(model) -> int:
    """The optimizer's iteration count: slim's `global_step`."""
    return int(np.asarray(model.optimizer.iterations))


def _loss_value(logs) -> float | None:
    if not logs or "loss" not in logs:
        return None
    return float(np.mean(np.asarray(logs["loss"])))


class StopAtStep(keras.callbacks.Callback):
    """Stops `fit` once the global step reaches `max_number_of_steps`."""

    def __init__(self, max_number_of_steps: int | None):
        super().__init__()
        self.max_number_of_steps = max_number_of_steps

    def on_train_batch_end(self, batch, logs=None):
        if self.max_number_of_steps is not None and \
                global_step(self.model) >= self.max_number_of_steps:
            self.model.stop_training = True


class StopOnNaN(keras.callbacks.Callback):
    """Raises `LossDivergedError` (naming the global step) at the first NaN/inf loss.

    Unlike `keras.callbacks.TerminateOnNaN`, which ends `fit` quietly, this makes the
    run fail, so scripts and schedulers see it; callbacks' `on_train_end` (the final
    checkpoint) does not run.
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = _loss_value(logs)
        if loss is not None and not math.isfinite(loss):
            self.model.stop_training = True
            raise LossDivergedError(global_step(self.model), loss)


class StepLogger(keras.callbacks.Callback):
    """slim's `global step N: loss = X (S sec/step)` log line every `every_n_steps`.

    Also records the loss of every step in `self.losses` (`{global step: loss}`; Keras's
    logged loss is the running mean over the current epoch).
    """

    def __init__(self, every_n_steps: int = 10, stream=None, record: bool = True):
        super().__init__()
        self.every_n_steps = max(1, int(every_n_steps))
        self.stream = stream
        self.record = record
        self.losses: dict[int, float] = {}
        self._last_time = None
        self._last_step = None

    def on_train_begin(self, logs=None):
        self._last_time = time.time()
        self._last_step = global_step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        loss = _loss_value(logs)
        if self.record and loss is not None:
            self.losses[step] = loss
        if step % self.every_n_steps == 0 and loss is not None and step != self._last_step:
            now = time.time()
            per_step = (now - self._last_time) / max(1, step - self._last_step)
            self._last_time, self._last_step = now, step
            print(f"global step {step}: loss = {loss:.4f} ({per_step:.3f} sec/step)",
                  file=self.stream or sys.stdout, flush=True)


class SlimCheckpoint(keras.callbacks.Callback):
    """Writes slim-format training checkpoints to `train_dir` as training goes.

    Args:
        train_dir: the folder (slim's `--train_dir`).
        save_interval_secs: seconds between checkpoints (slim default 600); None or 0
            for none by time.
        save_every_n_steps: also save every this many global steps; None for none.
        max_to_keep: newest checkpoints kept (slim's Saver default 5); None keeps all.
        ema: an `ExponentialMovingAverage` whose shadows go into the checkpoints.
        save_optimizer_state: also write the optimizer slots (exact resume).
        is_chief: False on non-chief workers, which then write nothing.
        save_on_train_end: write a last checkpoint when `fit` ends (as slim's
            Supervisor on exit).

    Attributes:
        saved: the prefixes written, oldest first.

    Example:
        >>> model.fit(ds, steps_per_epoch=100, epochs=10,
        ...           callbacks=[SlimCheckpoint("/tmp/train", save_interval_secs=60)])
    """

    def __init__(self, train_dir: str | os.PathLike, save_interval_secs: float | None = 600,
                 save_every_n_steps: int | None = None, max_to_keep: int | None = 5,
                 ema=None, save_optimizer_state: bool = True, is_chief: bool = True,
                 save_on_train_end: bool = True):
        super().__init__()
        self.train_dir = os.fspath(train_dir)
        self.save_interval_secs = save_interval_secs
        self.save_every_n_steps = save_every_n_steps
        self.max_to_keep = max_to_keep
        self.ema = ema
        self.save_optimizer_state = save_optimizer_state
        self.is_chief = is_chief
        self.save_on_train_end = save_on_train_end
        self.saved: list[str] = []
        self._last_time = time.time()
        self._last_saved_step = None

    def save(self, step: int | None = None) -> str | None:
        """Writes a checkpoint now (chief only); returns its prefix."""
        step = global_step(self.model) if step is None else step
        self._last_time = time.time()
        if not self.is_chief or step == self._last_saved_step:
            return None
        optimizer = self.model.optimizer if self.save_optimizer_state else None
        prefix = save_training_checkpoint(self.model, self.train_dir, step, optimizer=optimizer,
                                          ema=self.ema, max_to_keep=self.max_to_keep)
        self._last_saved_step = step
        self.saved.append(prefix)
        log.info("saved checkpoint %s", prefix)
        return prefix

    def on_train_begin(self, logs=None):
        self._last_time = time.time()
        step = global_step(self.model)
        if self._last_saved_step is None and _has_checkpoint_at(self.train_dir, step):
            self._last_saved_step = step  # resumed from it: no need to write it again

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        due = bool(self.save_every_n_steps) and step % self.save_every_n_steps == 0
        if self.save_interval_secs and time.time() - self._last_time >= self.save_interval_secs:
            due = True
        if due:
            self.save(step)

    def on_train_end(self, logs=None):
        if self.save_on_train_end:
            self.save()


def _has_checkpoint_at(train_dir: str, step: int) -> bool:
    return os.path.exists(os.path.join(train_dir, f"model.ckpt-{step}.index"))


class SlimSummaries(keras.callbacks.Callback):
    """TensorBoard scalars every `save_summaries_secs` seconds (and at the end):
    `total_loss`, `learning_rate`, `regularization_loss`, and the compiled metrics as
    `train/<name>`, at the global step.

    Args:
        log_dir: event-file folder (slim writes them into train_dir).
        save_summaries_secs: seconds between summaries (slim default 600).
        is_chief: False on non-chief workers (they write nothing).
    """

    def __init__(self, log_dir: str | os.PathLike, save_summaries_secs: float = 600,
                 is_chief: bool = True):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.save_summaries_secs = save_summaries_secs
        self.is_chief = is_chief
        self._writer = None
        self._last_time = 0.0
        self._last_logs = None

    def _write(self, logs):
        if not self.is_chief or not logs:
            return
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        step = global_step(self.model)
        optimizer = self.model.optimizer
        learning_rate = getattr(optimizer, "learning_rate", None)
        with self._writer.as_default(step=step):
            loss = _loss_value(logs)
            if loss is not None:
                write_scalar("total_loss", loss, step)
            if learning_rate is not None:
                write_scalar("learning_rate", float(np.asarray(learning_rate)), step)
            if self.model.losses:
                write_scalar("regularization_loss",
                             float(sum(np.asarray(l) for l in self.model.losses)), step)
            for key, value in logs.items():
                if key != "loss":
                    write_scalar(f"train/{key}", float(np.mean(np.asarray(value))), step)
        self._writer.flush()
        self._last_time = time.time()

    def on_train_begin(self, logs=None):
        self._last_time = time.time()

    def on_train_batch_end(self, batch, logs=None):
        self._last_logs = logs
        if time.time() - self._last_time >= self.save_summaries_secs:
            self._write(logs)

    def on_train_end(self, logs=None):
        self._write(self._last_logs)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
