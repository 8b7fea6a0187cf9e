"""Helpers for the data and preprocessing tests: small real images and hand-made records.

Records here are built directly with `tf.train.Example` and slim's feature keys (not with
kslim's writer), so reading them tests kslim against slim's format rather than itself.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow as tf

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
IMAGES = os.path.join(FIXTURES, "images")
PHOTOS = ("astronaut_256.png", "chelsea.png", "coffee.jpg", "rocket.jpg")


@functools.lru_cache(maxsize=None)
def photo_bytes(name: str) -> bytes:
    with open(os.path.join(IMAGES, name), "rb") as f:
        return f.read()


@functools.lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """A fixture photograph as uint8 `[H, W, 3]`, decoded as the slim fixtures were."""
    return tf.io.decode_image(photo_bytes(name), channels=3, expand_animations=False).numpy()


def photo_crops(count: int, size=(48, 64), seed: int = 0) -> list[np.ndarray]:
    """`count` different uint8 RGB crops of the fixture photographs (real image content)."""
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        image = photo(PHOTOS[i % len(PHOTOS)])
        y = rng.integers(0, image.shape[0] - size[0])
        x = rng.integers(0, image.shape[1] - size[1])
        crops.append(image[y : y + size[0], x : x + size[1]])
    return crops


@functools.lru_cache(maxsize=None)
def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """The embedded UCI digits at 28x28 (uint8 `[N, 28, 28]`) and their labels."""
    from kslim.data._digits import digits_28x28, load_digits

    images, labels = load_digits()
    return digits_28x28(images)[..., 0], labels.astype(np.int64)


def int64_feature(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def bytes_feature(value: bytes):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def float_feature(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def slim_example(encoded: bytes, label: int | None, image_format: bytes | None = b"png", **extra) -> bytes:
    """A serialized Example with slim's keys; None leaves a key out."""
    feature = {"image/encoded": bytes_feature(encoded)}
    if image_format is not None:
        feature["image/format"] = bytes_feature(image_format)
    if label is not None:
        feature["image/class/label"] = int64_feature([label])
    feature.update(extra)
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_records(path, records) -> str:
    path = os.fspath(path)
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    return path


def png(image: np.ndarray) -> bytes:
    if image.ndim == 2:
        image = image[..., None]
    return tf.io.encode_png(image).numpy()


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    return tf.io.encode_jpeg(image, quality=quality).numpy()


def read_all(split, **kwargs) -> tuple[list[np.ndarray], list[int]]:
    images, labels = [], []
    for image, label in split.dataset(**kwargs).as_numpy_iterator():
        images.append(image)
        labels.append(int(label))
    return images, labels
