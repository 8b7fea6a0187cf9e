"""Pascal VOC detection records in SSD-Tensorflow's layout: reader and converter.

Mirrors balancap/SSD-Tensorflow `datasets/pascalvoc_common.py` (the reader's feature keys
and items), `datasets/pascalvoc_2007.py` / `pascalvoc_2012.py` (file patterns
`voc_2007_%s_*.tfrecord`, `voc_2012_%s_*.tfrecord`, split sizes) and
`datasets/pascalvoc_to_tfrecords.py` (the example layout, 200 examples per file named
`voc_2007_train_000.tfrecord`, ...). Records written by SSD-Tensorflow's `tf_convert_data.py`
are read as they are.

One example per image:

* `image/encoded` (the JPEG file's bytes), `image/format` (b"JPEG"), `image/height`,
  `image/width`, `image/channels`, `image/shape` (height, width, depth from the XML);
* `image/object/bbox/{ymin,xmin,ymax,xmax}`: floats, the XML's pixel value divided by the
  image height or width (VOC's 1-based coordinates, no -1, as the original);
* `image/object/bbox/label` (index in `VOC_NAMES`, 1..20), `.../label_text`,
  `.../difficult`, `.../truncated`.

The converter here differs from SSD-Tensorflow's on purpose:

* difficult and truncated flags are read from the XML. SSD-Tensorflow's converter tests
  `if obj.find('difficult'):`, which is False for an element without children, so it
  writes 0 for every object (SSD-Tensorflow issue #210, PR #214): records made with it
  have no difficult objects, and its VOC07 mAP counts every difficult object as one to
  find. Convert again with kslim to get the flags.
* images are read as bytes (its `FastGFile(filename, 'r')` fails on Python 3, #105).
* the images of a split come from `ImageSets/Main/<set>.txt` (2007 `train` = trainval,
  `test` = test; 2012 `train` = trainval); SSD-Tensorflow converts every XML in
  `Annotations/` (for 2012: 17,125 files, of which 11,540 are the detection trainval set);
  `image_set="all"` does that.
* every XML and image is checked before anything is written: a missing field, an unknown
  class, a box of zero area or outside the image, an image that is not a JPEG or whose
  size differs from the XML's: an error naming the file and the object.

Images without objects are valid records (all anchors are background); the converter
counts them, and `DetectionSplit.dataset(skip_empty=True)` drops and lists them.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import xml.etree.ElementTree as ET
from typing import Iterable, Mapping

import numpy as np
import tensorflow as tf

from kslim.data import _records, _specs
from kslim.data._convert import _staged
from kslim.data._records import bytes_feature, float_feature, int64_feature
from kslim.data._split import Split, _has_image_header

__all__ = [
    "DetectionSplit",
    "VOCAnnotation",
    "parse_voc_xml",
    "voc_example",
    "write_voc_records",
    "convert_pascalvoc",
    "SAMPLES_PER_FILES",
    "IMAGE_SETS",
]

SAMPLES_PER_FILES = 200  # pascalvoc_to_tfrecords.py

# kslim split -> ImageSets/Main list file, per dataset.
IMAGE_SETS = {
    "pascalvoc_2007": {"train": "trainval", "test": "test"},
    "pascalvoc_2012": {"train": "trainval"},
}

_BOX_KEYS = ("ymin", "xmin", "ymax", "xmax")
_PREFIX = "image/object/bbox/"


# -- reading ---------------------------------------------------------------------------------


def _dense(features, key, dtype):
    return tf.cast(tf.sparse.to_dense(features[key]), dtype)


def _first_bad(mask: tf.Tensor, describe) -> tf.Tensor:
    """`describe(i)` for the first True of `mask`, or "" when there is none."""
    return tf.cond(
        tf.reduce_any(mask),
        lambda: describe(tf.argmax(tf.cast(mask, tf.int32), output_type=tf.int32)),
        lambda: tf.constant(""),
    )


@dataclasses.dataclass(eq=False)
class DetectionSplit(Split):
    """A split of a detection dataset in SSD-Tensorflow's Pascal VOC layout.

    `dataset()` yields per image `(image uint8 [H, W, 3], shape int64 [3], labels int64 [G],
    bboxes float32 [G, 4] (ymin, xmin, ymax, xmax, relative), difficults int64 [G],
    truncated int64 [G])`, or with `as_dict=True` dicts keyed by SSD-Tensorflow's item
    names (`image`, `shape`, `object/label`, `object/bbox`, `object/difficult`,
    `object/truncated`) plus `height`, `width`, `format`, `file`, `record`.

    A record is bad (an error naming its file and number, or with `on_error="skip"` a
    dropped record listed in `skipped`) when its image is missing or not an image, its
    box lists and labels differ in length, a label is outside 1..num_classes-1, or a box
    is outside `[0, 1]`, not finite, or of zero area. Records without objects are valid.

    Example:
        >>> split = kslim.data.get_split("pascalvoc_2007", "test", "/data/voc")
        >>> for image, shape, labels, bboxes, difficults, truncated in split.dataset().take(1): ...
    """

    def _features(self) -> dict:
        features = {
            _specs.ENCODED: tf.io.FixedLenFeature((), tf.string, default_value=""),
            _specs.FORMAT: tf.io.FixedLenFeature((), tf.string, default_value="jpeg"),
            _specs.HEIGHT: tf.io.FixedLenFeature([1], tf.int64, default_value=[0]),
            _specs.WIDTH: tf.io.FixedLenFeature([1], tf.int64, default_value=[0]),
            "image/channels": tf.io.FixedLenFeature([1], tf.int64, default_value=[0]),
            "image/shape": tf.io.FixedLenFeature([3], tf.int64, default_value=[0, 0, 0]),
        }
        for key in _BOX_KEYS:
            features[_PREFIX + key] = tf.io.VarLenFeature(tf.float32)
        for key in ("label", "difficult", "truncated"):
            features[_PREFIX + key] = tf.io.VarLenFeature(tf.int64)
        return features

    def problem(self, features: dict) -> tf.Tensor:
        """A string tensor: empty when the parsed record is usable, else the reason."""
        encoded = features[_specs.ENCODED]
        num_classes = self.num_classes
        image_reason = tf.where(
            tf.equal(tf.strings.length(encoded), 0),
            "it has no image/encoded bytes",
            tf.where(
                _has_image_header(encoded), "", "its image/encoded bytes are not a JPEG, PNG, GIF, BMP or WebP image"
            ),
        )
        labels = _dense(features, _PREFIX + "label", tf.int64)
        sides = [_dense(features, _PREFIX + k, tf.float32) for k in _BOX_KEYS]
        flags = [_dense(features, _PREFIX + k, tf.int64) for k in ("difficult", "truncated")]
        n = tf.size(labels)
        sizes = tf.stack([tf.size(s) for s in sides])
        counts_ok = tf.logical_and(
            tf.reduce_all(tf.equal(sizes, n)),
            tf.reduce_all([tf.logical_or(tf.equal(tf.size(f), n), tf.equal(tf.size(f), 0)) for f in flags]),
        )
        counts_reason = tf.strings.format(
            "its object lists differ in length: {} labels, ymin/xmin/ymax/xmax {}, difficult {}, truncated {}",
            (n, sizes, tf.size(flags[0]), tf.size(flags[1])),
        )

        def object_reason():
            bad_label = tf.logical_or(labels < 1, labels >= num_classes)
            label_reason = _first_bad(
                bad_label,
                lambda i: tf.strings.format(
                    "object {} has label {}, outside 1..{} (num_classes {})",
                    (i, labels[i], num_classes - 1, num_classes),
                ),
            )
            boxes = tf.stack(sides, axis=1)
            ymin, xmin, ymax, xmax = sides
            bad_box = tf.logical_not(
                tf.reduce_all(tf.math.is_finite(boxes), axis=1)
                & (ymin >= 0.0) & (xmin >= 0.0) & (ymax <= 1.0) & (xmax <= 1.0)
                & (ymin < ymax) & (xmin < xmax)
            )  # fmt: skip
            box_reason = _first_bad(
                bad_box,
                lambda i: tf.strings.format(
                    "object {} has box (ymin, xmin, ymax, xmax) {}: outside [0, 1] or of zero area",
                    (i, boxes[i]),
                    summarize=4,
                ),
            )
            return tf.where(tf.equal(label_reason, ""), box_reason, label_reason)

        object_problem = tf.cond(counts_ok, object_reason, lambda: counts_reason)
        return tf.where(tf.equal(image_reason, ""), object_problem, image_reason)

    def decode_image(self, features: dict) -> tf.Tensor:
        """The uint8 `[H, W, 3]` image (slim's `Image` handler, 3 channels)."""
        image = tf.io.decode_image(features[_specs.ENCODED], channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return image

    def decode(self, path, index, serialized, on_error: str = "raise", as_dict: bool = False):
        """Parses and decodes one record; see the class doc for the result."""
        features = self.parse(serialized)
        with tf.control_dependencies(self.checks(path, index, features) if on_error == "raise" else []):
            image = self.decode_image(features)
            labels = tf.identity(_dense(features, _PREFIX + "label", tf.int64))
            n = tf.size(labels)
            bboxes = tf.reshape(
                tf.stack([_dense(features, _PREFIX + k, tf.float32) for k in _BOX_KEYS], axis=1), [-1, 4]
            )
            # Writers other than SSD-Tensorflow's may leave the flags out: 0 then.
            difficult, truncated = (
                tf.pad(f, [[0, n - tf.size(f)]])
                for f in (_dense(features, _PREFIX + k, tf.int64) for k in ("difficult", "truncated"))
            )
        shape = features["image/shape"]
        if not as_dict:
            return image, shape, labels, bboxes, difficult, truncated
        return {
            "image": image,
            "shape": shape,
            "object/label": labels,
            "object/bbox": bboxes,
            "object/difficult": difficult,
            "object/truncated": truncated,
            "height": tf.reshape(features[_specs.HEIGHT], []),
            "width": tf.reshape(features[_specs.WIDTH], []),
            "format": features[_specs.FORMAT],
            "file": path,
            "record": index,
        }

    def _nonempty_filter(self):
        def note(path, index):
            self._note_skipped(path.numpy().decode("utf-8"), index.numpy(), "it has no objects")
            return False

        def keep(path, index, serialized):
            count = tf.size(self.parse(serialized)[_PREFIX + "label"])
            return tf.cond(count > 0, lambda: tf.constant(True), lambda: tf.py_function(note, [path, index], tf.bool))

        return keep

    def dataset(self, *, skip_empty: bool = False, **kwargs) -> tf.data.Dataset:
        """Decoded images with their objects, in file order unless shuffled.

        Args: the keywords of `Split.dataset`, and
            skip_empty: drop images without objects, listing each in `skipped`
                (reason "it has no objects"); kept by default.

        Returns:
            `tf.data.Dataset` of the tuples (or dicts) the class doc describes.
        """
        if skip_empty:
            kwargs["record_filter"] = self._nonempty_filter()
        return super().dataset(**kwargs)


# -- writing ---------------------------------------------------------------------------------


@dataclasses.dataclass
class VOCAnnotation:
    """One image's annotation: shape `(height, width, depth)` and per-object lists.

    Boxes are pixels as in the XML, `(ymin, xmin, ymax, xmax)`.
    """

    filename: str
    shape: tuple[int, int, int]
    names: list[str] = dataclasses.field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = dataclasses.field(default_factory=list)
    difficult: list[int] = dataclasses.field(default_factory=list)
    truncated: list[int] = dataclasses.field(default_factory=list)


def _text(element, path: str, where: str) -> str:
    text = element.findtext(path)
    if text is None or not text.strip():
        raise ValueError(f"{where} has no <{path}>; every VOC annotation needs it (fix or remove the file)")
    return text.strip()


def _number(element, path: str, where: str, kind=float):
    text = _text(element, path, where)
    try:
        return kind(float(text)) if kind is int else kind(text)
    except ValueError:
        raise ValueError(f"{where}: <{path}> is {text!r}, not a number") from None


def parse_voc_xml(path: str) -> VOCAnnotation:
    """Reads a VOC annotation file: size, and each object's name, box and flags.

    `difficult` and `truncated` default to 0 when absent (as the VOC devkit reads them).

    Raises:
        ValueError: the file is not XML, or lacks `size/width`, `size/height`, an
            object's `name` or a `bndbox` coordinate (the message names the file and the
            object).
    """
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise ValueError(f"{path} is not a readable VOC annotation XML ({e})") from None
    size = root.find("size")
    if size is None:
        raise ValueError(f"{path} has no <size>; every VOC annotation needs it (fix or remove the file)")
    height = _number(size, "height", path, int)
    width = _number(size, "width", path, int)
    depth = int(size.findtext("depth") or 3)
    if height <= 0 or width <= 0:
        raise ValueError(f"{path}: image size {width}x{height} is not positive")
    annotation = VOCAnnotation(filename=os.path.basename(path), shape=(height, width, depth))
    for i, obj in enumerate(root.findall("object")):
        where = f"{path}, object {i}"
        annotation.names.append(_text(obj, "name", where))
        box = obj.find("bndbox")
        if box is None:
            raise ValueError(f"{where} has no <bndbox>; every VOC object needs it (fix or remove the file)")
        ymin, xmin, ymax, xmax = (_number(box, k, f"{where} <bndbox>") for k in _BOX_KEYS)
        if not (0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height):
            raise ValueError(
                f"{where} ({annotation.names[-1]}): box xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} "
                f"ymax={ymax:g} is outside the {width}x{height} image or of zero area; fix the XML"
            )
        annotation.boxes.append((ymin, xmin, ymax, xmax))
        for key, values in (("difficult", annotation.difficult), ("truncated", annotation.truncated)):
            text = (obj.findtext(key) or "0").strip() or "0"
            try:
                values.append(int(text))
            except ValueError:
                raise ValueError(f"{where}: <{key}> is {text!r}, not 0 or 1") from None
    return annotation


def voc_example(image_data: bytes, annotation: VOCAnnotation, labels: list[int]) -> tf.train.Example:
    """SSD-Tensorflow's example for one image (`_convert_to_example`), flags included."""
    height, width, _ = annotation.shape
    sides = np.asarray(annotation.boxes, np.float64).reshape(-1, 4) / [height, width, height, width]
    feature = {
        "image/height": int64_feature(height),
        "image/width": int64_feature(width),
        "image/channels": int64_feature(annotation.shape[2]),
        "image/shape": int64_feature(list(annotation.shape)),
        "image/object/bbox/xmin": float_feature(sides[:, 1].tolist()),
        "image/object/bbox/xmax": float_feature(sides[:, 3].tolist()),
        "image/object/bbox/ymin": float_feature(sides[:, 0].tolist()),
        "image/object/bbox/ymax": float_feature(sides[:, 2].tolist()),
        "image/object/bbox/label": int64_feature(list(labels)),
        "image/object/bbox/label_text": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[n.encode("utf-8") for n in annotation.names])
        ),
        "image/object/bbox/difficult": int64_feature(list(annotation.difficult)),
        "image/object/bbox/truncated": int64_feature(list(annotation.truncated)),
        "image/format": bytes_feature(b"JPEG"),
        "image/encoded": bytes_feature(image_data),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def write_voc_records(
    dataset_dir: str,
    file_pattern: str,
    split: str,
    examples: Iterable[tf.train.Example],
    samples_per_file: int = SAMPLES_PER_FILES,
) -> tuple[int, list[str]]:
    """Writes examples `samples_per_file` to a file, named as SSD-Tensorflow names them.

    Args:
        dataset_dir: output folder.
        file_pattern: the dataset's pattern, e.g. `voc_2007_%s_*.tfrecord`; `*` becomes
            the file number `%03d`.
        split: split name.
        examples: the examples, in order.
        samples_per_file: examples per file (200).

    Returns:
        `(count, paths)`.
    """
    name = os.path.join(dataset_dir, (file_pattern % split).replace("*", "%03d"))
    iterator = iter(examples)
    paths = []
    count = 0
    while True:
        chunk = list(itertools.islice(iterator, samples_per_file))
        if not chunk:
            break
        paths.append(name % len(paths))
        with _records.atomic_tfrecord_writer(paths[-1]) as writer:
            for example in chunk:
                writer.write(example.SerializeToString())
        count += len(chunk)
    return count, paths


def _voc_root(source: str, name: str) -> str:
    """`source` itself, or its `VOC2007`/`VOC2012` (or `VOCdevkit/VOC20xx`) folder."""
    year = name.rsplit("_", 1)[-1] if name.startswith("pascalvoc_") else ""
    for candidate in (source, os.path.join(source, f"VOC{year}"), os.path.join(source, "VOCdevkit", f"VOC{year}")):
        if os.path.isdir(os.path.join(candidate, "Annotations")):
            return candidate
    raise FileNotFoundError(
        f"{source} is not a VOC folder: expected Annotations/, JPEGImages/ and ImageSets/Main/ in it "
        f"(e.g. --source VOCdevkit/VOC{year or '2007'})"
    )


def _image_names(root: str, image_set: str) -> list[str]:
    if image_set == "all":  # SSD-Tensorflow: every annotation file, sorted
        return sorted(n[:-4] for n in os.listdir(os.path.join(root, "Annotations")) if n.endswith(".xml"))
    path = os.path.join(root, "ImageSets", "Main", image_set + ".txt")
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


def _read_image(root: str, annotation: VOCAnnotation, image_name: str) -> bytes:
    path = os.path.join(root, "JPEGImages", image_name + ".jpg")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise FileNotFoundError(f"{path}: cannot read the image of {annotation.filename} ({e.strerror})") from None
    try:
        shape = tf.io.extract_jpeg_shape(data).numpy().tolist()
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
        raise ValueError(f"{path} is not a JPEG image; VOC images must be JPEG files") from None
    if tuple(shape[:2]) != annotation.shape[:2]:
        raise ValueError(
            f"{path} is {shape[1]}x{shape[0]} but {annotation.filename} says "
            f"{annotation.shape[1]}x{annotation.shape[0]}; the boxes would be scaled wrongly: fix the XML"
        )
    return data


def convert_pascalvoc(
    source: str,
    dataset_dir: str,
    name: str = "pascalvoc_2007",
    split_names: Iterable[str] | None = None,
    image_sets: Mapping[str, str] | None = None,
    samples_per_file: int = SAMPLES_PER_FILES,
    overwrite: bool = False,
) -> str:
    """Writes a VOCdevkit folder as SSD-Tensorflow's Pascal VOC TFRecords.

    Args:
        source: `VOCdevkit/VOC2007` (or `VOC2012`, or the `VOCdevkit` folder above),
            holding `Annotations/`, `JPEGImages/` and `ImageSets/Main/`.
        dataset_dir: output folder; files `voc_2007_<split>_000.tfrecord`, ...,
            `labels.txt` and `kslim_dataset.json` (the sizes written and per-split counts
            of objects, difficult objects and images without objects, under
            "conversion"). Built in a staging folder and published at the end.
        name: `pascalvoc_2007` or `pascalvoc_2012`.
        split_names: splits to write (default: every split whose image list exists).
        image_sets: split -> `ImageSets/Main` list name, or "all" for every XML in
            `Annotations/` (SSD-Tensorflow's choice). Default `IMAGE_SETS[name]`.
        samples_per_file: examples per file (SSD-Tensorflow: 200).
        overwrite: replace the dataset already in `dataset_dir` (default: refuse). All
            the splits of a dataset are written together (both 2007 tarballs extract
            into one `VOC2007` folder): a conversion replaces every split there.

    Returns:
        `dataset_dir`.

    Raises:
        FileNotFoundError: the source is not a VOC folder, an image or list is missing.
        ValueError: an annotation that cannot be used (named, with the object), an
            unknown class name, an image that is not a JPEG or whose size differs from
            its XML's. Everything is checked before the first file is written, and
            `dataset_dir` is left as it was.
        FileExistsError: `dataset_dir` already holds this dataset and not `overwrite`.
    """
    if name not in IMAGE_SETS:
        raise ValueError(f"No Pascal VOC converter for {name!r}; choose one of: {', '.join(IMAGE_SETS)}")
    spec = _specs.DATASETS[name]
    if not overwrite:  # refuse before reading the source
        with _staged(dataset_dir, name, spec.file_pattern, overwrite):
            pass
    root = _voc_root(source, name)
    image_sets = dict(IMAGE_SETS[name], **(image_sets or {}))
    if split_names is None:
        split_names = [
            s for s, image_set in image_sets.items()
            if image_set == "all" or os.path.isfile(os.path.join(root, "ImageSets", "Main", image_set + ".txt"))
        ]  # fmt: skip
        if not split_names:
            raise FileNotFoundError(
                f"{root}/ImageSets/Main has none of {', '.join(f'{v}.txt' for v in image_sets.values())}; "
                "pass image_set='all' (--image_set all) to convert every annotation file"
            )
    class_ids = {n: i for i, n in enumerate(spec.default_labels) if i > 0}
    plans = {}
    for split in split_names:
        if split not in image_sets:
            raise ValueError(f"{name} has no split {split!r}; its splits are: {', '.join(image_sets)}")
        try:
            image_names = _image_names(root, image_sets[split])
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{root}/ImageSets/Main/{image_sets[split]}.txt does not exist (split {split!r} of {name}); "
                "extract that part of VOC there, or choose another image set"
            ) from None
        annotations = []
        for image_name in image_names:
            annotation = parse_voc_xml(os.path.join(root, "Annotations", image_name + ".xml"))
            unknown = [n for n in annotation.names if n not in class_ids]
            if unknown:
                raise ValueError(
                    f"{os.path.join(root, 'Annotations', image_name + '.xml')}: unknown class {unknown[0]!r}; "
                    f"the VOC classes are {', '.join(spec.default_labels[1:])}"
                )
            _read_image(root, annotation, image_name)  # checked now, written later
            annotations.append((image_name, annotation))
        plans[split] = annotations

    def examples(annotations):
        for image_name, annotation in annotations:
            data = _read_image(root, annotation, image_name)
            yield voc_example(data, annotation, [class_ids[n] for n in annotation.names])

    report = {
        split: {
            "images": len(annotations),
            "objects": sum(len(a.names) for _, a in annotations),
            "difficult": sum(sum(a.difficult) for _, a in annotations),
            "images_without_objects": sum(1 for _, a in annotations if not a.names),
            "image_set": image_sets[split],
        }
        for split, annotations in plans.items()
    }
    with _staged(dataset_dir, name, spec.file_pattern, overwrite) as out:
        sizes = {}
        for split, annotations in plans.items():
            sizes[split], _ = write_voc_records(out, spec.file_pattern, split, examples(annotations), samples_per_file)
        _records.write_label_file(dict(enumerate(spec.default_labels)), out)
        info = dataclasses.replace(spec, splits=tuple(sizes.items())).to_json()
        info["conversion"] = report
        _records.atomic_write_text(os.path.join(out, _specs.INFO_FILENAME), json.dumps(info, indent=1) + "\n")
    return dataset_dir
