"""`get_split`: one split of a dataset, read from slim's TFRecords with `tf.data`.

Mirrors the `get_split` functions of research/slim `datasets/*.py` and the decoding of
tf_slim `data/tfexample_decoder.py` (`Image`, `Tensor`, `BoundingBox` handlers): 'raw'
images are uint8 pixels, anything else is decoded by its content (JPEG, PNG, GIF, BMP, WebP),
whatever `image/format` says.

Bad data gives an error that names the file: a missing split or folder when the split is
made, a truncated TFRecord file when reading starts (checked by walking the record
headers), and a record without a decodable image or label as it is read (an assertion
naming the file and the record number). `on_error="skip"` drops such records instead and
lists them in `Split.skipped`.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import threading

import numpy as np
import tensorflow as tf

from kslim.data import _records, _specs
from kslim.data._specs import DatasetSpec

__all__ = ["Split", "get_split", "SkippedRecord"]

# `offset`: the record's byte offset in the file, where known.
SkippedRecord = collections.namedtuple("SkippedRecord", ["file", "record", "reason", "offset"], defaults=(None,))

# Check the framing of every file before reading when the split is at most this big.
_AUTO_CHECK_BYTES = 2 << 30
# ... and read every record once to check its CRC (on_error="raise") when at most this
# big: about 250 MiB/s on one core, so at most a few seconds before reading starts.
_AUTO_CRC_BYTES = 512 << 20

# Leading bytes of the image formats tf.io.decode_image reads; "?" matches any byte.
_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",  # PNG
    b"GIF8",
    b"BM",  # BMP
    b"RIFF????WEBP",
    b"\xff\x0a",  # JPEG XL codestream
    b"\x00\x00\x00\x0cJXL \r\n\x87\n",  # JPEG XL container
)
_HEAD = max(len(m) for m in _MAGIC)
_MAGIC_MASK = np.array([[0 if c == ord("?") else 255 for c in m.ljust(_HEAD, b"?")] for m in _MAGIC], np.uint8)
_MAGIC_BYTES = np.array([list(m.ljust(_HEAD, b"?")) for m in _MAGIC], np.uint8) & _MAGIC_MASK

_CONVERT_HINT = "create it with `kslim data convert --dataset_name {name} --dataset_dir {dir} --source ...`"


def _is_raw(image_format: tf.Tensor) -> tf.Tensor:
    return tf.logical_or(tf.equal(image_format, "raw"), tf.equal(image_format, "RAW"))


def _has_image_header(encoded: tf.Tensor) -> tf.Tensor:
    head = tf.strings.substr(tf.strings.join([tf.strings.substr(encoded, 0, _HEAD), b"\0" * _HEAD]), 0, _HEAD)
    head = tf.io.decode_raw(head, tf.uint8)
    return tf.reduce_any(tf.reduce_all(tf.bitwise.bitwise_and(head, _MAGIC_MASK) == _MAGIC_BYTES, axis=1))


@dataclasses.dataclass(eq=False)
class Split:
    """One split of a dataset: its files, sizes, class names, and a `tf.data` reader.

    Made by `get_split`. `dataset()` yields `(image uint8 [H, W, C], label int64 [])` in
    file order; `kslim.data.input_pipeline` builds the training and eval pipelines on it.

    Example:
        >>> split = kslim.data.get_split("mnist", "train", "/data/mnist")
        >>> split.num_samples, split.num_classes, split.labels_to_names[3]
        (60000, 10, 'three')
        >>> for image, label in split.dataset().take(1): ...
    """

    spec: DatasetSpec
    split_name: str
    dataset_dir: str
    file_pattern: str
    files: tuple[str, ...]
    num_samples: int
    labels_to_names: dict[int, str] | None
    skipped: list[SkippedRecord] = dataclasses.field(default_factory=list, repr=False)

    def __post_init__(self):
        self._skip_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def num_classes(self) -> int:
        if self.spec.num_classes is not None:
            return self.spec.num_classes
        if self.labels_to_names:
            return max(self.labels_to_names) + 1
        raise ValueError(
            f"The number of classes of {self.dataset_dir} is unknown: it has no "
            f"{_records.LABELS_FILENAME} and no {_specs.INFO_FILENAME}"
        )

    # -- checks ---------------------------------------------------------------------------

    def check_files(self, on_error: str = "raise", crc: bool = True) -> None:
        """Walks every file's record headers; a truncated file is an error (or skipped).
        With `on_error="raise"` and `crc` every record's CRC is checked too (TensorFlow
        reads the files once), so a corrupt record is named with its file and byte offset
        before reading starts; with "skip" the reader itself skips and lists corrupt
        records.

        Raises:
            ValueError: naming the file and where it breaks, when `on_error="raise"`.
        """
        for path in self.files:
            count, problem = _records.scan_tfrecord(path)
            if problem is None:
                if on_error == "raise" and crc:
                    _records.count_records(path)  # CRCs: a corrupt record named, with its offset
                continue
            if on_error == "skip":
                self._note_skipped(path, count, f"truncated or corrupt TFRecord file: {problem}")
                continue
            raise ValueError(
                f"TFRecord file {path} is truncated or corrupt: {problem}. The {count} records "
                "before that point are intact. The file was cut short (an interrupted copy or "
                "conversion?): copy or convert it again, or read the split with "
                "on_error='skip' to use the intact records."
            )

    def verify(self) -> int:
        """Reads and decodes every record of the split, eagerly.

        Slow (it decodes everything); use it to find a bad file when a pipeline fails.

        Returns:
            The number of records read.

        Raises:
            ValueError: naming the first file (and record) that cannot be read or decoded.
        """
        self.check_files()
        total = 0
        for path in self.files:
            files = tf.data.Dataset.from_tensors(path)
            records = files.flat_map(self._read_file)
            decoded = records.map(lambda f, i, r: self.decode(f, i, r, on_error="raise"))
            index = 0
            try:
                for _ in decoded:
                    index += 1
            except tf.errors.OpError as e:
                raise ValueError(
                    f"{path}, record {index}: cannot be read or decoded ({_records.op_message(e)}). "
                    "Convert the dataset again, or read it with on_error='skip'."
                ) from None
            total += index
        return total

    def _note_skipped(self, path, record, reason, offset=None) -> None:
        entry = SkippedRecord(str(path), int(record), str(reason), offset)
        with self._skip_lock:
            # once per record, however many epochs (and whichever check found it)
            if all((s.file, s.record) != entry[:2] for s in self.skipped):
                self.skipped.append(entry)

    # -- reading --------------------------------------------------------------------------

    @staticmethod
    def _read_file(path: tf.Tensor) -> tf.data.Dataset:
        records = tf.data.TFRecordDataset(path).enumerate()
        return records.map(lambda index, record: (path, index, record))

    def _read_file_skipping(self, path: tf.Tensor) -> tf.data.Dataset:
        """`_read_file` that reads on past a corrupt record (`_records.walk_records`),
        listing it in `skipped`; TensorFlow's reader stops at the first one."""

        def walk(name: bytes):
            name = name.decode("utf-8")
            for index, offset, record, problem in _records.walk_records(name):
                if problem is None:
                    yield index, record
                else:
                    self._note_skipped(name, index, f"record at byte {offset}: {problem}", offset)

        signature = (tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.string))
        records = tf.data.Dataset.from_generator(walk, args=(path,), output_signature=signature)
        return records.map(lambda index, record: (path, index, record))

    def records(
        self,
        *,
        shuffle_files: bool = False,
        seed: int | None = None,
        input_context: tf.distribute.InputContext | None = None,
        cycle_length: int = 1,
        deterministic: bool | None = None,
        on_error: str = "raise",
        check_files: bool | str = "auto",
    ) -> tf.data.Dataset:
        """Serialized records as `(file, index_in_file, record)`, before decoding.

        Args:
            shuffle_files: shuffle the file order (each epoch).
            seed: seed of the file shuffle.
            input_context: `tf.distribute.InputContext`; this pipeline reads every
                `num_input_pipelines`-th file from `input_pipeline_id` (or every n-th record
                when there are fewer files than pipelines).
            cycle_length: files read at once, records interleaved one at a time
                (1: file order).
            deterministic: passed to `interleave`.
            on_error: "raise" or "skip" (see `dataset`).
            check_files: walk the record headers of every file first (with
                on_error="raise", also read every record once to check its CRC, so a
                corrupt record is named with its file and offset); "auto" walks the headers
                when the split's files total at most 2 GiB, and checks the CRCs when at
                most 512 MiB (beyond, `kslim train`/`eval` name a corrupt record's file
                and offset when TensorFlow's reader fails).

        Returns:
            A `tf.data.Dataset` of `(string, int64, string)` scalars.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if check_files == "auto":
            total = sum(tf.io.gfile.stat(f).length for f in self.files)
            check_files, crc = total <= _AUTO_CHECK_BYTES, total <= _AUTO_CRC_BYTES
        else:
            crc = True
        if check_files:
            self.check_files(on_error, crc=crc)
        files = tf.data.Dataset.from_tensor_slices(list(self.files))
        shard_records = None
        if input_context is not None and input_context.num_input_pipelines > 1:
            shards = (input_context.num_input_pipelines, input_context.input_pipeline_id)
            if len(self.files) >= shards[0]:
                files = files.shard(*shards)
            else:
                shard_records = shards
        if shuffle_files:
            files = files.shuffle(len(self.files), seed=seed, reshuffle_each_iteration=True)
        read = self._read_file
        if on_error == "skip":
            read = tf.autograph.experimental.do_not_convert(self._read_file_skipping)
        if cycle_length == 1:
            records = files.flat_map(read)
        else:
            records = files.interleave(
                read,
                cycle_length=min(cycle_length, len(self.files)),
                block_length=1,
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=deterministic,
            )
        if shard_records is not None:
            records = records.shard(*shard_records)
        return records

    def _features(self) -> dict:
        spec = self.spec
        features = {
            _specs.ENCODED: tf.io.FixedLenFeature((), tf.string, default_value=""),
            _specs.FORMAT: tf.io.FixedLenFeature((), tf.string, default_value=spec.default_format),
            # slim defaults a missing label to 0 (-1 for imagenet); kslim reads -1 and fails.
            _specs.LABEL: tf.io.FixedLenFeature(
                spec.label_shape, tf.int64, default_value=np.full(spec.label_shape, -1, np.int64)
            ),
            _specs.HEIGHT: tf.io.FixedLenFeature((), tf.int64, default_value=0),
            _specs.WIDTH: tf.io.FixedLenFeature((), tf.int64, default_value=0),
        }
        if spec.imagenet_items:
            features.update(
                {
                    "image/class/text": tf.io.FixedLenFeature((), tf.string, default_value=""),
                    "image/class/synset": tf.io.FixedLenFeature((), tf.string, default_value=""),
                    "image/object/bbox/xmin": tf.io.VarLenFeature(tf.float32),
                    "image/object/bbox/ymin": tf.io.VarLenFeature(tf.float32),
                    "image/object/bbox/xmax": tf.io.VarLenFeature(tf.float32),
                    "image/object/bbox/ymax": tf.io.VarLenFeature(tf.float32),
                    # slim's reader key; build_imagenet_data.py writes image/object/bbox/label.
                    "image/object/class/label": tf.io.VarLenFeature(tf.int64),
                    "image/object/bbox/label": tf.io.VarLenFeature(tf.int64),
                }
            )
        return features

    def parse(self, serialized: tf.Tensor) -> dict:
        """Parses one serialized `tf.train.Example` with this dataset's feature spec."""
        return tf.io.parse_single_example(serialized, self._features())

    def problem(self, features: dict) -> tf.Tensor:
        """A string tensor: empty when the parsed record looks decodable, else the reason."""
        spec = self.spec
        encoded = features[_specs.ENCODED]
        raw = _is_raw(features[_specs.FORMAT])
        if spec.image_shape is not None:
            raw_size = tf.constant(math.prod(spec.image_shape), tf.int32)
        else:
            raw_size = tf.cast(features[_specs.HEIGHT] * features[_specs.WIDTH] * spec.channels, tf.int32)
        image_ok = tf.where(
            raw, tf.equal(tf.strings.length(encoded), raw_size), _has_image_header(encoded)
        )
        label = tf.reshape(features[_specs.LABEL], [])
        reason = tf.where(
            tf.equal(tf.strings.length(encoded), 0),
            "it has no image/encoded bytes",
            tf.where(
                image_ok,
                "",
                tf.where(
                    raw,
                    "its raw image has the wrong number of bytes for its shape",
                    "its image/encoded bytes are not a JPEG, PNG, GIF, BMP or WebP image",
                ),
            ),
        )
        return tf.where(
            tf.logical_and(tf.equal(reason, ""), label < 0), "it has no image/class/label", reason
        )

    def decode_image(self, features: dict) -> tf.Tensor:
        """The uint8 `[H, W, C]` image of a parsed record (slim's `Image` handler)."""
        spec = self.spec
        encoded = features[_specs.ENCODED]
        if spec.image_shape is not None:
            raw_shape = tf.constant(spec.image_shape)
        else:
            raw_shape = tf.cast(
                tf.stack([features[_specs.HEIGHT], features[_specs.WIDTH], spec.channels]), tf.int32
            )
        image = tf.cond(
            _is_raw(features[_specs.FORMAT]),
            lambda: tf.reshape(tf.io.decode_raw(encoded, tf.uint8), raw_shape),
            lambda: tf.io.decode_image(encoded, channels=spec.channels, expand_animations=False),
        )
        if spec.image_shape is not None:
            image = tf.reshape(image, spec.image_shape)
        else:
            image.set_shape([None, None, spec.channels])
        return image

    def checks(self, path, index, features: dict) -> list:
        """Control dependencies that stop the pipeline, naming the file and the record,
        when `problem(features)` finds one."""
        problem = self.problem(features)
        message = tf.strings.join(
            [
                "kslim: ",
                path,
                ", record ",
                tf.strings.as_string(index),
                ": ",
                problem,
                ". Convert the dataset again, or drop such records with on_error=skip.",
            ]
        )
        return [tf.debugging.Assert(tf.equal(problem, ""), [message], summarize=1)]

    @staticmethod
    def is_jpeg(features: dict) -> tf.Tensor:
        """Whether a parsed record's image is JPEG bytes (not 'raw' pixels)."""
        encoded = features[_specs.ENCODED]
        return tf.logical_and(
            tf.logical_not(_is_raw(features[_specs.FORMAT])),
            tf.equal(tf.strings.substr(encoded, 0, 3), b"\xff\xd8\xff"),
        )

    @staticmethod
    def label(features: dict) -> tf.Tensor:
        """The int64 scalar label of a parsed record."""
        return tf.reshape(features[_specs.LABEL], [])

    def decode(self, path, index, serialized, on_error: str = "raise", as_dict: bool = False):
        """Parses and decodes one record; see `dataset` for the result."""
        features = self.parse(serialized)
        with tf.control_dependencies(self.checks(path, index, features) if on_error == "raise" else []):
            image = self.decode_image(features)
        label = self.label(features)
        if not as_dict:
            return image, label
        item = {
            "image": image,
            "label": label,
            "format": features[_specs.FORMAT],
            "height": features[_specs.HEIGHT],
            "width": features[_specs.WIDTH],
            "file": path,
            "record": index,
        }
        if self.spec.imagenet_items:
            sides = [
                tf.sparse.to_dense(features[f"image/object/bbox/{k}"]) for k in ("ymin", "xmin", "ymax", "xmax")
            ]
            class_label = tf.sparse.to_dense(features["image/object/class/label"])
            bbox_label = tf.sparse.to_dense(features["image/object/bbox/label"])
            item.update(
                {
                    "label_text": features["image/class/text"],
                    "synset": features["image/class/synset"],
                    "object/bbox": tf.stack(sides, axis=1),
                    "object/label": tf.cond(
                        tf.size(class_label) > 0, lambda: class_label, lambda: bbox_label
                    ),
                }
            )
        return item

    def skip_filter(self):
        """A `Dataset.filter` predicate over `(file, index, record)` that drops bad records.

        Dropped records are appended to `self.skipped`; the Python callback runs only for
        them, so good records stay in the TF runtime.
        """

        def note(path, index, reason):
            self._note_skipped(path.numpy().decode("utf-8"), index.numpy(), reason.numpy().decode("utf-8"))
            return False

        def keep(path, index, serialized):
            problem = self.problem(self.parse(serialized))
            return tf.cond(
                tf.equal(problem, ""),
                lambda: tf.constant(True),
                lambda: tf.py_function(note, [path, index, problem], tf.bool),
            )

        return keep

    def dataset(
        self,
        *,
        shuffle_files: bool = False,
        seed: int | None = None,
        input_context: tf.distribute.InputContext | None = None,
        cycle_length: int = 1,
        num_parallel_calls: int | None = tf.data.AUTOTUNE,
        deterministic: bool | None = None,
        on_error: str = "raise",
        as_dict: bool = False,
        check_files: bool | str = "auto",
        record_filter=None,
    ) -> tf.data.Dataset:
        """Decoded examples of the split, in file order unless shuffled.

        Args:
            shuffle_files: shuffle the file order (records stay in order within a file).
            seed: file-shuffle seed.
            input_context: shard across input pipelines (see `records`).
            cycle_length: files read at once (1 keeps file order).
            num_parallel_calls: parallel decoding.
            deterministic: keep element order under parallel decoding (tf.data's default
                when None: deterministic).
            on_error: "raise": a record with no decodable image or no label stops
                iteration with an error naming its file and number, and a truncated file
                is reported before reading (for splits up to 2 GiB, `check_files`).
                "skip": such records, records whose CRC fails (the file is read on past
                them; after a corrupt length field the rest of the file cannot be framed and
                is listed as skipped), and the cut-off tail of a truncated file, are dropped
                and listed once each in `self.skipped`
                (`SkippedRecord(file, record, reason, offset)`);
                records the decoder rejects after a valid header are dropped too and
                logged by tf.data.
            as_dict: yield dicts with `image`, `label`, `format`, `height`, `width`, `file`,
                `record` (and for imagenet `label_text`, `synset`, `object/bbox` as
                `[N, 4]` ymin, xmin, ymax, xmax, `object/label`) instead of pairs.
            check_files: see `records`.
            record_filter: a further predicate `(file, index, serialized) -> bool` on the
                records before decoding (a subclass's, e.g. detection's `skip_empty`).

        Returns:
            `tf.data.Dataset` of `(image uint8 [H, W, C], label int64 [])` (or dicts).
        """
        records = self.records(
            shuffle_files=shuffle_files,
            seed=seed,
            input_context=input_context,
            cycle_length=cycle_length,
            deterministic=deterministic,
            on_error=on_error,
            check_files=check_files,
        )
        if on_error == "skip":
            records = records.filter(self.skip_filter())
        if record_filter is not None:
            records = records.filter(record_filter)
        decoded = records.map(
            lambda f, i, r: self.decode(f, i, r, on_error=on_error, as_dict=as_dict),
            num_parallel_calls=num_parallel_calls,
            deterministic=deterministic,
        )
        if on_error == "skip":
            decoded = decoded.ignore_errors(log_warning=True)
        return decoded


