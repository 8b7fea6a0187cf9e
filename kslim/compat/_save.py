"""Writing slim checkpoints: V2 files keyed by slim names, published crash-safe.

What `tf.compat.v1.train.Saver(var_list).save(sess, prefix, global_step)` writes for a
slim net (`prefix-<step>.index`, `.data-<i>-of-<n>` and the `checkpoint` state file),
made safe against a kill at any moment and against two savers at once:

* The tensors go to a hidden temporary prefix in the same folder (TensorFlow's
  `SaveV2`, and `MergeV2Checkpoints` for more than one shard) and are renamed into place.
* A V2 pair is two files, and no rename swaps two files at once. So a save that replaces
  an existing prefix writes a shard count the existing checkpoint does not use: its
  data files get other names (`.data-00000-of-00002` beside the old `-of-00001`), appear
  without touching the old pair, and the rename of the `.index` switches readers from
  the old complete pair to the new complete one. Only then are the old data files
  removed. Killed at any instant, the prefix reads as the old or the new checkpoint.
* Every save holds an exclusive `flock` on the folder's `.kslim-checkpoint.lock` while it
  writes and publishes, so two processes saving one prefix cannot interleave their
  renames: the second waits and then publishes its own complete checkpoint (the last
  complete one wins). The lock is released by the kernel when a process dies.
* kslim's readers (`restore`) hold a shared lock on that file while they read, so a
  reader never meets a data file replaced under the index it opened.
* Holding that lock, a save removes the temporary files that killed saves left in the
  folder (kslim's own hidden `*.kslim-tmp-*` names; no live save can own them), and data
  files of the prefix that its `.index` does not refer to (a save killed between its
  data and index renames).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import time
import uuid
from typing import Mapping

import numpy as np
import tensorflow as tf

from kslim.compat._checkpoint import LOCK_NAME, CheckpointError
from kslim.compat._restore import slim_variables

try:  # POSIX; elsewhere saves are not serialized across processes
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = ["save_slim_checkpoint", "write_checkpoint", "remove_stale_temporaries"]

log = logging.getLogger("kslim")

_TEMP_TAG = ".kslim-tmp-"
# Hidden temporaries of this module (`.<prefix name>.kslim-tmp-<pid>-<hex>...`), of
# kslim before it (`.<prefix name>.tmp-<8 hex>...`, removed once an hour old: no lock
# told whether their writer was alive) and TensorFlow's state-file writer.
_TEMP = re.compile(r"^\..+\.kslim-tmp-\d+-[0-9a-f]{8}")
_OLD_TEMP = re.compile(r"^\..+\.tmp-[0-9a-f]{8}(\.|$)|^checkpoint\.tmp[0-9a-f]{32}$")
_OLD_TEMP_SECONDS = 3600
_SHARDS = re.compile(r"\.data-\d{5}-of-(\d{5})$")


def _unwritable(prefix: str, folder: str, detail: str) -> PermissionError:
    return PermissionError(f"cannot save checkpoint {prefix!r}: folder {folder!r} is not "
                           f"writable ({detail}). Save into a folder you can write, or fix "
                           "its permissions; nothing was changed there.")


@contextlib.contextmanager
def _folder_lock(folder: str, prefix: str):
    """Holds the folder's checkpoint lock (exclusive `flock`) for the block."""
    path = os.path.join(folder, LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError as e:
        raise _unwritable(prefix, folder, e.strerror or "permission denied") from None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another process saving into %s", folder)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as e:  # a file system without flock: go on unserialized
                log.warning("cannot lock %s (%s); concurrent saves into this folder are "
                            "not serialized", path, e)
        yield
    finally:
        os.close(fd)  # releases the flock


def remove_stale_temporaries(folder: str | os.PathLike) -> list[str]:
    """Removes the temporary files killed saves left in `folder`; returns their paths.

    Takes the folder's checkpoint lock, so no live kslim save owns what it removes.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return []
    with _folder_lock(folder, os.path.join(folder, "*")):
        return _remove_stale(folder)


def _remove_stale(folder: str) -> list[str]:
    removed = []
    now = time.time()
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        try:
            if _TEMP.match(name) or (_OLD_TEMP.match(name) and
                                     now - os.path.getmtime(path) > _OLD_TEMP_SECONDS):
                os.remove(path)
                removed.append(path)
        except OSError:
            pass  # gone meanwhile, or not ours to remove
    if removed:
        log.info("removed %d temporary file(s) of interrupted saves in %s", len(removed),
                 folder)
    return removed


def _published_shards(prefix: str) -> int | None:
    """The shard count the `.index` at `prefix` refers to (None: no index, or unreadable).

    The index is a table whose first entry, under the empty key, is the
    `BundleHeaderProto` (TensorFlow's `tensor_bundle.proto`); its bytes are read directly
    so no reader opens the data files."""
    from tensorflow.core.protobuf import tensor_bundle_pb2

    try:
        with open(prefix + ".index", "rb") as f:
            head = f.read(64)
    except OSError:
        return None
    numbers, position = [], 0
    for _ in range(3):  # shared key bytes, key bytes, value bytes: varints
        value = shift = 0
        while position < len(head):
            byte = head[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        numbers.append(value)
    shared, key, size = numbers
    if shared or key or position + size > len(head):
        return None
    try:
        header = tensor_bundle_pb2.BundleHeaderProto.FromString(head[position:position + size])
    except Exception:  # noqa: BLE001 - any parse failure means "unknown"
        return None
    return header.num_shards or None


def _shard_count(prefix: str, limit: int) -> int:
    """A shard count for the new checkpoint that the published one does not use, after
    removing data files of `prefix` that its index does not refer to (left by saves
    killed before their index rename). 0 when no free count fits `limit` tensors."""
    published = _published_shards(prefix)
    data = glob.glob(glob.escape(prefix) + ".data-*")
    if published is not None:
        for path in data:
            match = _SHARDS.search(path)
            if match and int(match.group(1)) != published:
                os.remove(path)  # an orphan: no index refers to it
        used = {published}
    else:  # no index (or one this code cannot parse): keep every data file
        used = {int(m.group(1)) for p in data if (m := _SHARDS.search(p))}
    for count in range(1, 4):
        if count not in used:
            return count if count <= limit else 0
    return 0


def _write_shards(temp: str, tensors: Mapping[str, object], names: list[str],
                  count: int) -> None:
    """`SaveV2` of `names` into `count` shards at the temporary prefix `temp`."""
    with tf.device("/cpu:0"):
        values = {n: tf.convert_to_tensor(tensors[n]) for n in names}
        if count == 1:
            tf.raw_ops.SaveV2(prefix=temp, tensor_names=names, shape_and_slices=[""] * len(names),
                              tensors=[values[n] for n in names])
            return
        parts = []
        for i in range(count):
            part_names = names[i::count]
            part = f"{temp}_part{i}"
            tf.raw_ops.SaveV2(prefix=part, tensor_names=part_names,
                              shape_and_slices=[""] * len(part_names),
                              tensors=[values[n] for n in part_names])
            parts.append(part)
        tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=parts, destination_prefix=temp,
                                      delete_old_dirs=False)


def write_checkpoint(prefix: str, tensors: Mapping[str, object]) -> str:
    """Writes `{name: tensor}` as a V2 checkpoint at `prefix`, crash-safe.

    An existing checkpoint at `prefix` stays readable until the new one replaces it
    whole (see the module docstring); concurrent writers into one folder take turns.

    Raises:
        PermissionError: the folder cannot be written (naming the prefix and folder).
        CheckpointError: `prefix` names a folder, or its folder is a file.
    """
    prefix = os.fspath(prefix)
    folder = os.path.dirname(os.path.abspath(prefix))
    if os.path.isdir(prefix):
        raise CheckpointError(f"cannot save checkpoint {prefix!r}: it is a folder; give a "
                              f"prefix inside it, e.g. {os.path.join(prefix, 'model.ckpt')!r}")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise CheckpointError(f"cannot save checkpoint {prefix!r}: {folder!r} is a file, not "
                              "a folder; give a prefix in a folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except PermissionError as e:
        raise _unwritable(prefix, os.path.dirname(folder), e.strerror or "permission denied"
                          ) from None
    names = sorted(tensors)
    with _folder_lock(folder, prefix):
        _remove_stale(folder)
        count = _shard_count(prefix, len(names))
        temp = os.path.join(folder, f".{os.path.basename(prefix)}{_TEMP_TAG}"
                                    f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            try:
                _write_shards(temp, tensors, names, count or 1)
            except tf.errors.PermissionDeniedError as e:
                raise _unwritable(prefix, folder, str(e).splitlines()[0]) from None
            data = sorted(glob.glob(glob.escape(temp) + ".data-*"))
            if not count:
                # Fewer tensors than a free shard count needs (a one- or two-tensor
                # checkpoint replacing itself): the old pair goes first, so a kill
                # between these renames leaves no checkpoint rather than a mixed one.
                for old in glob.glob(glob.escape(prefix) + ".index"):
                    os.remove(old)
            published = []
            for part in data:
                target = prefix + part[len(temp):]
                os.replace(part, target)
                published.append(target)
            os.replace(temp + ".index", prefix + ".index")  # the switch
            for old in glob.glob(glob.escape(prefix) + ".data-*"):
                if old not in published:
                    os.remove(old)
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

    Raises:
        PermissionError: the folder cannot be written (naming the prefix and folder).
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
    folder = os.path.dirname(os.path.abspath(prefix))
    with _folder_lock(folder, prefix):
        _update_state(prefix, max_to_keep)
    return prefix


def _update_state(prefix: str, max_to_keep: int | None) -> None:
    """Points the folder's `checkpoint` state file at `prefix` (atomic, by TensorFlow)."""
    folder = os.path.dirname(os.path.abspath(prefix))
    name = os.path.basename(prefix)  # relative: the folder can move
    try:
        state = tf.train.get_checkpoint_state(folder)
    except (tf.errors.OpError, ValueError):  # an unparsable state file: start it again
        state = None
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
