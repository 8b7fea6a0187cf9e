"""The TF-Slim model zoo: `weights="slim"`, a safe download cache, offline use, a mirror.

The table of published checkpoints is data (`zoo.json` beside this file): one
`ZooEntry` per archive of the research/slim README and the MobileNet v1/v2/v3/EdgeTPU
READMEs (float checkpoints), with the net and constructor options it needs, its class
count, and the preprocessing, image size and accuracy it was published with.

    model = kslim.models.vgg16(weights="slim")                      # the net's default entry
    model = kslim.models.create_model("mobilenet_v2",
                                      weights="slim:mobilenet_v2_0.5_160")
    kslim.models.get_spec("mobilenet_v1_050").zoo                   # a net's entries
    kslim.models.zoo.fetch("inception_v3")                          # pre-fetch; `kslim zoo fetch`

Where things go (`$KSLIM_HOME`, read on every call, default `~/.keras/models/kslim`):
- `zoo/<tag>/`: an installed checkpoint (only its files) and `kslim_zoo.json`, which
  records where it came from. The folder appears by one atomic rename after the
  archive was checked, so a folder that exists is complete: a cache hit reads no
  network.
- `zoo/downloads/<archive>`: drop an archive here by hand (offline machines); the next
  use checks and installs it.
- `zoo/.partial-*`: work folders of downloads in progress, removed when they end.

Checks before anything is installed: the archive is a complete tar stream (gzip,
bzip2, xz or plain; a truncated download fails here), no member has an absolute path,
a `..` component, a link that leaves the archive folder or is a device; the
checkpoint is found and every tensor reads; its variables fit the net
(`kslim.compat.restore(dry_run=True)`); and, when pinned, the archive's sha256
matches. Pins come from the `sha256=` argument or `KSLIM_ZOO_SHA256`
(`tag=hex,other_tag=hex`; an archive file name works as the key too).

Environment:
- `KSLIM_OFFLINE=1`: never use the network; a missing checkpoint fails at once with
  the URL and the path to put the archive at (or use `kslim zoo import ARCHIVE`).
- `KSLIM_ZOO_MIRROR`: a base URL (`https://host/slim/`) or a local folder; archives
  are fetched from there by file name instead of from the URL in the table.
"""

from __future__ import annotations

import bz2
import contextlib
import dataclasses
import datetime
import difflib
import fnmatch
import functools
import gzip
import hashlib
import json
import logging
import lzma
import math
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import time
import types
import urllib.parse
import urllib.request
import uuid
import warnings
import zlib
from pathlib import PureWindowsPath
from typing import Any, Callable, Iterable, Mapping

from kslim.data._home import kslim_home

__all__ = [
    "UnsafeArchiveError",
    "ZooEntry",
    "ZooError",
    "cache_dir",
    "cached_checkpoint",
    "drop_path",
    "entries",
    "entries_for",
    "fetch",
    "get",
    "import_archive",
    "load_weights",
    "lookup",
]

log = logging.getLogger("kslim")

ENV_OFFLINE = "KSLIM_OFFLINE"
ENV_MIRROR = "KSLIM_ZOO_MIRROR"
ENV_SHA256 = "KSLIM_ZOO_SHA256"
MARKER = "kslim_zoo.json"  # written last into a staged install; its folder is complete
_TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zoo.json")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")
_DATA_FILE = re.compile(r"\.data-\d{5}-of-\d{5}$")
_STALE_SECONDS = 24 * 3600
# What a zoo row's checkpoint files can weigh: its net's float32 variables times this
# (the weights, their moving averages and up to two optimizer slots each) plus a slack
# for index files and small nets; all checkpoint members of one archive together at
# most twice that. Checked while the archive streams, so a hostile archive cannot fill
# the disk with "checkpoint" members.
_SIZE_FACTOR = 4
_SIZE_SLACK = 16 << 20


class ZooError(ValueError):
    """A zoo checkpoint cannot be found, downloaded, checked or installed."""


