"""Slim checkpoint compatibility: read, map, restore and write slim checkpoints.

    from kslim import compat
    compat.slim_variables(model)            # {slim name: keras variable}
    compat.list_checkpoint(path)            # [(name, shape, dtype)], V1 and V2
    report = compat.restore(model, path, exclude=["vgg_16/fc8"])
    compat.resolve_checkpoint(train_dir, checkpoint_path)
    compat.save_slim_checkpoint(model, "train_dir/model.ckpt", global_step=100)
    slim = compat.import_tf_slim()          # the original tf_slim, on TF 2.16+

Attributes load on first use, so importing this package (as `kslim --help` does) does not
import TensorFlow.
"""

from __future__ import annotations

from kslim._lazy import lazy_attributes

_HOMES = {
    "CheckpointError": "_checkpoint",
    "checkpoint_prefix": "_checkpoint",
    "list_checkpoint": "_checkpoint",
    "resolve_checkpoint": "_checkpoint",
    "RestoreReport": "_restore",
    "is_auxiliary": "_restore",
    "restore": "_restore",
    "slim_variables": "_restore",
    "save_slim_checkpoint": "_save",
    "write_checkpoint": "_save",
    "import_tf_slim": "_tf_slim",
}
__all__ = sorted(_HOMES)

__getattr__, __dir__ = lazy_attributes(__name__, _HOMES)
