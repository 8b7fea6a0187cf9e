"""`keras.callbacks.BackupAndRestore` for one or several workers.

A killed worker resumes where the job was, not only at the last slim checkpoint: the
backup (model and optimizer state, step included) is written every `save_freq` steps,
and restored when `kslim train` starts again with the same `train_dir`.

Keras's callback lets every worker write the same files; here only the chief writes
into `train_dir/backup` (which must be on storage every worker reads, as slim's
train_dir was) and every worker restores from the chief's backup, so all replicas start
again from the same state. The other workers still go through the save, into a scratch
folder they delete: reading the metric variables for it is a collective operation every
worker must join (a save on the chief alone fails with "Collective ops is aborted"). Two generations are kept (`double_checkpoint`), so a
worker killed while writing leaves the previous backup readable.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import keras

__all__ = ["WorkerBackup"]


class WorkerBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` where the chief writes and every worker restores.

    Args:
        backup_dir: folder of the backup (deleted when training completes).
        save_freq: steps between backups.
        is_chief: whether this process writes the backup.

    Example:
        >>> backup = WorkerBackup("/shared/train/backup", 50, is_chief=True)
        >>> backup.restore_now(model)    # before fit, to know the step
        >>> model.fit(ds, callbacks=[backup, ...])
    """

    def __init__(self, backup_dir: str | os.PathLike, save_freq: int = 50,
                 is_chief: bool = True):
        super().__init__(os.fspath(backup_dir), save_freq=int(save_freq),
                         double_checkpoint=True, delete_checkpoint=True)
        self.is_chief = is_chief
        self._restored = False

    def restore_now(self, model) -> bool:
        """Restores the backup into `model` (and its optimizer) before `fit`.

        Returns:
            True when a backup was found and restored.
        """
        self.set_model(model)
        found = os.path.exists(self._weights_path)
        super().on_train_begin()
        model._initial_epoch = None  # kslim passes initial_epoch from the global step
        self._restored = True
        return found

    def on_train_begin(self, logs=None):
        if not self._restored:
            super().on_train_begin(logs)
            self.model._initial_epoch = None
            self._restored = True

    _PATHS = ("backup_dir", "_weights_path", "_training_metadata_path", "_prev_weights_path",
              "_prev_training_metadata_path")

    def _save_model(self):
        if self.is_chief:
            super()._save_model()
            return
        saved = {name: getattr(self, name) for name in self._PATHS}
        scratch = tempfile.mkdtemp(prefix="kslim-worker-backup-")
        try:
            for name, path in saved.items():
                setattr(self, name, scratch if name == "backup_dir"
                        else os.path.join(scratch, os.path.basename(path)))
            super()._save_model()
        finally:
            for name, path in saved.items():
                setattr(self, name, path)
            shutil.rmtree(scratch, ignore_errors=True)

    def on_train_end(self, logs=None):
        if self.is_chief:
            super().on_train_end(logs)