class UnsafeArchiveError(ZooError):
    """An archive member would land outside the cache (absolute path, `..`, a link
    leaving the archive folder) or is a device file."""


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One published slim checkpoint archive.

    Attributes:
        tag: the name used in `weights="slim:<tag>"` (the archive's file name and its
            stem are accepted too).
        net: the registered kslim (nets_factory) name it is a checkpoint of.
        url: where the zoo publishes the archive.
        member: the checkpoint prefix inside the archive (None: the archive's only
            checkpoint).
        num_classes: classes of the checkpoint's logits (1001: class 0 is slim's
            background class).
        image_size: the input size the accuracy was measured at (the default build).
        kwargs: constructor options the checkpoint needs (`depth_multiplier`, ...).
        preprocessing: the preprocessing_factory family it was evaluated with
            (`inception`: [-1, 1]; `vgg`: RGB mean subtraction).
        top1, top5: published single-crop ImageNet accuracy in percent (None: not
            published).
        default: the entry `weights="slim"` picks for `net`.
        source: the README that lists it.
        notes: anything a user should know about the row.
        quantized: a quantization-aware (`_quant`, uint8) checkpoint: float weights
            plus contrib.quantize's fake-quantization min/max variables, which a float
            net does not use (the restore report lists them as unused).
    """

    tag: str
    net: str
    url: str
    member: str | None
    num_classes: int
    image_size: int
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    preprocessing: str = "inception"
    top1: float | None = None
    top5: float | None = None
    default: bool = False
    source: str = ""
    notes: str = ""
    quantized: bool = False

    def __post_init__(self):
        object.__setattr__(self, "kwargs", types.MappingProxyType(dict(self.kwargs)))

    @property
    def archive(self) -> str:
        """The archive's file name (what a mirror serves)."""
        return posixpath.basename(urllib.parse.urlsplit(self.url).path)

    @property
    def archive_stem(self) -> str:
        """The archive's file name without its `.tar.gz`/`.tgz`/... suffix."""
        name = self.archive
        for suffix in _ARCHIVE_SUFFIXES:
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return name

    def describe(self) -> str:
        """One line: tag, net, options, classes, size, preprocessing, accuracy."""
        options = ", ".join(f"{k}={v}" for k, v in self.kwargs.items())
        net = f"{self.net}({options})" if options else self.net
        accuracy = _accuracy(self)
        return (f"{self.tag}: {net}, {self.num_classes} classes, {self.image_size}px, "
                f"{self.preprocessing} preprocessing, top-1/top-5 {accuracy}")


def _accuracy(entry: ZooEntry) -> str:
    def pct(value):
        return "-" if value is None else f"{value:.1f}"

    return f"{pct(entry.top1)}/{pct(entry.top5)}"


# -- the table ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _table() -> tuple[ZooEntry, ...]:
    with open(_TABLE, encoding="utf-8") as f:
        rows = json.load(f)["entries"]
    fields = {f.name for f in dataclasses.fields(ZooEntry)}
    table = tuple(ZooEntry(**{k: v for k, v in row.items() if k in fields}) for row in rows)
    tags = [e.tag for e in table]
    if len(set(tags)) != len(tags):
        raise RuntimeError(f"{_TABLE}: duplicate tags")
    defaults = [e.net for e in table if e.default]
    if len(set(defaults)) != len(defaults):
        raise RuntimeError(f"{_TABLE}: a net has two default entries")
    return table


def entries(pattern: str = "*") -> list[ZooEntry]:
    """Zoo entries whose tag or net matches the fnmatch `pattern`, in table order."""
    return [e for e in _table()
            if fnmatch.fnmatchcase(e.tag, pattern) or fnmatch.fnmatchcase(e.net, pattern)]


def entries_for(net: str) -> tuple[ZooEntry, ...]:
    """The zoo entries of a registered net name (what `get_spec(net).zoo` shows)."""
    return tuple(e for e in _table() if e.net == net)


def get(name: str) -> ZooEntry:
    """The entry with this tag, archive file name or archive stem; a net name gives
    the net's default entry.

    Raises:
        ZooError: no such entry (close tags are suggested).
    """
    for entry in _table():
        if name in (entry.tag, entry.archive, entry.archive_stem):
            return entry
    for entry in _table():
        if entry.default and entry.net == name:
            return entry
    known = [e.tag for e in _table()]
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ZooError(f"no slim zoo checkpoint named {name!r}{hint} (`kslim zoo list` shows "
                   f"all {len(known)})")


