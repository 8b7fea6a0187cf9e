"""TFRecord and label-file helpers in slim's formats.

Mirrors research/slim `datasets/dataset_utils.py`: `image_to_tfexample` (the five keys
every slim converter writes), `labels.txt` as `id:name` lines. Adds what slim lacks: files
are written under a temporary name and renamed when complete, and a TFRecord file's
framing can be checked without reading its payload, and a file with a corrupt record
can be read past it where the framing allows (`walk_records`).

A TFRecord is `length (uint64) | masked crc32c of length | data | masked crc32c of data`.
A record whose data fails its CRC still has a trustworthy length, so the next record is
at a known offset; a record whose length fails its CRC leaves nothing to go on, and the
rest of the file is lost (and reported as such).
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
    "walk_records",
    "first_corrupt_record",
    "count_records",
    "data_loss_message",
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
    """Walks a TFRecord file's record headers (no payload read; the length CRCs checked).

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
            if masked_crc32c(header[:8]) != struct.unpack("<I", header[8:])[0]:
                return count, (
                    f"record {count} at byte {offset} has a corrupt length field (it fails its "
                    f"CRC): the {size - offset} bytes from there to the end cannot be read"
                )
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


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C (Castagnoli) of `data`; used on 8-byte length fields
    only, where pure Python is fast enough."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def walk_records(path: str):
    """Reads a TFRecord file record by record, past corrupt records where it can.

    Yields:
        `(index, offset, record, problem)`: `record` is the payload bytes and `problem`
        None for a good record; for a bad one `record` is None and `problem` says what is
        wrong. After a record whose length field is corrupt (or that runs past the end of
        the file) the rest of the file cannot be framed: that is said in its problem, and
        the walk ends there.
    """
    from tensorflow.python.lib.io import tf_record

    size = tf.io.gfile.stat(path).length
    reader = tf_record.tf_record_random_reader(path)
    with open(path, "rb") as raw:
        index, offset = 0, 0
        while offset < size:
            try:
                record, following = reader.read(offset)
                yield index, offset, record, None
                index, offset = index + 1, following
                continue
            except tf.errors.OpError:
                pass
            raw.seek(offset)
            header = raw.read(12)
            rest = f"the remaining {size - offset} bytes (byte {offset} to the end of the file) are skipped"
            if len(header) < 12:
                yield index, offset, None, f"the file ends inside this record's header: {rest}"
                return
            (length,) = struct.unpack("<Q", header[:8])
            if masked_crc32c(header[:8]) != struct.unpack("<I", header[8:])[0]:
                yield index, offset, None, (
                    f"its length field is corrupt (it fails its CRC), so the records after it "
                    f"cannot be found: {rest}"
                )
                return
            following = offset + 12 + length + 4
            if following > size:
                yield index, offset, None, (
                    f"it declares {length} bytes but the file ends at byte {size} (a cut-off file): {rest}"
                )
                return
            yield index, offset, None, "its data fails its CRC check (a corrupt record)"
            index, offset = index + 1, following


def first_corrupt_record(path: str) -> tuple[int, int, str] | None:
    """`(record index, byte offset, problem)` of the first bad record of a TFRecord
    file, or None when every record reads (CRCs checked)."""
    for index, offset, _, problem in walk_records(path):
        if problem is not None:
            return index, offset, problem
    return None


def count_records(path: str) -> int:
    """Reads every record of a TFRecord file with TensorFlow (CRCs checked), fast.

    Raises:
        ValueError: naming the file, the record, its byte offset and the problem.
    """
    try:
        return int(tf.data.TFRecordDataset(path).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
    except tf.errors.DataLossError as e:
        raise ValueError(data_loss_message([path], e)) from None


def data_loss_message(files, error: tf.errors.OpError) -> str:
    """A sentence naming the file and record behind a `DataLossError` that TensorFlow's
    reader raised without them (it names only a byte offset)."""
    for path in files:
        found = first_corrupt_record(path)
        if found:
            index, offset, problem = found
            return (f"{path}, record {index}: cannot be read (the record at byte {offset}: "
                    f"{problem}; TensorFlow: {op_message(error)}). Convert or copy the file "
                    "again, or read the split with on_error='skip' to skip bad records.")
    return (f"a TFRecord file of {', '.join(files[:3])}{', ...' if len(files) > 3 else ''} is "
            f"corrupt ({op_message(error)}), but reading them again finds no bad record (a "
            "disk or network fault?); read the split again")
