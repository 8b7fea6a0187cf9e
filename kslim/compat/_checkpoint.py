"""Finding and reading slim checkpoints (V1 single files and V2 `.index` + `.data`).

Reading goes through TensorFlow's own checkpoint reader (`tf.train.load_checkpoint`),
which understands both formats; this module turns its failures into errors that
name the file and say what to do, and implements slim's "which checkpoint" order.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re

import tensorflow as tf

__all__ = ["CheckpointError", "check_readable", "checkpoint_prefix", "checkpoints_in_folder",
           "list_checkpoint", "open_checkpoint", "resolve_checkpoint"]


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


_DATA_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")
# kslim's savers hold this file's exclusive flock while they publish (compat._save);
# kslim's readers hold a shared one while they read, so a reader never sees a data file
# replaced under the index it opened.
LOCK_NAME = ".kslim-checkpoint.lock"


@contextlib.contextmanager
def reading_lock(prefix: str):
    """A shared flock on the checkpoint folder's lock file, when it has one (folders
    kslim never saved into, or read-only ones, are read without it)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield
        return
    try:
        fd = os.open(os.path.join(os.path.dirname(os.path.abspath(prefix)), LOCK_NAME),
                     os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError:
            pass  # a file system without flock
        yield
    finally:
        os.close(fd)


def _is_v2_prefix(path: str) -> bool:
    return os.path.isfile(path + ".index")


def _is_checkpoint(path: str) -> bool:
    """A V2 prefix, or an existing file that is not a V2 part (a V1 checkpoint)."""
    if _is_v2_prefix(path):
        return True
    return (os.path.isfile(path) and not path.endswith((".index", ".meta"))
            and not _DATA_SUFFIX.search(path) and os.path.basename(path) != "checkpoint")


def _newest_in_folder(folder: str) -> str | None:
    """The folder's newest checkpoint: its `checkpoint` state file's, else by mtime."""
    try:
        latest = tf.train.latest_checkpoint(folder)
    except (tf.errors.OpError, ValueError):
        latest = None
    if latest and _is_checkpoint(latest):
        return latest
    candidates = [p[: -len(".index")] for p in glob.glob(os.path.join(folder, "*.index"))]
    candidates += [p for p in glob.glob(os.path.join(folder, "*.ckpt"))
                   if os.path.isfile(p) and not _is_v2_prefix(p)]
    candidates = [p for p in candidates if _is_checkpoint(p)]
    if not candidates:
        return None

    def mtime(prefix):
        path = prefix + ".index" if _is_v2_prefix(prefix) else prefix
        return os.path.getmtime(path)

    return max(candidates, key=mtime)


def checkpoints_in_folder(folder: str | os.PathLike) -> list[str]:
    """Every checkpoint in `folder`, newest first: those its `checkpoint` state file
    lists (newest last there), then any other by modification time."""
    folder = os.fspath(folder)
    listed = []
    try:
        state = tf.train.get_checkpoint_state(folder)
    except (tf.errors.OpError, ValueError):
        state = None
    for path in reversed(list(state.all_model_checkpoint_paths) if state else []):
        path = path if os.path.isabs(path) else os.path.join(folder, path)
        if _is_checkpoint(path) and path not in listed:
            listed.append(path)
    others = [p[: -len(".index")] for p in glob.glob(os.path.join(glob.escape(folder), "*.index"))]
    others += [p for p in glob.glob(os.path.join(glob.escape(folder), "*.ckpt"))
               if os.path.isfile(p) and not _is_v2_prefix(p)]
    others = [p for p in others if _is_checkpoint(p) and p not in listed]

    def mtime(prefix):
        return os.path.getmtime(prefix + ".index" if _is_v2_prefix(prefix) else prefix)

    return listed + sorted(others, key=mtime, reverse=True)


def check_readable(path: str | os.PathLike) -> str:
    """Reads every tensor of a checkpoint once (TensorFlow's `RestoreV2`, CRCs checked);
    returns its prefix.

    Raises:
        CheckpointError: naming the checkpoint (and the variable) that cannot be read.
    """
    prefix = checkpoint_prefix(path)
    with reading_lock(prefix):
        _check_readable(prefix)
    return prefix


def _check_readable(prefix: str) -> None:
    prefix, reader = open_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    names = sorted(dtypes)
    if not names:
        return
    try:
        with tf.device("/cpu:0"):
            tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=names,
                                 shape_and_slices=[""] * len(names),
                                 dtypes=[dtypes[n] for n in names])
    except (tf.errors.OpError, ValueError) as e:
        for name in names:
            read_tensor(reader, prefix, name)  # raises naming the variable
        raise CheckpointError(f"cannot read checkpoint {prefix!r}: "
                              f"{str(e).strip().splitlines()[0]}") from None


