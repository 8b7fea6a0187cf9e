"""TFRecord and label-file helpers in slim's formats.

Mirrors research/slim `datasets/dataset_utils.py`: `image_to_tfexample` (the five keys
every slim converter writes), `labels.txt` as `id:name` lines. Adds what slim lacks: files
are written under a temporary name and renamed when complete, and a TFRecord file's
framing can be checked without reading its payload.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import uuid

import tensorflow as tf

__all__ = [
    "LABELS_FILENAME",
    "image_to_tfexample",
    "write_label_file",
    "read_label_file",
    "has_labels",
    "atomic_tfrecord_writer",
    "atomic_write_text",
    "scan_tfrecord",
]

LABELS_FILENAME = "labels.txt"


def op_message(error: tf.errors.OpError) -> str:
    """The useful line of a TF runtime error, without its function and op wrappers."""
    message = re.sub(r"\{\{[^}]*\}\}\s*", "", error.message.strip().splitlines()[0])
    return re.sub(r"\s*\[Op:.*$", "", message).strip()


def int64_feature(values) -> tf.train.Feature:
    if not isinstance(values, (tuple, list)):
        values = [values]
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def bytes_feature(value) -> tf.train.Feature:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def float_feature(values) -> tf.train.Feature:
    if not isinstance(values, (tuple, list)):
        values = [values]
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def image_to_tfexample(
    image_data: bytes, image_format: str | bytes, height: int, width: int, class_id: int, **extra
) -> tf.train.Example:
    """A `tf.train.Example` with slim's five keys (plus any `extra` features).

    Args:
        image_data: the encoded image (or raw uint8 pixels for format 'raw').
        image_format: 'png', 'jpg', 'jpeg', 'raw', ...
        height: image height.
        width: image width.
        class_id: the label, stored as a one-element int64 list.
        **extra: more `{key: tf.train.Feature}` entries (ImageNet's synset, text, boxes).
    """
    feature = {
        "image/encoded": bytes_feature(image_data),
        "image/format": bytes_feature(image_format),
        "image/class/label": int64_feature(class_id),
        "image/height": int64_feature(height),
        "image/width": int64_feature(width),
    }
    feature.update(extra)
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _temporary_name(path: str) -> str:
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.tmp-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_tfrecord_writer(path: str):
    """A `tf.io.TFRecordWriter` whose file appears under `path` only once complete."""
    tmp = _temporary_name(path)
    writer = tf.io.TFRecordWriter(tmp)
    try:
        yield writer
        writer.close()
        tf.io.gfile.rename(tmp, path, overwrite=True)
    except BaseException:
        writer.close()
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename."""
    tmp = _temporary_name(path)
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def write_label_file(labels_to_names: dict[int, str], dataset_dir: str, filename: str = LABELS_FILENAME) -> str:
    """Writes slim's `labels.txt`: one `id:name` line per class, in id order."""
    path = os.path.join(dataset_dir, filename)
    atomic_write_text(path, "".join(f"{i}:{labels_to_names[i]}\n" for i in sorted(labels_to_names)))
    return path


def has_labels(dataset_dir: str, filename: str = LABELS_FILENAME) -> bool:
    return tf.io.gfile.exists(os.path.join(dataset_dir, filename))


def read_label_file(dataset_dir: str, filename: str = LABELS_FILENAME) -> dict[int, str]:
    """Reads slim's `labels.txt` (`id:name` per line; names may contain ':').

    Raises:
        ValueError: for a line that is not `id:name`, naming the file and the line.
    """
    path = os.path.join(dataset_dir, filename)
    with tf.io.gfile.GFile(path, "rb") as f:
        lines = f.read().decode("utf-8").splitlines()
    labels = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        index, sep, name = line.partition(":")
        if not sep or not index.strip().lstrip("-").isdigit():
            raise ValueError(f"{path}, line {number}: expected 'id:name', got {line!r}")
        labels[int(index)] = name
    return labels


def scan_tfrecord(path: str) -> tuple[int, str | None]:
    """Walks a TFRecord file's record headers (no payload read, no CRC check).

    Returns:
        `(num_records, problem)`: the number of complete records, and None or a sentence
        saying where the file is truncated or its framing is broken.
    """
    size = tf.io.gfile.stat(path).length
    opener = open if "://" not in path else (lambda p, m: tf.io.gfile.GFile(p, m))
    count, offset = 0, 0
    with opener(path, "rb") as f:
        while offset < size:
            header = f.read(12)
            if len(header) < 12:
                return count, (
                    f"record {count} at byte {offset} has a cut-off header (the file ends at "
                    f"byte {size})"
                )
            (length,) = struct.unpack("<Q", header[:8])
            end = offset + 12 + length + 4
            if end > size:
                return count, (
                    f"record {count} at byte {offset} declares {length} bytes but the file "
                    f"ends at byte {size}"
                )
            f.seek(end)
            offset = end
            count += 1
    return count, None