def get_split(
    name: str,
    split_name: str,
    dataset_dir: str | os.PathLike | None = None,
    file_pattern: str | None = None,
) -> Split:
    """Finds one split of a dataset in slim's TFRecord layout (slim's `get_split`).

    Args:
        name: a built-in dataset (`mnist`, `cifar10`, `flowers`, `imagenet`, `digits`,
            `image_folder`) or one that `kslim data convert` wrote into `dataset_dir`.
        split_name: e.g. "train", "test", "validation".
        dataset_dir: the folder holding the records. Optional for `digits` and `shapes`
            only: the embedded data is written once into `$KSLIM_HOME/datasets/<name>`.
        file_pattern: overrides the dataset's file pattern (`%s` = split name), relative
            to `dataset_dir`, as slim's `file_pattern` argument.

    Returns:
        A `Split` (a `kslim.data._voc.DetectionSplit` for the detection sets
        `pascalvoc_2007`, `pascalvoc_2012`, `shapes`).

    Raises:
        ValueError: unknown dataset or split, or no `dataset_dir` for a dataset that
            needs one.
        FileNotFoundError: the folder does not exist, or no file matches the split.
    """
    if dataset_dir is None:
        if name not in ("digits", "shapes"):
            raise ValueError(
                f"dataset_dir is required for dataset {name!r}: the folder holding its TFRecord "
                f"files ({_CONVERT_HINT.format(name=name, dir='DIR')})"
            )
        if name == "shapes":
            from kslim.data._shapes import ensure_shapes

            dataset_dir = ensure_shapes()
        else:
            from kslim.data._digits import ensure_digits

            dataset_dir = ensure_digits()
    dataset_dir = os.fspath(dataset_dir)
    if not tf.io.gfile.isdir(dataset_dir):
        raise FileNotFoundError(
            f"Dataset folder {dataset_dir} does not exist; "
            + _CONVERT_HINT.format(name=name, dir=dataset_dir)
        )
    spec = _specs.get_spec(name, dataset_dir)
    sizes = spec.split_sizes
    if split_name not in sizes:
        raise ValueError(
            f"split name {split_name!r} was not recognized for dataset {spec.name!r}; "
            f"its splits are: {', '.join(sizes)}"
        )
    pattern = os.path.join(dataset_dir, (file_pattern or spec.file_pattern) % split_name)
    files = tuple(sorted(tf.io.gfile.glob(pattern)))
    if not files:
        present = sorted(tf.io.gfile.listdir(dataset_dir))
        listing = ", ".join(present[:8]) + (", ..." if len(present) > 8 else "") if present else "nothing"
        raise FileNotFoundError(
            f"No files match {pattern} (split {split_name!r} of {spec.name}); {dataset_dir} "
            f"holds {listing}. Check dataset_dir and the split name, or "
            + _CONVERT_HINT.format(name=spec.name, dir=dataset_dir)
        )
    num_samples = sizes[split_name]
    if num_samples is None:
        num_samples = sum(_records.scan_tfrecord(f)[0] for f in files)
    if _records.has_labels(dataset_dir):
        labels_to_names = _records.read_label_file(dataset_dir)
    elif spec.default_labels is not None:
        labels_to_names = dict(enumerate(spec.default_labels))
    else:
        labels_to_names = None
    if spec.detection:
        from kslim.data._voc import DetectionSplit as split_class
    else:
        split_class = Split
    return split_class(
        spec=spec,
        split_name=split_name,
        dataset_dir=dataset_dir,
        file_pattern=pattern,
        files=files,
        num_samples=int(num_samples),
        labels_to_names=labels_to_names,
    )
