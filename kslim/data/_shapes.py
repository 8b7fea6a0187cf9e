"""The embedded `shapes` detection dataset: coloured shapes on small canvases, VOC layout.

Generated in the package (numpy, fixed seeds; no download) and written once in
SSD-Tensorflow's Pascal VOC TFRecord layout (`shapes_{train,test}_000.tfrecord`, ...,
`labels.txt`, `kslim_dataset.json`) under `$KSLIM_HOME/datasets/shapes`, so that a
detector can be trained and scored with the same code as on Pascal VOC, on a CPU, in
minutes.

Each image is a 96x96 RGB canvas of one random background colour with Gaussian noise
(sigma 8), holding 1 to 3 non-overlapping objects: a filled circle (class 1), square
(class 2) or upright triangle (class 3), 14 to 44 pixels wide, in a random colour that
differs from the background by at least 160 (sum over RGB). The class is the shape, not
the colour. Boxes are the objects' pixel extents (`ymin, xmin, ymax, xmax` edges over 96),
no object is difficult or truncated. `train` has 2,000 images (seed 0), `test` 300
(seed 1); the images are stored as JPEG (quality 95).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from kslim.data import _records, _specs
from kslim.data._home import generated_dataset
from kslim.data._voc import VOCAnnotation, voc_example, write_voc_records

__all__ = ["SIZE", "SPLITS", "draw_shapes", "write_shapes", "ensure_shapes"]

SIZE = 96
SPLITS = {"train": (2000, 0), "test": (300, 1)}  # split -> (images, seed)
_MIN_SIDE, _MAX_SIDE = 14, 44
_MAX_OBJECTS = 3
_VERSION = 1


def _mask(kind: int, side: int) -> np.ndarray:
    """`[side, side]` bool mask of a circle (1), square (2) or triangle (3)."""
    y, x = np.mgrid[0:side, 0:side] + 0.5
    if kind == 1:
        return (y - side / 2) ** 2 + (x - side / 2) ** 2 <= (side / 2) ** 2
    if kind == 2:
        return np.ones((side, side), bool)
    # Apex at the top centre, base along the bottom row: |x - c| <= y / 2.
    return np.abs(x - side / 2) <= y / 2


def draw_shapes(rng: np.random.Generator) -> tuple[np.ndarray, list[int], list[tuple[int, int, int, int]]]:
    """One canvas: `(image uint8 [96, 96, 3], labels, boxes)`, boxes as pixel edges
    `(ymin, xmin, ymax, xmax)`."""
    background = rng.integers(0, 256, 3)
    image = background + rng.normal(0.0, 8.0, (SIZE, SIZE, 3))
    labels, boxes = [], []
    for _ in range(int(rng.integers(1, _MAX_OBJECTS + 1))):
        for _attempt in range(20):
            side = int(rng.integers(_MIN_SIDE, _MAX_SIDE + 1))
            y0, x0 = (int(v) for v in rng.integers(0, SIZE - side + 1, 2))
            box = (y0, x0, y0 + side, x0 + side)
            if all(box[0] >= b[2] or b[0] >= box[2] or box[1] >= b[3] or b[1] >= box[3] for b in boxes):
                break
        else:
            continue  # no free place for this one
        kind = int(rng.integers(1, 4))
        while True:
            colour = rng.integers(0, 256, 3)
            if np.abs(colour - background).sum() >= 160:
                break
        mask = _mask(kind, side)
        image[y0 : y0 + side, x0 : x0 + side][mask] = colour
        labels.append(kind)
        boxes.append(box)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), labels, boxes


def _examples(count: int, seed: int):
    rng = np.random.default_rng(seed)
    drawn = [draw_shapes(rng) for _ in range(count)]
    encoded = (
        tf.data.Dataset.from_tensor_slices(np.stack([image for image, _, _ in drawn]))
        .map(lambda image: tf.io.encode_jpeg(image, quality=95), tf.data.AUTOTUNE, deterministic=True)
        .as_numpy_iterator()
    )
    names = _specs.SHAPES_NAMES
    for (_, labels, boxes), data in zip(drawn, encoded):
        annotation = VOCAnnotation(
            filename="",
            shape=(SIZE, SIZE, 3),
            names=[names[k] for k in labels],
            boxes=[tuple(float(v) for v in b) for b in boxes],
            difficult=[0] * len(labels),
            truncated=[0] * len(labels),
        )
        yield voc_example(data, annotation, labels)


def write_shapes(dataset_dir: str) -> str:
    """Writes the shapes dataset in SSD-Tensorflow's VOC layout into `dataset_dir` (created)."""
    os.makedirs(dataset_dir, exist_ok=True)
    spec = _specs.DATASETS["shapes"]
    sizes = {}
    for split, (count, seed) in SPLITS.items():
        sizes[split], _ = write_voc_records(dataset_dir, spec.file_pattern, split, _examples(count, seed))
    _records.write_label_file(dict(enumerate(spec.default_labels)), dataset_dir)
    info = dataclasses.replace(spec, splits=tuple(sizes.items())).to_json()
    info["version"] = _VERSION
    _records.atomic_write_text(os.path.join(dataset_dir, _specs.INFO_FILENAME), json.dumps(info, indent=1) + "\n")
    return dataset_dir


def ensure_shapes() -> str:
    """The shapes folder under `$KSLIM_HOME/datasets/shapes`, written on first use.

    Built in a temporary folder beside the final one and renamed into place, so an
    interrupted first run never leaves a half-written dataset (as `digits`).
    """
    return generated_dataset("shapes", _VERSION, write_shapes)