def checkpoint_prefix(path: str | os.PathLike) -> str:
    """The checkpoint prefix `path` names: a prefix, one of its files, or a folder
    (its newest checkpoint).

    Raises:
        CheckpointError: nothing there, or a V2 checkpoint with its `.index` missing.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        found = _newest_in_folder(path)
        if found is None:
            raise CheckpointError(f"no checkpoint in folder {path!r} (looked for a "
                                  "'checkpoint' state file, *.index and *.ckpt files)")
        return found
    if path.endswith(".index") and os.path.isfile(path):
        return path[: -len(".index")]
    match = _DATA_SUFFIX.search(path)
    if match:
        path = path[: match.start()]
    if _is_checkpoint(path):
        return path
    if glob.glob(glob.escape(path) + ".data-*"):
        raise CheckpointError(
            f"checkpoint {path!r} has data files but its index file {path + '.index'!r} is "
            "missing; a V2 checkpoint needs both (copy the .index file too)")
    raise CheckpointError(f"no checkpoint at {path!r}: expected a V2 prefix (with "
                          f"{os.path.basename(path)}.index), a V1 checkpoint file or a folder")


def open_checkpoint(path: str | os.PathLike):
    """Opens a checkpoint for reading; returns `(prefix, reader)`.

    The reader is TensorFlow's `CheckpointReader` (`get_variable_to_shape_map`,
    `get_variable_to_dtype_map`, `get_tensor`).
    """
    prefix = checkpoint_prefix(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError, RuntimeError, IndexError, OSError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read checkpoint {prefix!r}: it is not a TensorFlow "
                              f"checkpoint or it is corrupt ({detail})") from None
    return prefix, reader


def read_tensor(reader, prefix: str, name: str):
    """`reader.get_tensor(name)`, with truncation and corruption named."""
    try:
        return reader.get_tensor(name)
    except (tf.errors.OpError, ValueError, RuntimeError, IndexError, OSError) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"cannot read variable {name!r} from checkpoint {prefix!r}: "
                              f"the file is truncated or corrupt ({detail})") from None


def list_checkpoint(path: str | os.PathLike) -> list[tuple[str, tuple[int, ...], str]]:
    """`[(name, shape, dtype)]` of every tensor in a V1 or V2 checkpoint, sorted by name."""
    _, reader = open_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    return [(name, tuple(shapes[name]), dtypes[name].name) for name in sorted(shapes)]


def resolve_checkpoint(train_dir: str | os.PathLike | None = None,
                       checkpoint_path: str | os.PathLike | None = None) -> str | None:
    """Slim's order for the checkpoint a run starts from.

    1. The newest checkpoint in `train_dir` (a training run resumes; `checkpoint_path`
       is ignored).
    2. `checkpoint_path` if it is a checkpoint (prefix or V1 file).
    3. The newest checkpoint in the folder `checkpoint_path`.
    4. None.
    """
    if train_dir and os.path.isdir(train_dir):
        found = _newest_in_folder(os.fspath(train_dir))
        if found:
            return found
    if checkpoint_path:
        path = os.fspath(checkpoint_path)
        if os.path.isdir(path):
            return _newest_in_folder(path)
        if _is_checkpoint(path):
            return path
        if path.endswith(".index") and _is_v2_prefix(path[: -len(".index")]):
            return path[: -len(".index")]
    return None
