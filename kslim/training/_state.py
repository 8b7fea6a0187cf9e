"""Training checkpoints in slim's format: model variables, global step, optimizer slots
and moving averages, keyed by slim names.

What slim's `Supervisor` saver wrote into `train_dir` (`model.ckpt-<step>`), so a run
resumes exactly and TF1 code restores the files:
- every model variable under its slim name (`kslim.compat.save_slim_checkpoint`);
- `global_step` (int64);
- optimizer slots as TF1 named them (`<var>/Momentum`, `<var>/RMSProp`, ... and Adam's
  `beta1_power`/`beta2_power`), see `kslim.training.slot_variables`;
- moving averages as `<var>/ExponentialMovingAverage`.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import tensorflow as tf

from kslim.training._optimizers import non_slot_variables, slot_variables, unwrap

__all__ = ["CHECKPOINT_BASENAME", "newest_intact_checkpoint", "read_moving_averages",
           "restore_training_checkpoint", "save_training_checkpoint"]

log = logging.getLogger("kslim")

CHECKPOINT_BASENAME = "model.ckpt"  # slim's train_dir/model.ckpt-<step>


def save_training_checkpoint(model, train_dir: str | os.PathLike, step: int, optimizer=None,
                             ema=None, max_to_keep: int | None = 5) -> str:
    """Writes `train_dir/model.ckpt-<step>` (atomically) and updates the `checkpoint`
    state file, keeping the newest `max_to_keep` (slim's Saver default, 5).

    Returns:
        The checkpoint prefix written.
    """
    from kslim import compat

    extra = {}
    if optimizer is not None:
        extra.update({name: np.asarray(v.numpy())
                      for name, v in slot_variables(optimizer, model).items()})
        extra.update(non_slot_variables(optimizer))
    if ema is not None:
        extra.update(ema.shadow_values())
    prefix = os.path.join(os.fspath(train_dir), CHECKPOINT_BASENAME)
    return compat.save_slim_checkpoint(model, prefix, global_step=int(step), extra=extra,
                                       max_to_keep=max_to_keep)


def newest_intact_checkpoint(train_dir: str | os.PathLike) -> str | None:
    """The checkpoint a run in `train_dir` resumes from: the newest one that reads
    whole. Newer unreadable ones (a disk fault, a copy cut short) are skipped with a
    warning naming them.

    Returns:
        The prefix, or None when `train_dir` holds no checkpoint.

    Raises:
        kslim.compat.CheckpointError: every checkpoint there is unreadable (naming them).
    """
    from kslim import compat
    from kslim.compat._checkpoint import check_readable, checkpoints_in_folder

    train_dir = os.fspath(train_dir)
    if not os.path.isdir(train_dir):
        return None
    bad = []
    for prefix in checkpoints_in_folder(train_dir):
        try:
            check_readable(prefix)
        except compat.CheckpointError as e:
            log.warning("skipping checkpoint %s in train_dir: it cannot be read (%s); resuming "
                        "from an older one", prefix, e)
            bad.append(f"{prefix}: {e}")
            continue
        if bad:
            print(f"Warning: the newest checkpoint(s) in {train_dir} cannot be read and were "
                  f"skipped: {'; '.join(bad)}", flush=True)
        return prefix
    if bad:
        raise compat.CheckpointError(
            f"no checkpoint in train_dir {train_dir} can be read, so the run cannot resume:\n  "
            + "\n  ".join(bad) + "\nMove them out of the folder to train from the start (or "
            "from --checkpoint_path), or use another --train_dir.")
    return None


def read_moving_averages(prefix: str) -> dict[str, np.ndarray]:
    """`{"<name>/ExponentialMovingAverage": value}` of every shadow in a checkpoint."""
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if name.endswith("/ExponentialMovingAverage")}


def restore_training_checkpoint(model, prefix: str, optimizer=None, ema=None) -> int:
    """Restores a training checkpoint (a resumed run): every model variable, then the
    optimizer slots, step and moving averages the checkpoint has.

    Returns:
        The checkpoint's global step (0 when it has none).

    Raises:
        kslim.compat.CheckpointError: the model's variables are not all there (a
            checkpoint of another net or class count in train_dir).
    """
    from kslim import compat

    compat.restore(model, prefix, strict=True)
    reader = tf.train.load_checkpoint(prefix)
    names = reader.get_variable_to_shape_map()
    step = int(reader.get_tensor("global_step")) if "global_step" in names else 0
    if optimizer is not None:
        inner = unwrap(optimizer)
        if not inner.built:
            inner.build(model.trainable_variables)
        restored = 0
        for name, variable in slot_variables(inner, model).items():
            if name in names and tuple(names[name]) == tuple(variable.shape):
                variable.assign(reader.get_tensor(name))
                restored += 1
        inner.iterations.assign(step)
        log.info("restored %d optimizer slots and global step %d from %s", restored, step,
                 prefix)
    if ema is not None:
        ema.load(read_moving_averages(prefix))
    return step