def lookup(net: str, weights: str) -> ZooEntry:
    """The entry `weights` names for `net`: `"slim"` is the net's default entry,
    `"slim:<tag>"` a given one (which must be a checkpoint of `net`).

    Raises:
        ZooError: the net has no zoo checkpoint, the tag is unknown, or it belongs to
            another net.
    """
    if weights == "slim":
        for entry in entries_for(net):
            if entry.default:
                return entry
        nets = sorted({e.net for e in _table()})
        raise ZooError(f"slim published no zoo checkpoint for {net!r}; nets with one: "
                       f"{', '.join(nets)}. Pass weights=None, or a checkpoint path.")
    if not weights.startswith("slim:") or not weights[len("slim:"):]:
        raise ZooError(f"weights={weights!r}: use 'slim' (the net's default zoo "
                       "checkpoint) or 'slim:<tag>' (`kslim zoo list` shows the tags)")
    entry = get(weights[len("slim:"):])
    if entry.net != net:
        own = ", ".join(e.tag for e in entries_for(net)) or "none"
        raise ZooError(f"zoo checkpoint {entry.tag!r} is a checkpoint of {entry.net!r}, not "
                       f"{net!r}: use kslim.models.create_model({entry.net!r}, "
                       f"weights='slim:{entry.tag}') ({net}'s own: {own})")
    return entry


# -- where things are ---------------------------------------------------------------------


def cache_dir() -> str:
    """`$KSLIM_HOME/zoo` (read at call time)."""
    return os.path.join(kslim_home(), "zoo")


def drop_path(entry: ZooEntry | str) -> str:
    """Where to put a hand-downloaded archive for kslim to install on next use."""
    entry = _entry(entry)
    return os.path.join(cache_dir(), "downloads", entry.archive)


def _entry(entry: ZooEntry | str) -> ZooEntry:
    return entry if isinstance(entry, ZooEntry) else get(entry)


def _offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on")


def _pinned_sha256(entry: ZooEntry, sha256: str | None) -> str | None:
    """The pin for `entry`: the argument, else its `KSLIM_ZOO_SHA256` item."""
    if sha256 is None:
        for item in re.split(r"[,\s]+", os.environ.get(ENV_SHA256, "").strip()):
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep:
                raise ZooError(f"{ENV_SHA256} takes 'tag=sha256hex' items separated by "
                               f"commas; got {item!r}")
            if key in (entry.tag, entry.archive, entry.archive_stem):
                sha256 = value
                break
    if sha256 is None:
        return None
    pin = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", pin):
        raise ZooError(f"the sha256 pin for {entry.tag} must be 64 hex digits, got "
                       f"{sha256!r}")
    return pin


