"""Writing slim checkpoints: V2 files keyed by slim names, written atomically.

What `tf.compat.v1.train.Saver(var_list).save(sess, prefix, global_step)` writes for a
slim net (`prefix-<step>.index`, `.data-00000-of-00001` and the `checkpoint` state
file), made crash-safe: the tensors go to a temporary prefix in the same folder
(TensorFlow's `SaveV2` op) and are renamed into place, data before index, and only
then does the state file (written atomically by TensorFlow) point at them.
"""

from __future__ import annotations

import glob
import os
import uuid
from typing import Mapping

import numpy as np
import tensorflow as tf

from kslim.compat._restore import slim_variables

__all__ = ["save_slim_checkpoint", "write_checkpoint"]


def write_checkpoint(prefix: str, tensors: Mapping[str, object]) -> str:
    """Atomically writes `{name: tensor}` as a V2 checkpoint at `prefix`."""
    prefix = os.fspath(prefix)
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    temp = os.path.join(folder, f".{os.path.basename(prefix)}.tmp-{uuid.uuid4().hex[:8]}")
    names = sorted(tensors)
    try:
        with tf.device("/cpu:0"):
            tf.raw_ops.SaveV2(prefix=temp, tensor_names=names,
                              shape_and_slices=[""] * len(names),
                              tensors=[tf.convert_to_tensor(tensors[n]) for n in names])
        data = glob.glob(glob.escape(temp) + ".data-*")
        for part in sorted(data):
            os.replace(part, prefix + part[len(temp):])
        os.replace(temp + ".index", prefix + ".index")
    finally:
        for leftover in glob.glob(glob.escape(temp) + "*"):
            os.remove(leftover)
    return prefix


def _value(variable):
    value = getattr(variable, "value", variable)
    return value() if callable(value) else value


def save_slim_checkpoint(model, prefix: str | os.PathLike, global_step: int | None = None,
                         extra: Mapping[str, object] | None = None,
                         max_to_keep: int | None = None) -> str:
    """Saves a kslim model as a slim checkpoint that tf_slim's nets restore with `Saver`.

    Args:
        model: a built kslim model.
        prefix: checkpoint prefix, e.g. `train_dir/model.ckpt`.
        global_step: also written as the int64 `global_step` variable, and appended
            to the prefix (`model.ckpt-1000`) as slim's Saver does.
        extra: more tensors to write by name (e.g. `<name>/ExponentialMovingAverage`).
        max_to_keep: keep only this many newest checkpoints listed in the folder's
            `checkpoint` state file (older ones are deleted); None keeps all.

    Returns:
        The prefix written (with `-<global_step>` when given).
    """
    prefix = os.fspath(prefix)
    if global_step is not None:
        prefix = f"{prefix}-{int(global_step)}"
    tensors = {name: _value(v) for name, v in slim_variables(model).items()}
    if extra:
        tensors.update(extra)
    if global_step is not None:
        tensors["global_step"] = np.int64(global_step)
    write_checkpoint(prefix, tensors)
    _update_state(prefix, max_to_keep)
    return prefix


def _update_state(prefix: str, max_to_keep: int | None) -> None:
    """Points the folder's `checkpoint` state file at `prefix` (atomic, by TensorFlow)."""
    folder = os.path.dirname(os.path.abspath(prefix))
    name = os.path.basename(prefix)  # relative: the folder can move
    state = tf.train.get_checkpoint_state(folder)
    previous = [os.path.basename(p) for p in (state.all_model_checkpoint_paths if state else ())
                if os.path.dirname(os.path.abspath(p)) == folder]
    kept = [p for p in previous if p != name] + [name]
    dropped = []
    if max_to_keep and len(kept) > max_to_keep:
        dropped, kept = kept[:-max_to_keep], kept[-max_to_keep:]
    tf.compat.v1.train.update_checkpoint_state(folder, name, all_model_checkpoint_paths=kept)
    for old in dropped:
        old = os.path.join(folder, old)
        for path in glob.glob(glob.escape(old) + ".index") + glob.glob(glob.escape(old) + ".data-*"):
            os.remove(path)
