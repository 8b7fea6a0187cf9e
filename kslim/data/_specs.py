"""Dataset descriptions: slim's TFRecord layouts as data.

Each entry mirrors one research/slim `datasets/<name>.py` module: the file pattern (with
`%s` for the split name, relative to the dataset folder), the split sizes, the class
count, and what slim's `TFExampleDecoder` reads. Custom datasets written by kslim's
converters describe themselves in a `kslim_dataset.json` beside their records.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Mapping

__all__ = ["DatasetSpec", "DATASETS", "get_spec", "list_datasets", "INFO_FILENAME"]

INFO_FILENAME = "kslim_dataset.json"

# Feature keys of slim's `dataset_utils.image_to_tfexample` and build_imagenet_data.py.
ENCODED = "image/encoded"
FORMAT = "image/format"
LABEL = "image/class/label"
HEIGHT = "image/height"
WIDTH = "image/width"


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How one dataset is stored (the data of a slim `datasets/*.py` module).

    Attributes:
        name: dataset name (`get_split`'s first argument).
        file_pattern: file name pattern, `%s` replaced by the split name; a glob.
        splits: `(split_name, num_samples)` pairs; a size of None is counted from the files.
        num_classes: number of classes, background included where there is one.
        channels: channels the images decode to.
        image_shape: fixed `(H, W, C)` every image has (slim's `Image(shape=...)`), or None.
        default_format: `image/format` when a record has none ('raw' means uint8 pixels).
        label_shape: shape slim's reader parses the label with (mnist: `(1,)`); the
            value on the wire is the same one-element int64 list either way.
        imagenet_items: also decode ImageNet's text, synset and bounding-box keys.
        detection: an object-detection set in SSD-Tensorflow's Pascal VOC layout
            (`kslim.data._voc`): records hold boxes, labels, difficult and truncated
            flags, and the split yields those instead of one label per image.
        default_labels: class names when the folder has no `labels.txt`.
        slim_module: the research/slim file this entry mirrors.
        description: one line for `kslim data` listings.
    """

    name: str
    file_pattern: str
    splits: tuple[tuple[str, int | None], ...]
    num_classes: int | None
    channels: int = 3
    image_shape: tuple[int, int, int] | None = None
    default_format: str = "png"
    label_shape: tuple[int, ...] = ()
    imagenet_items: bool = False
    detection: bool = False
    default_labels: tuple[str, ...] | None = None
    slim_module: str = ""
    description: str = ""

    @property
    def split_sizes(self) -> dict[str, int | None]:
        return dict(self.splits)

    def pattern_for(self, split_name: str) -> str:
        return self.file_pattern % split_name

    def to_json(self) -> dict:
        info = dataclasses.asdict(self)
        info["splits"] = dict(self.splits)
        return info

    @classmethod
    def from_json(cls, info: Mapping) -> "DatasetSpec":
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in info.items() if k in fields}
        kwargs["splits"] = tuple((str(k), v) for k, v in dict(info["splits"]).items())
        for key in ("image_shape", "label_shape", "default_labels"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_CIFAR10_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
# SSD-Tensorflow datasets/pascalvoc_common.py VOC_LABELS, by id (0 'none' = background).
VOC_NAMES = (
    "none", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip
SHAPES_NAMES = ("none", "circle", "square", "triangle")

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "mnist", "mnist_%s.tfrecord", (("train", 60000), ("test", 10000)), 10,
            channels=1, image_shape=(28, 28, 1), default_format="raw", label_shape=(1,),
            default_labels=_DIGIT_NAMES, slim_module="datasets/mnist.py",
            description="MNIST handwritten digits, 28x28 grayscale",
        ),
        DatasetSpec(
            "cifar10", "cifar10_%s.tfrecord", (("train", 50000), ("test", 10000)), 10,
            image_shape=(32, 32, 3), default_labels=_CIFAR10_NAMES,
            slim_module="datasets/cifar10.py", description="CIFAR-10, 32x32 colour",
        ),
        DatasetSpec(
            "flowers", "flowers_%s_*.tfrecord", (("train", 3320), ("validation", 350)), 5,
            default_labels=("daisy", "dandelion", "roses", "sunflowers", "tulips"),
            slim_module="datasets/flowers.py", description="TF flower photos, 5 classes",
        ),
        DatasetSpec(
            "imagenet", "%s-*", (("train", 1281167), ("validation", 50000)), 1001,
            default_format="jpeg", imagenet_items=True, slim_module="datasets/imagenet.py",
            description="ILSVRC-2012, label 0 = background, 1..1000 by sorted synset",
        ),
        DatasetSpec(
            "image_folder", "image_folder_%s_*.tfrecord", (("train", None), ("validation", None)),
            None, slim_module="datasets/download_and_convert_flowers.py",
            description="any folder of class sub-folders (kslim data convert)",
        ),
        DatasetSpec(
            "digits", "digits_%s.tfrecord", (("train", 1442), ("test", 355)), 10,
            channels=1, image_shape=(28, 28, 1), default_format="raw", label_shape=(1,),
            default_labels=_DIGIT_NAMES, slim_module="datasets/mnist.py",
            description="UCI handwritten digits (embedded), MNIST layout, 28x28",
        ),
        # SSD-Tensorflow datasets/pascalvoc_2007.py, pascalvoc_2012.py: "train" is the
        # trainval set (2012: every annotation file); 20 object classes + background.
        DatasetSpec(
            "pascalvoc_2007", "voc_2007_%s_*.tfrecord", (("train", 5011), ("test", 4952)), 21,
            default_format="jpeg", detection=True, default_labels=VOC_NAMES,
            slim_module="SSD-Tensorflow datasets/pascalvoc_2007.py",
            description="Pascal VOC 2007 detection (SSD-Tensorflow TFRecords), train = trainval",
        ),
        DatasetSpec(
            "pascalvoc_2012", "voc_2012_%s_*.tfrecord", (("train", 17125),), 21,
            default_format="jpeg", detection=True, default_labels=VOC_NAMES,
            slim_module="SSD-Tensorflow datasets/pascalvoc_2012.py",
            description="Pascal VOC 2012 detection (SSD-Tensorflow TFRecords), train = trainval",
        ),
        DatasetSpec(
            "shapes", "shapes_%s_*.tfrecord", (("train", 2000), ("test", 300)), 4,
            default_format="jpeg", detection=True, default_labels=SHAPES_NAMES,
            slim_module="SSD-Tensorflow datasets/pascalvoc_common.py",
            description="coloured circles, squares, triangles on 96x96 canvases (embedded, generated), VOC layout",
        ),
    )
}  # fmt: skip