def _read_marker(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cached_checkpoint(entry: ZooEntry | str, sha256: str | None = None) -> str | None:
    """The installed checkpoint prefix of `entry`, or None when it is not installed.

    Args:
        entry: a `ZooEntry` or a name `get` accepts.
        sha256: a pin (default: `KSLIM_ZOO_SHA256`'s); an installed checkpoint that
            came from another archive is refused.

    Raises:
        ZooError: installed from an archive whose sha256 differs from the pin.
    """
    entry = _entry(entry)
    folder = os.path.join(cache_dir(), entry.tag)
    marker = _read_marker(folder)
    if not marker or marker.get("tag") != entry.tag:
        return None
    for rel, size in marker.get("files", {}).items():
        path = os.path.join(folder, *rel.split("/"))
        if not os.path.isfile(path) or os.path.getsize(path) != size:
            log.warning("zoo cache %s is damaged (%s is missing or has the wrong size); "
                        "it will be installed again", folder, rel)
            return None
    pin = _pinned_sha256(entry, sha256)
    if pin and marker.get("archive_sha256") != pin:
        raise ZooError(f"the cached {entry.tag} in {folder} was installed from an archive "
                       f"with sha256 {marker.get('archive_sha256')}, but the pin is {pin}. "
                       f"Delete {folder} to fetch it again, or correct the pin.")
    return os.path.join(folder, *marker["checkpoint"].split("/"))


# -- fetching -------------------------------------------------------------------------------


def fetch(entry: ZooEntry | str, *, sha256: str | None = None,
          check: Callable[[str], Any] | None = None) -> str:
    """Makes sure `entry`'s checkpoint is installed and returns its prefix.

    Order: the cache; an archive dropped at `drop_path(entry)`; the mirror
    (`KSLIM_ZOO_MIRROR`); the table's URL (not with `KSLIM_OFFLINE=1`). Downloads use
    `keras.utils.get_file` (with its progress bar) into a private work folder.

    Args:
        entry: a `ZooEntry`, tag, archive name, or net name (its default entry).
        sha256: pin the archive's sha256 (default: from `KSLIM_ZOO_SHA256`).
        check: `fn(prefix)` raising when the staged checkpoint does not fit; the
            default dry-runs `kslim.compat.restore` into the entry's net.

    Returns:
        The checkpoint prefix in the cache.

    Raises:
        ZooError: offline with nothing cached, a download failure, or an archive that
            fails a check (nothing is installed then). UnsafeArchiveError for
            malicious archives.
    """
    entry = _entry(entry)
    pin = _pinned_sha256(entry, sha256)
    prefix = cached_checkpoint(entry, pin)
    if prefix:
        return prefix
    check = check or _net_check(entry)
    dropped = drop_path(entry)
    if os.path.isfile(dropped):
        log.info("installing %s from %s", entry.tag, dropped)
        prefix = _install(entry, dropped, pin, check, origin=dropped)
        os.remove(dropped)  # its checkpoint now lives in the cache
        return prefix
    mirror = os.environ.get(ENV_MIRROR, "").strip()
    folder = _mirror_folder(mirror)
    if folder is not None:
        path = os.path.join(folder, entry.archive)
        if not os.path.isfile(path):
            raise ZooError(f"{ENV_MIRROR}={mirror} has no {entry.archive} (looked for {path}); "
                           f"copy it there from {entry.url}")
        return _install(entry, path, pin, check, origin=path)
    url = f"{mirror.rstrip('/')}/{entry.archive}" if mirror else entry.url
    if _offline():
        raise ZooError(f"{ENV_OFFLINE} is set, so kslim will not download the zoo checkpoint "
                       f"{entry.tag} from {url}.\n{_manual_hint(entry, url)}")
    import keras

    with _staging() as staging:
        try:
            path = keras.utils.get_file(fname=entry.archive, origin=url, cache_dir=staging,
                                        cache_subdir="download")
        except Exception as e:  # get_file reports URL errors as a bare Exception
            raise ZooError(f"could not download the zoo checkpoint {entry.tag} from {url}: "
                           f"{e}\n{_manual_hint(entry, url)}") from None
        return _install(entry, path, pin, check, origin=url, staging=staging)


def _mirror_folder(mirror: str) -> str | None:
    """A mirror that is a folder (a path or a file:// URL), else None."""
    if not mirror:
        return None
    if mirror.startswith("file://"):
        return urllib.request.url2pathname(urllib.parse.urlsplit(mirror).path)
    if "://" in mirror:
        return None
    return os.path.expanduser(mirror)


def _manual_hint(entry: ZooEntry, url: str) -> str:
    return (f"Download {url} on a machine with network access, then either put the file at\n"
            f"  {drop_path(entry)}\n"
            f"(kslim installs it from there on next use) or run `kslim zoo import "
            f"{entry.archive}`. A mirror of the archives: {ENV_MIRROR}=<base URL or folder>.")


def archive_entry(path: str | os.PathLike, tag: str | None = None) -> ZooEntry:
    """The zoo row of an archive file: `tag`'s, else the row whose archive file name it
    has. Raises a ZooError for a missing file, a folder or an unknown name."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ZooError(f"{path!r} is a folder; give the archive file (e.g. "
                       "vgg_16_2016_08_28.tar.gz)")
    if not os.path.isfile(path):
        raise ZooError(f"no archive at {path!r}")
    if tag is not None:
        return get(tag)
    name = os.path.basename(path)
    matches = [e for e in _table() if name == e.archive]
    if not matches:
        raise ZooError(f"{name!r} is not the file name of a zoo archive; name the "
                       f"checkpoint with tag= (--tag), e.g. one of "
                       f"{', '.join(e.tag for e in _table()[:4])}, ...")
    return matches[0]


def import_archive(path: str | os.PathLike, tag: str | None = None, *,
                   sha256: str | None = None, force: bool = False) -> str:
    """Installs a zoo archive downloaded by hand, with every check of a download.

    Args:
        path: the archive (`vgg_16_2016_08_28.tar.gz`, `mobilenet_v1_1.0_224.tgz`, ...).
        tag: its zoo tag; default: found from the file name.
        sha256: pin the archive's sha256 (default: from `KSLIM_ZOO_SHA256`).
        force: replace an installed copy (default: keep it and return its prefix).

    Returns:
        The installed checkpoint prefix.
    """
    path = os.fspath(path)
    entry = archive_entry(path, tag)
    pin = _pinned_sha256(entry, sha256)
    if not force:
        prefix = cached_checkpoint(entry, pin)
        if prefix:
            installed = _read_marker(os.path.dirname(prefix)) or {}
            digest = _sha256_of(path)  # reads the file: an unreadable one fails here
            if digest != installed.get("archive_sha256"):
                raise ZooError(
                    f"{path} is not the archive {entry.tag} was installed from (sha256 "
                    f"{digest}, installed: {installed.get('archive_sha256')}); the installed "
                    f"copy at {prefix} is kept. Pass force=True (--force) to check this "
                    "archive and install it instead.")
            log.info("%s is already installed at %s (from this same archive)", entry.tag,
                     prefix)
            return prefix
    return _install(entry, path, pin, _net_check(entry), origin=os.path.abspath(path),
                    force=force)


# -- checking and installing ----------------------------------------------------------------


def _sha256_of(path: str) -> str:
    hasher = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                hasher.update(chunk)
    except OSError as e:
        raise ZooError(f"cannot read archive {path!r}: {e.strerror or e}") from None
    return hasher.hexdigest()


@functools.lru_cache(maxsize=None)
def _size_limit(tag: str) -> int:
    """The most bytes one checkpoint file of zoo row `tag` can hold (see _SIZE_FACTOR)."""
    model = _canonical_model(get(tag))
    floats = sum(math.prod(int(d) for d in v.shape) for v in model.weights)
    return 4 * floats * _SIZE_FACTOR + _SIZE_SLACK


@contextlib.contextmanager
def _staging():
    """A private work folder inside the cache (same file system: the final rename is
    atomic), removed however the block ends."""
    root = cache_dir()
    os.makedirs(root, exist_ok=True)
    _remove_stale(root)
    path = tempfile.mkdtemp(prefix=".partial-", dir=root)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _remove_stale(root: str) -> None:
    """Work folders a killed process left behind (older than a day)."""
    now = time.time()
    for name in os.listdir(root):
        if name.startswith((".partial-", ".old-")):
            path = os.path.join(root, name)
            try:
                if now - os.path.getmtime(path) > _STALE_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


def _install(entry: ZooEntry, archive: str, pin: str | None, check: Callable[[str], Any],
             origin: str, staging: str | None = None, force: bool = False) -> str:
    """Unpacks, checks and atomically installs `archive` as `entry`'s checkpoint."""
    with contextlib.ExitStack() as stack:
        if staging is None:
            staging = stack.enter_context(_staging())
        work = os.path.join(staging, "install")
        os.makedirs(work)
        digest, files = _unpack_checkpoint_files(archive, work, entry)
        if pin and digest != pin:
            raise ZooError(f"{archive} (from {origin}) has sha256 {digest}, but the pin for "
                           f"{entry.tag} is {pin}; the file was refused and nothing was "
                           "installed. Check the source of the archive, or the pin.")
        prefix_rel = _choose_checkpoint(entry, files, archive)
        keep = {f for f in files if f == prefix_rel or f == prefix_rel + ".index"
                or (f.startswith(prefix_rel + ".data-") and _DATA_FILE.search(f))}
        for rel in set(files) - keep:
            os.remove(os.path.join(work, *rel.split("/")))
        prefix = os.path.join(work, *prefix_rel.split("/"))
        _check_readable(prefix, entry, archive)
        try:
            check(prefix)
        except ZooError:
            raise
        except ValueError as e:  # CheckpointError and the registry's errors
            raise ZooError(f"the checkpoint {prefix_rel} in {archive} does not fit "
                           f"{entry.net}: {e}") from None
        marker = {
            "tag": entry.tag, "net": entry.net, "url": entry.url, "origin": origin,
            "archive": entry.archive, "archive_sha256": digest, "checkpoint": prefix_rel,
            "files": {rel: os.path.getsize(os.path.join(work, *rel.split("/")))
                      for rel in sorted(keep)},
            "installed": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
        }
        with open(os.path.join(work, MARKER), "w", encoding="utf-8") as f:
            json.dump(marker, f, indent=1)
        final = os.path.join(cache_dir(), entry.tag)
        _move_into_place(work, final, entry, force)
    prefix = cached_checkpoint(entry, pin)
    if prefix is None:
        raise ZooError(f"installing {entry.tag} into {final} failed: the folder is "
                       "incomplete after the move; delete it and try again")
    log.info("installed zoo checkpoint %s at %s", entry.tag, prefix)
    return prefix


def _move_into_place(work: str, final: str, entry: ZooEntry, force: bool) -> None:
    """One rename makes the checked folder the cache entry; an existing folder is
    replaced (when damaged or forced) or kept (another process installed it)."""
    for _ in range(3):
        if os.path.lexists(final):
            if not force and cached_checkpoint(entry) is not None:
                return  # installed meanwhile by another process
            aside = os.path.join(os.path.dirname(final),
                                 f".old-{entry.tag}-{uuid.uuid4().hex[:8]}")
            os.rename(final, aside)
            shutil.rmtree(aside, ignore_errors=True)
        try:
            os.rename(work, final)
            return
        except OSError:
            if not os.path.lexists(final):
                raise
    raise ZooError(f"could not install {entry.tag} into {final}: the folder keeps being "
                   "recreated by another process")


class _HashingReader:
    """A read-only file wrapper that feeds every byte read into a hash."""

    def __init__(self, raw, hasher):
        self._raw = raw
        self._hasher = hasher

    def read(self, size=-1):
        data = self._raw.read(size)
        self._hasher.update(data)
        return data

    def readable(self):
        return True


def _decompressed(raw, head: bytes):
    """A reader of the tar stream inside `raw`, by the file's first bytes `head`
    (gzip, bzip2, xz or none)."""
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if head.startswith(b"BZh"):
        return bz2.BZ2File(raw, mode="rb")
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw, mode="rb")
    return raw


