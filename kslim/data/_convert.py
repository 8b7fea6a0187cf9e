"""Converters that write slim's TFRecord layouts from raw sources.

Mirrors research/slim `datasets/download_and_convert_{mnist,cifar10,flowers}.py` and
`datasets/build_imagenet_data.py`: the same file names, shard counts, feature keys,
`labels.txt`, split rules and shuffle seeds. Differences, all deliberate:

* A dataset is built in a hidden staging folder inside `dataset_dir` and published
  (renamed into place) only once every split is written; the old dataset's files that
  the new one does not replace are then removed. A conversion that fails leaves the
  folder exactly as it was. A folder that already holds the dataset is refused unless
  `overwrite=True` (`--overwrite`), as slim's converters refuse to redo a dataset.
* Sources are read where they are (idx files gzipped or not, `mnist.npz`, the CIFAR-10
  archive or its folder, an image folder or its `.tgz`); downloading is optional
  (`download=True`, through `keras.utils.get_file`).
* Folder listings are sorted before slim's seeded shuffle, so a conversion is repeatable
  on any file system (slim shuffles `os.listdir` order, which is not).
* The MNIST label names are spelled right ('six'; slim's converter writes 'size').
* A `kslim_dataset.json` beside the records holds the split sizes actually written.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import glob
import gzip
import json
import math
import os
import pickle
import random
import shutil
import struct
import tarfile
import tempfile
import time

import numpy as np
import tensorflow as tf

from kslim.data import _records, _specs
from kslim.data._home import kslim_home
from kslim.data._records import bytes_feature, float_feature, image_to_tfexample, int64_feature

__all__ = [
    "convert",
    "convert_mnist",
    "convert_cifar10",
    "convert_flowers",
    "convert_image_folder",
    "convert_imagenet",
    "write_image_arrays",
    "CONVERTERS",
]

# Where `download=True` fetches each source from.
DOWNLOADS = {
    "mnist": ("mnist.npz", "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"),
    "cifar10": ("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    "flowers": ("flower_photos.tgz", "http://download.tensorflow.org/example_images/flower_photos.tgz"),
}

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")

_MNIST_FILES = {  # split -> (images, labels) base names, as yann.lecun.com serves them
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}


def _download(name: str, origin: str | None = None) -> str:
    import keras

    fname, default_origin = DOWNLOADS[name]
    return keras.utils.get_file(
        fname=fname, origin=origin or default_origin, cache_dir=kslim_home(), cache_subdir="downloads"
    )


def _write_info(dataset_dir: str, spec: _specs.DatasetSpec) -> None:
    path = os.path.join(dataset_dir, _specs.INFO_FILENAME)
    _records.atomic_write_text(path, json.dumps(spec.to_json(), indent=1) + "\n")


def _image_format(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"GIF8":
        return "gif"
    if data[:2] == b"BM":
        return "bmp"
    return "unknown"


def _image_shape(data: bytes, where: str, channels: int = 0) -> tuple[int, int, int]:
    """Decodes `data` to check it; returns (height, width, channels). Names `where` on error."""
    try:
        shape = tf.io.decode_image(data, channels=channels, expand_animations=False).shape
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
        raise ValueError(
            f"{where} is not a readable image ({_records.op_message(e)}); remove it "
            "from the source folder and convert again"
        ) from None
    return int(shape[0]), int(shape[1]), int(shape[2])


def _encode_pngs(images: np.ndarray):
    """PNG-encodes `[N, H, W, C]` uint8 images in parallel, yielding bytes in order."""
    dataset = tf.data.Dataset.from_tensor_slices(images).map(
        tf.io.encode_png, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    for encoded in dataset.as_numpy_iterator():
        yield encoded


def write_image_arrays(path: str, images: np.ndarray, labels: np.ndarray) -> int:
    """Writes `[N, H, W, C]` uint8 images and labels as slim's PNG examples to `path`.

    This is what slim's MNIST and CIFAR-10 converters write: `image/format` 'png', the PNG
    bytes, height, width, and the label.

    Returns:
        The number of records written.
    """
    images = np.asarray(images, np.uint8)
    if images.ndim == 3:
        images = images[..., None]
    labels = np.asarray(labels).reshape(-1)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels for {path}")
    height, width = images.shape[1:3]
    with _records.atomic_tfrecord_writer(path) as writer:
        for encoded, label in zip(_encode_pngs(images), labels):
            writer.write(image_to_tfexample(encoded, "png", height, width, int(label)).SerializeToString())
    return len(images)


_STAGING = ".kslim-staging-"
_STALE_STAGING_SECONDS = 24 * 3600


def _dataset_files(dataset_dir: str, file_pattern: str) -> list[str]:
    """The files of a dataset of `file_pattern` in `dataset_dir` (every split), plus its
    `labels.txt` and `kslim_dataset.json`."""
    records = glob.glob(os.path.join(glob.escape(dataset_dir), file_pattern.replace("%s", "*")))
    extras = [os.path.join(dataset_dir, n) for n in (_specs.INFO_FILENAME, _records.LABELS_FILENAME)]
    return sorted(p for p in records if os.path.isfile(p)) + [p for p in extras if os.path.isfile(p)]


@contextlib.contextmanager
def _staged(dataset_dir: str, name: str, file_pattern: str, overwrite: bool):
    """Yields a staging folder to build the dataset in; publishes it into `dataset_dir`
    when the block succeeds, and removes it (leaving `dataset_dir` untouched) when not.

    Raises:
        FileExistsError: `dataset_dir` already holds the dataset and not `overwrite`.
    """
    old_records = [p for p in _dataset_files(dataset_dir, file_pattern)
                   if os.path.basename(p) not in (_specs.INFO_FILENAME, _records.LABELS_FILENAME)]
    old_info = os.path.isfile(os.path.join(dataset_dir, _specs.INFO_FILENAME))
    if (old_records or old_info) and not overwrite:
        shown = ", ".join(os.path.basename(p) for p in old_records[:4]) or _specs.INFO_FILENAME
        more = f" and {len(old_records) - 4} more" if len(old_records) > 4 else ""
        raise FileExistsError(
            f"{dataset_dir} already holds a dataset ({shown}{more}); nothing was changed. Pass "
            f"--overwrite (overwrite=True) to replace the {name} files there, or choose another "
            "--dataset_dir."
        )
    os.makedirs(dataset_dir, exist_ok=True)
    now = time.time()
    for stale in glob.glob(os.path.join(glob.escape(dataset_dir), _STAGING + "*")):
        if now - os.path.getmtime(stale) > _STALE_STAGING_SECONDS:  # a killed conversion's
            shutil.rmtree(stale, ignore_errors=True)
    staging = tempfile.mkdtemp(prefix=_STAGING, dir=dataset_dir)
    try:
        yield staging
        new = sorted(n for n in os.listdir(staging)
                     if os.path.isfile(os.path.join(staging, n)) and not n.startswith("."))
        # Records first, then the stale old shards go, the label and info files last.
        last = (_records.LABELS_FILENAME, _specs.INFO_FILENAME)
        for n in sorted(new, key=lambda n: (n in last, last.index(n) if n in last else 0, n)):
            if n in last:
                for stale in old_records:
                    if os.path.basename(stale) not in new and os.path.exists(stale):
                        os.remove(stale)
            os.replace(os.path.join(staging, n), os.path.join(dataset_dir, n))
        for stale in old_records:
            if os.path.basename(stale) not in new and os.path.exists(stale):
                os.remove(stale)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _finish(dataset_dir: str, spec: _specs.DatasetSpec, sizes: dict, labels_to_names: dict, **changes) -> str:
    """Writes `labels.txt` and `kslim_dataset.json` (the spec with the sizes written)."""
    spec = dataclasses.replace(spec, splits=tuple(sizes.items()), **changes)
    _records.write_label_file(labels_to_names, dataset_dir)
    _write_info(dataset_dir, spec)
    return dataset_dir


# -- MNIST ----------------------------------------------------------------------------------


def _open_maybe_gzip(path: str):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _read_idx(path: str, magic: int, item_shape: tuple[int, ...]) -> np.ndarray:
    with _open_maybe_gzip(path) as f:
        data = f.read()
    ndim = 1 + len(item_shape)
    header = 4 + 4 * ndim
    if len(data) < header or struct.unpack(">i", data[:4])[0] != magic:
        raise ValueError(f"{path} is not an MNIST idx file (expected magic number {magic})")
    dims = struct.unpack(">" + "i" * ndim, data[4:header])
    if tuple(dims[1:]) != item_shape:
        raise ValueError(f"{path} holds items of shape {dims[1:]}, expected {item_shape}")
    count = dims[0] * math.prod(item_shape)
    if len(data) - header < count:
        raise ValueError(
            f"{path} is truncated: its header promises {dims[0]} items but the file holds "
            f"{(len(data) - header) // max(1, math.prod(item_shape))}; download it again"
        )
    return np.frombuffer(data, np.uint8, count, header).reshape((dims[0],) + item_shape)


def _find_idx(folder: str, base: str) -> str:
    for name in (base, base + ".gz", base.replace("-idx", ".idx"), base.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"{folder} has no {base}(.gz); put the four MNIST idx files there (from "
        "http://yann.lecun.com/exdb/mnist/ or a mirror), pass --source mnist.npz, or use --download"
    )


def _load_mnist(source: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    if os.path.isfile(source):
        with np.load(source) as npz:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(npz.files)
            if missing:
                raise ValueError(f"{source} lacks {sorted(missing)}; expected Keras' mnist.npz")
            return {"train": (npz["x_train"], npz["y_train"]), "test": (npz["x_test"], npz["y_test"])}
    if not os.path.isdir(source):
        raise FileNotFoundError(f"MNIST source {source} does not exist")
    arrays = {}
    for split, (images_name, labels_name) in _MNIST_FILES.items():
        images = _read_idx(_find_idx(source, images_name), 2051, (28, 28))
        labels_path = _find_idx(source, labels_name)
        labels = _read_idx(labels_path, 2049, ())
        if len(images) != len(labels):
            raise ValueError(f"{labels_path} has {len(labels)} labels for {len(images)} images")
        arrays[split] = (images, labels)
    return arrays


def convert_mnist(
    dataset_dir: str, source: str | None = None, download: bool = False, origin: str | None = None, overwrite: bool = False
) -> str:
    """Writes slim's MNIST layout: `mnist_{train,test}.tfrecord` and `labels.txt`.

    Args:
        dataset_dir: output folder (created).
        source: a folder with the four idx files (gzipped or not), or Keras' `mnist.npz`.
            Default: `dataset_dir` itself (where slim's script downloads them).
        download: fetch `mnist.npz` first (`keras.utils.get_file`, cached in $KSLIM_HOME).
        origin: download URL override.
        overwrite: replace a dataset already in `dataset_dir` (default: refuse).

    Returns:
        `dataset_dir`.
    """
    if download:
        source = _download("mnist", origin)
    arrays = _load_mnist(source or dataset_dir)
    spec = _specs.DATASETS["mnist"]
    with _staged(dataset_dir, "mnist", spec.file_pattern, overwrite) as out:
        sizes = {}
        for split, (images, labels) in arrays.items():
            sizes[split] = write_image_arrays(os.path.join(out, spec.pattern_for(split)), images, labels)
        _finish(out, spec, sizes, dict(enumerate(spec.default_labels)))
    return dataset_dir


# -- CIFAR-10 -------------------------------------------------------------------------------


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10 batches: dicts of numpy arrays and lists, and nothing else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch")
        return super().find_class(module, name)


def _load_cifar_batch(fileobj, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _ArrayUnpickler(fileobj, encoding="bytes").load()
        data = np.asarray(batch[b"data"], np.uint8)
        labels = np.asarray(batch[b"labels"], np.int64)
    except (pickle.UnpicklingError, KeyError, EOFError, TypeError, ValueError) as e:
        raise ValueError(f"{where} is not a CIFAR-10 python batch ({e})") from None
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _load_cifar10(source: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    arrays = {}
    if os.path.isfile(source):
        with tarfile.open(source) as archive:
            members = {os.path.basename(m.name): m for m in archive.getmembers() if m.isfile()}
            for split, names in _CIFAR10_FILES.items():
                parts = []
                for name in names:
                    if name not in members:
                        raise ValueError(f"{source} has no {name}; expected cifar-10-python.tar.gz")
                    parts.append(_load_cifar_batch(archive.extractfile(members[name]), f"{source}:{name}"))
                arrays[split] = tuple(np.concatenate(p) for p in zip(*parts))
        return arrays
    folder = source
    if os.path.isdir(os.path.join(source, "cifar-10-batches-py")):
        folder = os.path.join(source, "cifar-10-batches-py")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"CIFAR-10 source {source} does not exist")
    for split, names in _CIFAR10_FILES.items():
        parts = []
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"{folder} has no {name}; pass cifar-10-python.tar.gz or its extracted "
                    "cifar-10-batches-py folder as --source, or use --download"
                )
            with open(path, "rb") as f:
                parts.append(_load_cifar_batch(f, path))
        arrays[split] = tuple(np.concatenate(p) for p in zip(*parts))
    return arrays


def convert_cifar10(
    dataset_dir: str, source: str | None = None, download: bool = False, origin: str | None = None, overwrite: bool = False
) -> str:
    """Writes slim's CIFAR-10 layout: `cifar10_{train,test}.tfrecord` and `labels.txt`.

    Args:
        dataset_dir: output folder (created).
        source: `cifar-10-python.tar.gz` (read in place) or its extracted
            `cifar-10-batches-py` folder. Default: `dataset_dir`.
        download: fetch the archive first.
        origin: download URL override.
        overwrite: replace a dataset already in `dataset_dir` (default: refuse).

    Returns:
        `dataset_dir`.
    """
    if download:
        source = _download("cifar10", origin)
    arrays = _load_cifar10(source or dataset_dir)
    spec = _specs.DATASETS["cifar10"]
    with _staged(dataset_dir, "cifar10", spec.file_pattern, overwrite) as out:
        sizes = {}
        for split, (images, labels) in arrays.items():
            sizes[split] = write_image_arrays(os.path.join(out, spec.pattern_for(split)), images, labels)
        _finish(out, spec, sizes, dict(enumerate(spec.default_labels)))
    return dataset_dir


# -- image folders (flowers and custom sets) ------------------------------------------------


def _safe_extract(archive_path: str, destination: str) -> None:
    """Extracts a tar archive, refusing absolute paths, `..`, links and device files."""
    with tarfile.open(archive_path) as archive:
        if hasattr(tarfile, "data_filter"):
            try:
                archive.extractall(destination, filter="data")
            except tarfile.FilterError as e:
                raise ValueError(f"{archive_path}: refusing to extract {e}") from None
            return
        for member in archive.getmembers():
            parts = member.name.replace("\\", "/").split("/")
            if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                raise ValueError(f"{archive_path}: refusing to extract {member.name!r}")
        archive.extractall(destination)


class _ImageSource:
    """Class sub-folders of images (in a folder, or a tar archive extracted to a temporary
    folder), listed in sorted order."""

    def __init__(self, source: str, scratch: str):
        self.source = source
        self._tmp = None
        if os.path.isfile(source):
            os.makedirs(scratch, exist_ok=True)
            self._tmp = tempfile.mkdtemp(prefix=".extract-", dir=scratch)
            try:
                _safe_extract(source, self._tmp)
            except BaseException:
                self.close()
                raise
            self.root = self._tmp
        elif os.path.isdir(source):
            self.root = source
        else:
            raise FileNotFoundError(f"Image source {source} does not exist")
        paths = sorted(
            os.path.relpath(os.path.join(top, name), self.root).replace(os.sep, "/")
            for top, _, names in os.walk(self.root)
            for name in names
        )
        images = [p for p in paths if p.lower().endswith(IMAGE_EXTENSIONS)]
        # Descend through single wrapping folders (flower_photos/) to the class level.
        prefix = ""
        while images:
            rests = [p[len(prefix) :] for p in images]
            heads = {r.split("/")[0] for r in rests}
            if len(heads) == 1 and all(r.count("/") >= 2 for r in rests):
                prefix += heads.pop() + "/"
            else:
                break
        self.files = []  # (path relative to root, class name)
        for path in images:
            rest = path[len(prefix) :]
            if rest.count("/") == 1:
                self.files.append((path, rest.split("/")[0]))
        self.class_names = sorted({c for _, c in self.files})
        if not self.class_names:
            self.close()
            raise ValueError(
                f"{source} has no class sub-folders with images ({', '.join(IMAGE_EXTENSIONS)}); "
                "expected SOURCE/<class name>/<image files>"
            )

    def read(self, path: str) -> bytes:
        with open(os.path.join(self.root, path), "rb") as f:
            return f.read()

    def where(self, path: str) -> str:
        return f"{self.source}:{path}" if self._tmp is not None else os.path.join(self.source, path)

    def close(self):
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _shard_ranges(count: int, num_shards: int) -> list[tuple[int, int]]:
    """slim's flowers sharding: ceil(count / num_shards) records per shard, the last short."""
    per_shard = int(math.ceil(count / float(num_shards)))
    return [(min(i * per_shard, count), min((i + 1) * per_shard, count)) for i in range(num_shards)]


def _write_shards(paths, items, make_example, num_threads: int = 8) -> None:
    """Writes `items[start:end]` to each `(path, (start, end))`; examples built in threads."""
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        for path, (start, end) in paths:
            with _records.atomic_tfrecord_writer(path) as writer:
                for example in pool.map(make_example, items[start:end]):
                    writer.write(example.SerializeToString())


def convert_image_folder(
    source: str,
    dataset_dir: str,
    name: str = "image_folder",
    validation_size: int | float = 0.1,
    num_shards: int = 5,
    seed: int = 0,
    num_threads: int = 8,
    overwrite: bool = False,
) -> str:
    """Writes a folder of class sub-folders in slim's flowers layout.

    Files `{name}_{train,validation}_{shard:05d}-of-{num_shards:05d}.tfrecord`, with
    `labels.txt` (class ids by sorted folder name) and `kslim_dataset.json`, so that
    `get_split(name, split, dataset_dir)` reads it. Image bytes are stored as they are
    (JPEG, PNG, GIF or BMP); each image is decoded once to check it and record its size.

    Args:
        source: folder `SOURCE/<class>/<images>` (or one wrapping folder above that, like
            `flower_photos/`), or a `.tar`/`.tgz` archive of one, read in place.
        dataset_dir: output folder (created).
        name: dataset name and file prefix.
        validation_size: images in the validation split: a count, or a fraction in (0, 1).
        num_shards: files per split.
        seed: seed of slim's `random.shuffle` before the split.
        num_threads: threads reading and checking images.
        overwrite: replace a dataset already in `dataset_dir` (default: refuse).

    Returns:
        `dataset_dir`.

    Raises:
        ValueError: no class folders with images, a bad validation size, or an image that
            does not decode (named); `dataset_dir` is then left as it was.
        FileExistsError: `dataset_dir` holds the dataset and not `overwrite`.
    """
    file_pattern = f"{name}_%s_*.tfrecord"
    if not overwrite:  # refuse before reading (or extracting) the source
        with _staged(dataset_dir, name, file_pattern, overwrite):
            pass
    images = _ImageSource(source, scratch=dataset_dir)
    try:
        files = list(images.files)
        if isinstance(validation_size, float) and 0 < validation_size < 1:
            validation_size = int(round(validation_size * len(files)))
        if not 0 <= int(validation_size) <= len(files):
            raise ValueError(f"validation_size {validation_size} is not in [0, {len(files)}] for {source}")
        random.Random(seed).shuffle(files)
        splits = {"train": files[int(validation_size) :], "validation": files[: int(validation_size)]}
        class_ids = {c: i for i, c in enumerate(images.class_names)}

        def make_example(item):
            path, class_name = item
            data = images.read(path)
            height, width, _ = _image_shape(data, images.where(path), channels=3)
            return image_to_tfexample(data, _image_format(data), height, width, class_ids[class_name])

        pattern = f"{name}_%s_%05d-of-%05d.tfrecord"
        base = _specs.DATASETS.get(name, _specs.DATASETS["image_folder"])
        with _staged(dataset_dir, name, file_pattern, overwrite) as out:
            for split, items in splits.items():
                paths = [
                    (os.path.join(out, pattern % (split, i, num_shards)), r)
                    for i, r in enumerate(_shard_ranges(len(items), num_shards))
                ]
                _write_shards(paths, items, make_example, num_threads)
            _finish(
                out,
                base,
                {split: len(items) for split, items in splits.items()},
                dict(enumerate(images.class_names)),
                name=name,
                file_pattern=file_pattern,
                num_classes=len(images.class_names),
                default_labels=None,
            )
    finally:
        images.close()
    return dataset_dir


def convert_flowers(
    dataset_dir: str,
    source: str | None = None,
    validation_size: int = 350,
    num_shards: int = 5,
    seed: int = 0,
    download: bool = False,
    origin: str | None = None,
    overwrite: bool = False,
) -> str:
    """Writes slim's flowers layout: `flowers_{split}_%05d-of-00005.tfrecord`, `labels.txt`.

    Args:
        dataset_dir: output folder.
        source: `flower_photos/` or `flower_photos.tgz`. Default: `dataset_dir/flower_photos`
            (where slim's script unpacks it).
        validation_size: slim's `_NUM_VALIDATION`, 350.
        num_shards: slim's `_NUM_SHARDS`, 5.
        seed: slim's `_RANDOM_SEED`, 0.
        download: fetch `flower_photos.tgz` first.
        origin: download URL override.
        overwrite: replace a dataset already in `dataset_dir` (default: refuse).
    """
    if download:
        source = _download("flowers", origin)
    source = source or os.path.join(dataset_dir, "flower_photos")
    return convert_image_folder(source, dataset_dir, "flowers", validation_size, num_shards, seed,
                                overwrite=overwrite)


# -- ImageNet -------------------------------------------------------------------------------


def _read_lines(path: str) -> list[str]:
    with tf.io.gfile.GFile(path, "r") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def _imagenet_layout(count: int, num_shards: int, num_threads: int) -> list[tuple[int, int]]:
    """build_imagenet_data.py's sharding: thread ranges, then shards within each range."""
    num_threads = math.gcd(num_shards, num_threads) or 1
    spacing = np.linspace(0, count, num_threads + 1).astype(int)
    ranges = []
    for start, end in zip(spacing[:-1], spacing[1:]):
        bounds = np.linspace(start, end, num_shards // num_threads + 1).astype(int)
        ranges.extend(zip(bounds[:-1].tolist(), bounds[1:].tolist()))
    return ranges


def convert_imagenet(
    source: str,
    dataset_dir: str,
    labels_file: str | None = None,
    metadata_file: str | None = None,
    bounding_box_file: str | None = None,
    train_shards: int = 1024,
    validation_shards: int = 128,
    num_threads: int = 8,
    seed: int = 12345,
    overwrite: bool = False,
) -> str:
    """Writes `build_imagenet_data.py`'s layout: `train-%05d-of-01024`, `validation-...`.

    Args:
        source: a folder with `train/` and/or `validation/`, each `<synset>/<images>`
            (validation images already sorted into synset folders, as slim requires).
        dataset_dir: output folder.
        labels_file: the synsets, one per line (`imagenet_lsvrc_2015_synsets.txt`);
            default: the sorted synset folders found. Labels are 1..N in this order; 0 is
            the background class.
        metadata_file: `synset<TAB>human readable text` lines (`imagenet_metadata.txt`);
            default: the synset itself is the text.
        bounding_box_file: `file,xmin,ymin,xmax,ymax` lines (process_bounding_boxes.py).
        train_shards: files for the train split.
        validation_shards: files for the validation split.
        num_threads: slim's thread count, which also sets how records fall into shards.
        seed: seed of slim's shuffle (12345).
        overwrite: replace a dataset already in `dataset_dir` (default: refuse).

    Returns:
        `dataset_dir`.
    """
    split_dirs = {s: os.path.join(source, s) for s in ("train", "validation") if os.path.isdir(os.path.join(source, s))}
    if not split_dirs:
        raise FileNotFoundError(f"{source} has neither train/ nor validation/ folders of <synset>/<images>")
    if labels_file:
        synsets = [line.strip() for line in _read_lines(labels_file)]
    else:
        synsets = sorted({d for path in split_dirs.values() for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))})
    if not synsets:
        raise ValueError(f"{source} has no synset folders")
    humans = {}
    if metadata_file:
        for line in _read_lines(metadata_file):
            synset, _, human = line.strip().partition("\t")
            humans[synset] = human
    boxes: dict[str, list[list[float]]] = {}
    if bounding_box_file:
        for line in _read_lines(bounding_box_file):
            parts = line.strip().split(",")
            if len(parts) != 5:
                raise ValueError(f"{bounding_box_file}: expected 'file,xmin,ymin,xmax,ymax', got {line!r}")
            boxes.setdefault(parts[0], []).append([float(v) for v in parts[1:]])

    def make_example(item):
        path, label, synset = item
        with open(path, "rb") as f:
            data = f.read()
        height, width, channels = _image_shape(data, path)
        if _image_format(data) != "jpg" or channels not in (1, 3):
            # slim re-encodes its one PNG and 22 CMYK JPEGs as RGB JPEG, quality 100.
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            data = tf.io.encode_jpeg(image, format="rgb", quality=100).numpy()
        bbox = boxes.get(os.path.basename(path), [])
        xmin, ymin, xmax, ymax = (list(c) for c in zip(*bbox)) if bbox else ([], [], [], [])
        return image_to_tfexample(
            data,
            "JPEG",
            height,
            width,
            label,
            **{
                "image/colorspace": bytes_feature("RGB"),
                "image/channels": int64_feature(3),
                "image/class/synset": bytes_feature(synset),
                "image/class/text": bytes_feature(humans.get(synset, synset)),
                "image/object/bbox/xmin": float_feature(xmin),
                "image/object/bbox/xmax": float_feature(xmax),
                "image/object/bbox/ymin": float_feature(ymin),
                "image/object/bbox/ymax": float_feature(ymax),
                "image/object/bbox/label": int64_feature([label] * len(xmin)),
                "image/filename": bytes_feature(os.path.basename(path)),
            },
        )

    spec = _specs.DATASETS["imagenet"]
    with _staged(dataset_dir, "imagenet", spec.file_pattern, overwrite) as out:
        sizes = _write_imagenet_splits(out, split_dirs, synsets, make_example, train_shards,
                                       validation_shards, num_threads, seed)
        labels_to_names = {0: "background", **{i: humans.get(s, s) for i, s in enumerate(synsets, 1)}}
        _finish(out, spec, sizes, labels_to_names, num_classes=len(synsets) + 1)
    return dataset_dir


