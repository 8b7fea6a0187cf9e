"""Where kslim keeps data it creates: `$KSLIM_HOME`, default `~/.keras/models/kslim`."""

from __future__ import annotations

import os

__all__ = ["kslim_home"]


def kslim_home() -> str:
    """The kslim cache folder; reads `KSLIM_HOME` on every call, so tests can redirect it."""
    home = os.environ.get("KSLIM_HOME")
    if home:
        return os.path.expanduser(home)
    return os.path.join(os.path.expanduser("~"), ".keras", "models", "kslim")
