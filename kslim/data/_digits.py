"""The embedded `digits` dataset: UCI handwritten digits in MNIST's layout.

`digits.npz` beside this file holds the 1,797 8x8 images (pixel values 0..16) and labels
of the UCI ML "Optical Recognition of Handwritten Digits" test set, as scikit-learn ships
it (`sklearn/datasets/data/digits.csv.gz`); `digits.md` gives its source and licence
(CC BY 4.0, E. Alpaydin and C. Kaynak).

Turned into MNIST's layout (`digits_{train,test}.tfrecord`, PNG examples with slim's five
keys, `labels.txt`) like this:

* pixels: `round(v * 255 / 16)`; bilinear upsampling (half-pixel centres, edges clamped)
  from 8x8 to 20x20, then 4 zero pixels on every side: 28x28 uint8, with the digit in
  the central 20x20 box as in MNIST.
* splits: within each class, in file order, every fifth image (the 5th, 10th, ...) is
  `test` (355 images, 34-36 per class) and the others are `train` (1,442). Both splits
  keep the file order.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np

from kslim.data import _records, _specs
from kslim.data._home import generated_dataset

__all__ = ["load_digits", "digits_28x28", "split_digits", "write_digits", "ensure_digits"]

_DATA = os.path.join(os.path.dirname(__file__), "digits.npz")
_NOTICE = os.path.join(os.path.dirname(__file__), "digits.md")
# Bump when the conversion changes: caches of another version are rebuilt.
_VERSION = 2


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The embedded data: uint8 images `[1797, 8, 8]` in 0..16 and uint8 labels `[1797]`."""
    with np.load(_DATA) as data:
        return data["images"], data["labels"]


def _bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """`[size_out, size_in]` weights of half-pixel-centre bilinear resampling."""
    src = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    src = np.clip(src, 0, size_in - 1)
    low = np.floor(src).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    frac = src - low
    weights = np.zeros((size_out, size_in))
    weights[np.arange(size_out), low] += 1 - frac
    weights[np.arange(size_out), high] += frac
    return weights


def digits_28x28(images: np.ndarray) -> np.ndarray:
    """8x8 images in 0..16 -> `[N, 28, 28, 1]` uint8 in MNIST's framing (see module doc)."""
    scaled = images.astype(np.float64) * (255.0 / 16.0)
    resample = _bilinear_matrix(8, 20)
    big = np.einsum("ij,njk,lk->nil", resample, scaled, resample)
    big = np.clip(np.rint(big), 0, 255).astype(np.uint8)
    return np.pad(big, ((0, 0), (4, 4), (4, 4)))[..., None]


def split_digits(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Indices of the `train` and `test` images (see the module doc)."""
    rank = np.zeros(len(labels), int)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rank[members] = np.arange(len(members))
    test = rank % 5 == 4
    return {"train": np.flatnonzero(~test), "test": np.flatnonzero(test)}


def write_digits(dataset_dir: str) -> str:
    """Writes the digits dataset in MNIST's layout into `dataset_dir` (created)."""
    images, labels = load_digits()
    images = digits_28x28(images)
    os.makedirs(dataset_dir, exist_ok=True)
    from kslim.data._convert import write_image_arrays

    spec = _specs.DATASETS["digits"]
    sizes = {}
    for split, part in split_digits(labels).items():
        path = os.path.join(dataset_dir, spec.pattern_for(split))
        sizes[split] = write_image_arrays(path, images[part], labels[part])
    _records.write_label_file(dict(enumerate(spec.default_labels)), dataset_dir)
    info = dataclasses.replace(spec, splits=tuple(sizes.items())).to_json()
    info["version"] = _VERSION
    _records.atomic_write_text(os.path.join(dataset_dir, _specs.INFO_FILENAME), json.dumps(info, indent=1) + "\n")
    shutil.copyfile(_NOTICE, os.path.join(dataset_dir, "README.md"))
    return dataset_dir


def ensure_digits() -> str:
    """The digits dataset folder under `$KSLIM_HOME/datasets/digits`, written on first use.

    Written into a temporary folder beside the final one and renamed into place, so an
    interrupted first run never leaves a half-written dataset; a cache made by another
    kslim version of this conversion is replaced the same way.
    """
    return generated_dataset("digits", _VERSION, write_digits)