def _write_imagenet_splits(dataset_dir, split_dirs, synsets, make_example, train_shards, validation_shards,
                           num_threads, seed) -> dict:
    sizes = {}
    for split, folder in split_dirs.items():
        items = []
        for label, synset in enumerate(synsets, 1):
            synset_dir = os.path.join(folder, synset)
            if os.path.isdir(synset_dir):
                names = sorted(n for n in os.listdir(synset_dir) if n.lower().endswith(IMAGE_EXTENSIONS))
                items.extend((os.path.join(synset_dir, n), label, synset) for n in names)
        order = list(range(len(items)))
        random.Random(seed).shuffle(order)
        items = [items[i] for i in order]
        num_shards = train_shards if split == "train" else validation_shards
        ranges = _imagenet_layout(len(items), num_shards, num_threads)
        paths = [
            (os.path.join(dataset_dir, "%s-%05d-of-%05d" % (split, i, num_shards)), r) for i, r in enumerate(ranges)
        ]
        _write_shards(paths, items, make_example, num_threads)
        sizes[split] = len(items)
    return sizes


# -- dispatch -------------------------------------------------------------------------------


def _convert_digits(dataset_dir: str, overwrite: bool = False, **_) -> str:
    from kslim.data._digits import write_digits

    with _staged(dataset_dir, "digits", _specs.DATASETS["digits"].file_pattern, overwrite) as out:
        write_digits(out)
    return dataset_dir


