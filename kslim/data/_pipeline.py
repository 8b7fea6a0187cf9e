"""The input pipeline on `tf.data`: what slim's queue runners did, per worker.

Replaces slim's `DatasetDataProvider` (parallel readers, a shuffling common queue) and
`tf.train.batch` (preprocessing threads, a batch queue) as used by
`train_image_classifier.py` and `eval_image_classifier.py`:

    files -> shard per input pipeline -> shuffle files -> interleave records
          -> shuffle records -> repeat -> decode + preprocess (parallel) -> batch -> prefetch

With a `seed`, the file order, the record order and every random augmentation are fixed:
each element gets its own stateless seed from `tf.data.Dataset.random(seed)`, so parallel
preprocessing gives the same batches run after run.
"""

from __future__ import annotations

import inspect
from typing import Callable

import tensorflow as tf

from kslim.data._split import Split

__all__ = ["input_pipeline"]


def _accepts_seed(fn: Callable) -> bool:
    try:
        return "seed" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _image_size(image_size, split: Split) -> tuple[int, int] | None:
    if image_size is None:
        shape = split.spec.image_shape
        return None if shape is None else (shape[0], shape[1])
    if isinstance(image_size, int):
        return image_size, image_size
    height, width = image_size
    return int(height), int(width)


def input_pipeline(
    split: Split,
    batch_size: int,
    preprocess_fn: Callable | str | None = None,
    *,
    image_size: int | tuple[int, int] | None = None,
    is_training: bool = False,
    shuffle: bool | None = None,
    shuffle_buffer_size: int | None = None,
    seed: int | None = None,
    input_context: tf.distribute.InputContext | None = None,
    labels_offset: int = 0,
    num_epochs: int | None = None,
    drop_remainder: bool | None = None,
    num_parallel: int = tf.data.AUTOTUNE,
    cycle_length: int = 4,
    prefetch: int = tf.data.AUTOTUNE,
    use_grayscale: bool = False,
    crop_while_decoding: bool = True,
    on_error: str = "raise",
) -> tf.data.Dataset:
    """Batches of preprocessed images and labels from a split, for `model.fit`.

    Args:
        split: from `kslim.data.get_split`.
        batch_size: examples per batch from this pipeline; under
            `tf.distribute.Strategy.distribute_datasets_from_function` that is the per-replica
            batch (slim's per-clone `batch_size`).
        preprocess_fn: `fn(image, height, width)`, or a name for
            `kslim.preprocess.get_preprocessing` ("inception_v3", "vgg", ...). A function
            with a `seed` parameter (all of kslim's) gets a per-example `[2]` seed. None:
            images are only cast to float32 (they must share one size to batch).
        image_size: output size (int or `(height, width)`); default: the dataset's fixed
            image size (mnist, cifar10, digits).
        is_training: training augmentation, and the training defaults of `shuffle`,
            `num_epochs` (repeat forever) and `drop_remainder`.
        shuffle: shuffle files and records (default: `is_training`).
        shuffle_buffer_size: records in the shuffle buffer (default: the whole split up
            to max(1024, 16 * batch_size)).
        seed: makes file order, record order and augmentations repeatable. Without one, a
            shuffled pipeline also lets parallel calls finish out of order (faster); an
            unshuffled one keeps file order.
        input_context: shard for one of several input pipelines (multi-worker training).
        labels_offset: subtracted from every label (slim's `--labels_offset`, e.g. 1 to read
            1001-class ImageNet records into a 1000-class model).
        num_epochs: passes over the data; None: forever when training, once otherwise.
        drop_remainder: drop the last partial batch (default: `is_training`).
        num_parallel: parallel decode + preprocess calls.
        cycle_length: files read at once.
        prefetch: batches prepared ahead.
        use_grayscale: passed to `get_preprocessing` when `preprocess_fn` is a name.
        crop_while_decoding: for preprocessing that crops first (inception training),
            decode only the crop window of JPEG records (`preprocess_fn.jpeg_fn`,
            `tf.image.decode_and_crop_jpeg`) and run the flip/colour arithmetic as one XLA
            function: the same crops and distortions for much less work; pixels next to the
            crop's edge can differ by a few levels from decoding the whole image. False
            decodes every image whole and runs slim's ops one by one.
        on_error: "raise" or "skip" bad records (see `Split.dataset`).

    Returns:
        `tf.data.Dataset` of `(images float32 [B, H, W, C], labels int64 [B])`.

    Example:
        >>> split = kslim.data.get_split("flowers", "train", "/data/flowers")
        >>> ds = kslim.data.input_pipeline(split, 32, "inception_v1", image_size=224,
        ...                                is_training=True, seed=0)
        >>> model.fit(ds, steps_per_epoch=split.num_samples // 32, epochs=10)
    """
    if isinstance(preprocess_fn, str):
        from kslim.preprocess import get_preprocessing

        preprocess_fn = get_preprocessing(preprocess_fn, is_training=is_training, use_grayscale=use_grayscale)
    size = _image_size(image_size, split)
    if preprocess_fn is not None and size is None:
        raise ValueError(
            f"image_size is required to preprocess {split.name} images, which have no fixed size"
        )
    shuffle = is_training if shuffle is None else shuffle
    drop_remainder = is_training if drop_remainder is None else drop_remainder
    if num_epochs is None and not is_training:
        num_epochs = 1
    # Unseeded shuffled input has no order to keep: let parallel calls finish out of order.
    deterministic = seed is not None or not shuffle
    seeded = preprocess_fn is not None and _accepts_seed(preprocess_fn)

    records = split.records(
        shuffle_files=shuffle,
        seed=seed,
        input_context=input_context,
        cycle_length=cycle_length if shuffle else 1,
        deterministic=deterministic,
        on_error=on_error,
    )
    if on_error == "skip":
        records = records.filter(split.skip_filter())
    if shuffle:
        buffer = shuffle_buffer_size or min(split.num_samples, max(1024, 16 * batch_size))
        records = records.shuffle(max(buffer, 1), seed=seed, reshuffle_each_iteration=True)
    if num_epochs != 1:
        records = records.repeat(num_epochs)

    jpeg_fn = getattr(preprocess_fn, "jpeg_fn", None) if crop_while_decoding and split.spec.channels == 3 else None

    def prepare(record, element_seed=None):
        path, index, serialized = record
        features = split.parse(serialized)
        with tf.control_dependencies(split.checks(path, index, features) if on_error == "raise" else []):
            if preprocess_fn is None:
                image = tf.cast(split.decode_image(features), tf.float32)
            else:
                kwargs = {} if element_seed is None else {"seed": element_seed}

                def decode_then_preprocess():
                    return preprocess_fn(split.decode_image(features), size[0], size[1], **kwargs)

                if jpeg_fn is None:
                    image = decode_then_preprocess()
                else:
                    image = tf.cond(
                        split.is_jpeg(features),
                        lambda: jpeg_fn(features["image/encoded"], size[0], size[1], **kwargs),
                        decode_then_preprocess,
                    )
        return image, split.label(features) - labels_offset

    if seeded:
        seeds = tf.data.Dataset.random(seed=seed).batch(2, drop_remainder=True)
        examples = tf.data.Dataset.zip(records, seeds).map(
            prepare, num_parallel_calls=num_parallel, deterministic=deterministic
        )
    else:
        examples = records.map(
            lambda *record: prepare(record), num_parallel_calls=num_parallel, deterministic=deterministic
        )
    if on_error == "skip":
        examples = examples.ignore_errors(log_warning=True)
    batches = examples.batch(batch_size, drop_remainder=drop_remainder)
    return batches.prefetch(prefetch)