def list_datasets() -> list[str]:
    """Names of the built-in datasets."""
    return sorted(DATASETS)


def read_info(dataset_dir: str | None) -> DatasetSpec | None:
    """The `kslim_dataset.json` description in `dataset_dir`, or None if there is none."""
    if not dataset_dir:
        return None
    import tensorflow as tf

    path = os.path.join(dataset_dir, INFO_FILENAME)
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            return DatasetSpec.from_json(json.load(f))
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"{path} is not a valid kslim dataset description ({e}); delete it and convert "
            "the dataset again with `kslim data convert`"
        ) from None


def get_spec(name: str, dataset_dir: str | None = None) -> DatasetSpec:
    """The spec of dataset `name`: built in, or described in `dataset_dir`.

    A `kslim_dataset.json` in `dataset_dir` whose name matches (or any, for the generic
    `image_folder`) wins over the built-in table: it holds the sizes the converter wrote.

    Raises:
        ValueError: if the name is neither built in nor described in `dataset_dir`.
    """
    info = read_info(dataset_dir)
    if info is not None and (info.name == name or name == "image_folder"):
        return info
    if name in DATASETS:
        return DATASETS[name]
    raise ValueError(
        f"Unknown dataset {name!r}. Built-in datasets: {', '.join(list_datasets())}; a "
        f"dataset written by `kslim data convert` is found through the {INFO_FILENAME} "
        "in its dataset_dir."
    )