def _safe_member(member: tarfile.TarInfo, archive: str) -> str:
    """The member's normalized relative path; refuses what would escape the folder."""
    name = member.name
    if not name or "\x00" in name:
        raise UnsafeArchiveError(f"{archive}: a member has an empty or invalid name")
    if (name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name)
            or PureWindowsPath(name).is_absolute()):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; the "
                                 "archive was refused and nothing was installed")
    if ".." in re.split(r"[/\\]", name):
        raise UnsafeArchiveError(f"{archive}: member {name!r} climbs out of the extraction "
                                 "folder with '..'; the archive was refused and nothing was "
                                 "installed")
    if member.issym() or member.islnk():
        target = member.linkname.replace("\\", "/")
        if not target or target.startswith("/") or re.match(r"^[A-Za-z]:", target):
            raise UnsafeArchiveError(f"{archive}: link {name!r} points to the absolute path "
                                     f"{member.linkname!r}; the archive was refused")
        base = posixpath.dirname(name.replace("\\", "/")) if member.issym() else ""
        resolved = posixpath.normpath(posixpath.join(base, target))
        if resolved == ".." or resolved.startswith("../"):
            raise UnsafeArchiveError(f"{archive}: link {name!r} -> {member.linkname!r} leaves "
                                     "the extraction folder; the archive was refused")
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a device or special file; "
                                 "the archive was refused")
    rel = posixpath.normpath(name.replace("\\", "/"))
    return "" if rel == "." else rel


