"""Writing an export file safely: refuse to overwrite, and never leave a partial file."""

from __future__ import annotations

import os
import tempfile


def check_output(path: str | os.PathLike, overwrite: bool, flag: str = "--output_file") -> str:
    """The absolute path to write; raises when it exists and `overwrite` is False.

    Raises:
        ValueError: no path, the path is a folder, or it exists (without `overwrite`).
    """
    if not path:
        raise ValueError(f"give the file to write ({flag})")
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a folder; give a file name")
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"{flag} {path!r} exists; give another name or pass --overwrite "
                         "(overwrite=True) to replace it")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise ValueError(f"{flag} {path!r}: its folder {folder!r} does not exist")
    return path


def write_atomically(path: str, content: bytes) -> str:
    """Writes `content` to a temporary file beside `path`, then renames it over `path`,
    so a reader (or a crash) never sees half a file."""
    folder = os.path.dirname(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.",
                                         suffix=".partial", dir=folder)
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path
