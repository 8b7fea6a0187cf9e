"""Where kslim keeps data it creates: `$KSLIM_HOME`, default `~/.keras/models/kslim`."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Callable

__all__ = ["generated_dataset", "kslim_home"]


def kslim_home() -> str:
    """The kslim cache folder; reads `KSLIM_HOME` on every call, so tests can redirect it."""
    home = os.environ.get("KSLIM_HOME")
    if home:
        return os.path.expanduser(home)
    return os.path.join(os.path.expanduser("~"), ".keras", "models", "kslim")


def _cached_version(dataset_dir: str) -> int | None:
    from kslim.data import _specs

    try:
        with open(os.path.join(dataset_dir, _specs.INFO_FILENAME)) as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def generated_dataset(name: str, version: int, write: Callable[[str], object]) -> str:
    """`$KSLIM_HOME/datasets/<name>`, written by `write(folder)` on first use (the
    embedded sets: `digits`, `shapes`); `write` records `version` in the dataset's info
    file. Written into a temporary folder beside the final one and renamed into place,
    so an interrupted first run never leaves a half-written dataset; a cache of another
    version is replaced the same way, and a concurrent writer's equal result is kept."""
    final = os.path.join(kslim_home(), "datasets", name)
    if _cached_version(final) == version:
        return final
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}-", dir=parent)
    try:
        write(tmp)
        if os.path.isdir(final):  # another version: move it aside, then swap
            stale = tempfile.mkdtemp(prefix=f".{name}-old-", dir=parent)
            os.rename(final, os.path.join(stale, name))
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if _cached_version(final) != version:  # not a concurrent writer's result
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return final