def _is_checkpoint_file(rel: str, entry: ZooEntry) -> bool:
    if entry.member and rel == entry.member:
        return True
    base = posixpath.basename(rel)
    return bool(base.endswith((".index", ".ckpt")) or _DATA_FILE.search(base)
                or re.search(r"\.ckpt-\d+$", base))


def _unpack_checkpoint_files(archive: str, dest: str, entry: ZooEntry
                             ) -> tuple[str, list[str]]:
    """Reads the whole archive once: hashes it, refuses unsafe members, copies the
    checkpoint files (regular files only; links are never created) into `dest`, and
    reads the stream to its end so truncation and CRC errors surface.

    Returns:
        `(sha256 hex of the archive file, [relative paths written])`.
    """
    hasher = hashlib.sha256()
    written: list[str] = []
    limit = _size_limit(entry.tag)
    total = 0

    def too_big(rel: str, size: int, what: str) -> ZooError:
        return ZooError(
            f"{archive}: member {rel!r} {what} {size} bytes, more than a checkpoint of "
            f"{entry.net} can hold ({limit} bytes per file, {2 * limit} in all); the archive "
            "was refused and nothing was installed. Is it the archive of "
            f"{entry.tag} ({entry.url})?")

    try:
        with open(archive, "rb") as f:
            head = f.read(6)
            f.seek(0)
            raw = _HashingReader(f, hasher)
            stream = _decompressed(raw, head)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    rel = _safe_member(member, archive)
                    if not member.isfile() or not _is_checkpoint_file(rel, entry):
                        continue
                    if member.size > limit or total + member.size > 2 * limit:
                        raise too_big(rel, member.size, "declares")
                    target = os.path.join(dest, *rel.split("/"))
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    source = tar.extractfile(member)
                    copied = 0
                    with open(target, "wb") as out:
                        while chunk := source.read(1 << 20):
                            copied += len(chunk)
                            if copied > limit or total + copied > 2 * limit:
                                raise too_big(rel, copied, "streams more than")
                            out.write(chunk)
                    total += copied
                    if os.path.getsize(target) != member.size:
                        raise EOFError(f"member {rel!r} is shorter than its header says")
                    written.append(rel)
            # Read on to the end: gzip/bzip2/xz check their length and CRC there. (A plain
            # tar has no such check; a cut that loses checkpoint bytes still fails the
            # member-size and readability checks.)
            while stream.read(1 << 20):
                pass
            while raw.read(1 << 20):
                pass
    except (UnsafeArchiveError, ZooError):
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as e:
        raise ZooError(f"{archive} is not a complete tar archive ({e or type(e).__name__}): "
                       "the download was cut short or the file is corrupt; nothing was "
                       "installed. Fetch it again.") from None
    return hasher.hexdigest(), written


