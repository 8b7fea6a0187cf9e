"""slim's datasets on `tf.data`: TFRecord layouts, converters, the input pipeline.

Mirrors research/slim `datasets/` (dataset_factory, mnist, cifar10, flowers, imagenet,
dataset_utils, the download_and_convert scripts, build_imagenet_data.py) and the reading
half of tf_slim `data/` (DatasetDataProvider, TFExampleDecoder, parallel_reader).

Example:
    >>> import kslim
    >>> split = kslim.data.get_split("digits", "train")      # embedded, no download
    >>> ds = kslim.data.input_pipeline(split, 32, "lenet", is_training=True, seed=0)
    >>> kslim.data.show(split, "digits.png")

Attributes load on first use, so importing this package (as `kslim --help` does) does not
import TensorFlow.
"""

from __future__ import annotations

from kslim._lazy import lazy_attributes

__all__ = [
    "DatasetSpec",
    "DATASETS",
    "list_datasets",
    "get_spec",
    "Split",
    "SkippedRecord",
    "get_split",
    "input_pipeline",
    "convert",
    "convert_mnist",
    "convert_cifar10",
    "convert_flowers",
    "convert_image_folder",
    "convert_imagenet",
    "convert_pascalvoc",
    "DetectionSplit",
    "image_to_tfexample",
    "read_label_file",
    "write_label_file",
    "load_digits",
    "produce_batch",
    "show",
    "make_grid",
    "kslim_home",
]

_HOMES = {
    "DatasetSpec": "_specs",
    "DATASETS": "_specs",
    "list_datasets": "_specs",
    "get_spec": "_specs",
    "Split": "_split",
    "SkippedRecord": "_split",
    "get_split": "_split",
    "input_pipeline": "_pipeline",
    "convert": "_convert",
    "convert_mnist": "_convert",
    "convert_cifar10": "_convert",
    "convert_flowers": "_convert",
    "convert_image_folder": "_convert",
    "convert_imagenet": "_convert",
    "convert_pascalvoc": "_voc",
    "DetectionSplit": "_voc",
    "image_to_tfexample": "_records",
    "read_label_file": "_records",
    "write_label_file": "_records",
    "load_digits": "_digits",
    "produce_batch": "_regression",
    "show": "_show",
    "make_grid": "_show",
    "kslim_home": "_home",
}


__getattr__, __dir__ = lazy_attributes(__name__, _HOMES)