def _convert_shapes(dataset_dir: str, overwrite: bool = False, **_) -> str:
    from kslim.data._shapes import write_shapes

    with _staged(dataset_dir, "shapes", _specs.DATASETS["shapes"].file_pattern, overwrite) as out:
        write_shapes(out)
    return dataset_dir


def _convert_pascalvoc(name: str):
    def convert_voc(source: str, dataset_dir: str, **options) -> str:
        from kslim.data._voc import convert_pascalvoc

        return convert_pascalvoc(source, dataset_dir, name, **options)

    convert_voc.__name__ = f"convert_{name}"
    return convert_voc


CONVERTERS = {
    "mnist": convert_mnist,
    "cifar10": convert_cifar10,
    "flowers": convert_flowers,
    "imagenet": convert_imagenet,
    "image_folder": convert_image_folder,
    "digits": _convert_digits,
    "pascalvoc_2007": _convert_pascalvoc("pascalvoc_2007"),
    "pascalvoc_2012": _convert_pascalvoc("pascalvoc_2012"),
    "shapes": _convert_shapes,
}


def convert(dataset_name: str, dataset_dir: str, source: str | None = None, **options) -> str:
    """Converts `source` into slim's layout for `dataset_name` (`kslim data convert`).

    Args:
        dataset_name: mnist, cifar10, flowers, imagenet, image_folder, digits,
            pascalvoc_2007, pascalvoc_2012 (from a VOCdevkit folder), shapes.
        dataset_dir: output folder.
        source: the raw data (see each `convert_*` function); required for imagenet and
            image_folder.
        **options: passed to the converter (`validation_size`, `num_shards`, `seed`,
            `download`, `name`, `train_shards`, `overwrite`, ...); None values are
            dropped.

    Returns:
        `dataset_dir`.
    """
    options = {k: v for k, v in options.items() if v is not None}
    if dataset_name not in CONVERTERS:
        raise ValueError(f"No converter for {dataset_name!r}; choose one of: {', '.join(CONVERTERS)}")
    if dataset_name in ("imagenet", "image_folder"):
        if not source:
            raise ValueError(f"--source is required for {dataset_name}: the folder of class sub-folders")
        return CONVERTERS[dataset_name](source, dataset_dir, **options)
    if dataset_name.startswith("pascalvoc_"):
        if not source:
            raise ValueError(f"--source is required for {dataset_name}: the VOCdevkit/VOC20xx folder")
        return CONVERTERS[dataset_name](source, dataset_dir, **options)
    if dataset_name in ("digits", "shapes"):
        return CONVERTERS[dataset_name](dataset_dir, overwrite=options.get("overwrite", False))
    return CONVERTERS[dataset_name](dataset_dir, source=source, **options)