def _choose_checkpoint(entry: ZooEntry, files: Iterable[str], archive: str) -> str:
    """The checkpoint prefix to install: the table's member, else the archive's only
    checkpoint."""
    prefixes = set()
    for rel in files:
        if rel.endswith(".index"):
            prefixes.add(rel[: -len(".index")])
        elif not _DATA_FILE.search(rel):
            prefixes.add(rel)  # a V1 checkpoint file
    if entry.member in prefixes:
        return entry.member
    if entry.member:
        nested = [p for p in prefixes if p.endswith("/" + entry.member)]
        if len(nested) == 1:
            return nested[0]
    if len(prefixes) == 1:
        only = next(iter(prefixes))
        if entry.member:
            log.warning("%s holds no checkpoint %r; using its only checkpoint %r",
                        archive, entry.member, only)
        return only
    found = ", ".join(sorted(prefixes)) or "none"
    want = f"no checkpoint {entry.member!r}" if entry.member else "more than one checkpoint"
    raise ZooError(f"{archive} has {want} (checkpoints found: {found}); is it the archive of "
                   f"{entry.tag} ({entry.url})?")


def _check_readable(prefix: str, entry: ZooEntry, archive: str) -> None:
    """Opens the staged checkpoint and reads every tensor once."""
    from kslim.compat._checkpoint import CheckpointError, open_checkpoint, read_tensor

    try:
        _, reader = open_checkpoint(prefix)
        names = list(reader.get_variable_to_shape_map())
        if not names:
            raise CheckpointError("it holds no variables")
        for name in names:
            read_tensor(reader, prefix, name)
    except CheckpointError as e:
        raise ZooError(f"the checkpoint of {entry.tag} in {archive} cannot be read: {e}; "
                       "nothing was installed") from None


def _canonical_model(entry: ZooEntry):
    """The entry's net at the checkpoint's class count (no weights)."""
    from kslim.models._registry import create_model, get_spec

    try:
        get_spec(entry.net)
    except ValueError:
        raise ZooError(f"{entry.tag} is a checkpoint of {entry.net!r}, a net this kslim does "
                       "not provide (kslim.models.list_models())") from None
    return create_model(entry.net, num_classes=entry.num_classes,
                        input_shape=(entry.image_size, entry.image_size, 3),
                        **dict(entry.kwargs))


def _net_check(entry: ZooEntry) -> Callable[[str], Any]:
    def check(prefix: str):
        from kslim import compat

        return compat.restore(_canonical_model(entry), prefix, dry_run=True)

    return check


# -- loading into a model ------------------------------------------------------------------


