"""Slim checkpoint compatibility: read, map, restore and write slim checkpoints.

    from kslim import compat
    compat.slim_variables(model)            # {slim name: keras variable}
    compat.list_checkpoint(path)            # [(name, shape, dtype)], V1 and V2
    report = compat.restore(model, path, exclude=["vgg_16/fc8"])
    compat.resolve_checkpoint(train_dir, checkpoint_path)
    compat.save_slim_checkpoint(model, "train_dir/model.ckpt", global_step=100)
    slim = compat.import_tf_slim()          # the original tf_slim, on TF 2.16+
"""

from kslim.compat._checkpoint import (CheckpointError, checkpoint_prefix, list_checkpoint,
                                      resolve_checkpoint)
from kslim.compat._restore import RestoreReport, is_auxiliary, restore, slim_variables
from kslim.compat._save import save_slim_checkpoint, write_checkpoint
from kslim.compat._tf_slim import import_tf_slim

__all__ = [
    "CheckpointError",
    "RestoreReport",
    "checkpoint_prefix",
    "import_tf_slim",
    "is_auxiliary",
    "list_checkpoint",
    "resolve_checkpoint",
    "restore",
    "save_slim_checkpoint",
    "slim_variables",
    "write_checkpoint",
]