def _restore_options(model, entry: ZooEntry, strict: bool) -> tuple[dict, list[str] | None]:
    """compat.restore options for `entry` into `model`, and the head scopes left out
    (None when the whole checkpoint applies)."""
    from kslim.models._registry import get_spec

    scope = getattr(model, "scope", "")
    options: dict[str, Any] = {}
    checkpoint_scope = get_spec(entry.net).scope
    if scope and checkpoint_scope and scope != checkpoint_scope:
        options["rename"] = {scope: checkpoint_scope}  # a model built with name=...
    heads = [f"{scope}/{h}" if scope else h for h in getattr(model, "head_scopes", ())]
    classes = getattr(model, "num_classes", 0) or 0
    if not classes:  # include_top=False / num_classes=0: features only, nothing to skip
        return options, None
    if classes == entry.num_classes:
        options["strict"] = strict
        return options, None
    if entry.num_classes == 1001 and classes == 1000:
        options.update(label_offset=1, strict=strict)
        return options, None
    if strict:
        raise ZooError(
            f"{model.name}: the zoo checkpoint {entry.tag} has {entry.num_classes} classes, "
            f"the model {classes}; with strict=True only {entry.num_classes}"
            + (" or 1000 (background dropped)" if entry.num_classes == 1001 else "")
            + " classes load. Pass strict=False to load everything but the classifier.")
    options["exclude"] = heads
    return options, heads


def _uses_moving_average(model, prefix: str, options: Mapping[str, Any]) -> bool:
    """True when the checkpoint carries `<name>/ExponentialMovingAverage` shadows for
    the model's variables (slim eval's --moving_average_decay weights)."""
    from kslim import compat

    names = {name for name, _, _ in compat.list_checkpoint(prefix)}
    shadows = {n[: -len("/ExponentialMovingAverage")] for n in names
               if n.endswith("/ExponentialMovingAverage")}
    if not shadows:
        return False
    rename = options.get("rename") or {}
    for slim_name in compat.slim_variables(model):
        for old, new in rename.items():
            if slim_name.startswith(old + "/"):
                slim_name = new + slim_name[len(old):]
        if slim_name in shadows:
            return True
    return False


def load_weights(model, entry: ZooEntry | str, *, strict: bool = False,
                 sha256: str | None = None):
    """Loads a zoo checkpoint into a built kslim model (fetching it when needed).

    Class counts: the checkpoint's count loads everything; 1000 classes from a
    1001-class checkpoint drops the background class (`label_offset=1`); any other
    count loads everything but the classifier heads, which keep their initial
    weights, and says so (a warning and the report). Checkpoints with
    moving-average shadows load the shadows (slim's evaluation weights).

    Args:
        model: a built `SlimModel` of `entry.net` (any name, any class count).
        entry: a `ZooEntry` or a name `get` accepts.
        strict: make a class-count difference (other than 1001 -> 1000) and any
            variable the model and checkpoint do not share an error.
        sha256: pin the archive's sha256 (default: from `KSLIM_ZOO_SHA256`).

    Returns:
        The `kslim.compat.RestoreReport`.
    """
    from kslim import compat

    entry = _entry(entry)
    options, skipped = _restore_options(model, entry, strict)

    def check(prefix: str):
        try:
            return compat.restore(model, prefix, dry_run=True, **options)
        except compat.CheckpointError:
            # The model (its options) may be what does not fit: keep an archive that
            # fits the entry's own net; the restore below then names the problem.
            return _net_check(entry)(prefix)

    prefix = fetch(entry, sha256=sha256, check=check)
    if _uses_moving_average(model, prefix, options):
        options["use_moving_average"] = True
    report = compat.restore(model, prefix, **options)
    if options.get("use_moving_average"):
        report.notes.append("read the ExponentialMovingAverage shadows of the checkpoint")
    if skipped:
        message = (f"{model.name}: loaded the zoo checkpoint {entry.tag} except its "
                   f"classifier ({', '.join(skipped)}): the checkpoint has "
                   f"{entry.num_classes} classes, the model {model.num_classes}, so the "
                   "classifier keeps its initial weights (train it; strict=True makes this "
                   f"an error).\n{report}")
        warnings.warn(message, UserWarning, stacklevel=3)
        log.warning("%s", message)
    elif entry.quantized and report.unused:  # fake-quant ranges: unused, and said so
        log.warning("%s (quantization-aware checkpoint: its fake-quantization min/max "
                    "variables are not used by the float net)\n%s", entry.tag, report)
    else:
        log.info("%s", report)
    return report
