"""Inception preprocessing: random crops and colour distortion, output in [-1, 1].

Mirrors research/slim `preprocessing/inception_preprocessing.py` (the tf_slim-era file,
with `crop_image` and `use_grayscale`). Used by the Inception, MobileNet, NASNet and
PNASNet families.

Eval: convert to float in [0, 1], crop the central 87.5% (`tf.image.central_crop`),
bilinear resize (TF1 sampling) to the output size, then `(x - 0.5) * 2`.

Train: a random crop from `tf.image.sample_distorted_bounding_box` (slim's parameters in
`DISTORTED_CROP`), resize (bilinear; in full mode one of the four TF1 resize methods at
random), random left-right flip, colour distortion in one of slim's orderings (fast mode:
brightness and saturation in one order; full mode: four orders of brightness, saturation,
hue and contrast), clip to [0, 1], then `(x - 0.5) * 2`.

Example:
    >>> fn = kslim.preprocess.get_preprocessing("inception_v3", is_training=False)
    >>> x = fn(tf.io.decode_jpeg(data, channels=3), 299, 299)   # float32 [299, 299, 3]
"""

from __future__ import annotations

import tensorflow as tf

from kslim.preprocess import _ops

__all__ = [
    "preprocess_image",
    "preprocess_for_train",
    "preprocess_for_eval",
    "distort_color",
    "distorted_bounding_box_crop",
    "preprocess_jpeg_for_train",
]

# tf.image.sample_distorted_bounding_box arguments of slim's distorted_bounding_box_crop.
DISTORTED_CROP = dict(
    min_object_covered=0.1,
    aspect_ratio_range=(0.75, 1.33),
    area_range=(0.05, 1.0),
    max_attempts=100,
)
CENTRAL_FRACTION = 0.875

_BRIGHTNESS_DELTA = 32.0 / 255.0
_SATURATION = (0.5, 1.5)
_HUE_DELTA = 0.2
_CONTRAST = (0.5, 1.5)

# slim's four colour orderings (full mode); fast mode uses the first two ops of ordering 0.
_COLOR_ORDERINGS = (
    ("brightness", "saturation", "hue", "contrast"),
    ("saturation", "brightness", "contrast", "hue"),
    ("contrast", "hue", "brightness", "saturation"),
    ("hue", "saturation", "contrast", "brightness"),
)


def _color_op(name: str, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    if name == "brightness":
        return tf.image.stateless_random_brightness(image, _BRIGHTNESS_DELTA, seed)
    if name == "saturation":
        # tf.image.stateless_random_saturation's draw, applied by the faster equivalent.
        factor = tf.random.stateless_uniform([], seed, *_SATURATION)
        return _ops.adjust_saturation(image, factor)
    if name == "hue":
        return tf.image.stateless_random_hue(image, _HUE_DELTA, seed)
    return tf.image.stateless_random_contrast(image, *_CONTRAST, seed)


def distort_color(image: tf.Tensor, color_ordering: int = 0, fast_mode: bool = True, seed=None):
    """Distorts the colours of a float image in [0, 1], as slim's `distort_color`.

    Args:
        image: 3-D float32 RGB image in [0, 1].
        color_ordering: 0-3, which of slim's orderings of the colour ops to apply.
        fast_mode: only brightness and saturation (ordering 0: brightness first, any
            other: saturation first), as slim.
        seed: `[2]` int seed for the stateless ops; None draws one.

    Returns:
        The distorted image, clipped to [0, 1].

    Raises:
        ValueError: if `color_ordering` is not in 0-3.
    """
    if color_ordering not in range(4):
        raise ValueError(f"color_ordering must be in [0, 3], got {color_ordering}")
    if fast_mode:
        ops = ("brightness", "saturation") if color_ordering == 0 else ("saturation", "brightness")
    else:
        ops = _COLOR_ORDERINGS[color_ordering]
    for name, op_seed in zip(ops, _ops.split_seed(seed, len(ops))):
        image = _color_op(name, image, op_seed)
    # The random_* ops do not clamp.
    return tf.clip_by_value(image, 0.0, 1.0)


def _sample_crop(image_shape, bbox, seed, **overrides):
    begin, size, distorted_bbox = tf.image.stateless_sample_distorted_bounding_box(
        image_shape,
        bounding_boxes=_whole_image_box() if bbox is None else bbox,
        seed=_ops.make_seed(seed),
        use_image_if_no_bounding_boxes=True,
        **{**DISTORTED_CROP, **overrides},
    )
    return begin, size, distorted_bbox


def _whole_image_box() -> tf.Tensor:
    return tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, shape=[1, 1, 4])


def distorted_bounding_box_crop(image: tf.Tensor, bbox, seed=None, **overrides):
    """A random crop that covers part of `bbox` (slim's `distorted_bounding_box_crop`).

    Args:
        image: 3-D image.
        bbox: `[1, num_boxes, 4]` float boxes `[ymin, xmin, ymax, xmax]` in [0, 1]; with no
            boxes (or None) the whole image is the box.
        seed: `[2]` int seed.
        **overrides: replace entries of `DISTORTED_CROP` (`min_object_covered`,
            `aspect_ratio_range`, `area_range`, `max_attempts`).

    Returns:
        `(cropped_image, distorted_bbox)`, the box as `[1, 1, 4]` normalized coordinates.
    """
    begin, size, distorted_bbox = _sample_crop(tf.shape(image), bbox, seed, **overrides)
    return tf.slice(image, begin, size), distorted_bbox


def _distort_crop(image, height, width, fast_mode, use_grayscale, seeds) -> tf.Tensor:
    """Everything slim's train path does after the crop: resize, flip, colour, scale."""
    resize_seed, flip_seed, order_seed, color_seed = seeds
    if image.dtype != tf.float32:
        image = tf.image.convert_image_dtype(image, tf.float32)
    methods = range(1 if fast_mode else 4)
    image = _ops.switch_on_random(
        resize_seed,
        [lambda m=m: _ops.legacy_resize(image, [height, width], m) for m in methods],
    )
    image.set_shape([height, width, 3])
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    orderings = range(1 if fast_mode else 4)
    image = _ops.switch_on_random(
        order_seed,
        [lambda o=o: distort_color(image, o, fast_mode, color_seed) for o in orderings],
    )
    if use_grayscale:
        image = _ops.to_grayscale(image)
    return (image - 0.5) * 2.0


def preprocess_for_train(
    image: tf.Tensor,
    height: int,
    width: int,
    bbox=None,
    fast_mode: bool = True,
    crop_image: bool = True,
    use_grayscale: bool = False,
    seed=None,
) -> tf.Tensor:
    """Distorts one image for training (slim's `preprocess_for_train`).

    Args:
        image: 3-D RGB image; integer images are scaled to [0, 1]
            (`tf.image.convert_image_dtype`), float images must already be in [0, 1].
        height: output height.
        width: output width.
        bbox: `[1, num_boxes, 4]` float boxes `[ymin, xmin, ymax, xmax]` in [0, 1] that the
            crop must overlap; None uses the whole image.
        fast_mode: bilinear resize only and brightness/saturation only (slim's default).
        crop_image: take the random distorted crop (slim's `random_crop`).
        use_grayscale: convert the result to one channel.
        seed: `[2]` int seed; the same seed gives the same distortions.

    Returns:
        float32 `[height, width, 3]` (or 1 channel) in [-1, 1].
    """
    crop_seed, *seeds = _ops.split_seed(seed, 5)
    if crop_image:
        # Cropping before the float conversion gives slim's pixels (the conversion is
        # elementwise) without converting the part of the image that is thrown away.
        image, _ = distorted_bounding_box_crop(image, bbox, crop_seed)
        image.set_shape([None, None, 3])
    return _distort_crop(image, height, width, fast_mode, use_grayscale, seeds)


def preprocess_jpeg_for_train(
    encoded: tf.Tensor,
    height: int,
    width: int,
    bbox=None,
    fast_mode: bool = True,
    crop_image: bool = True,
    use_grayscale: bool = False,
    seed=None,
) -> tf.Tensor:
    """`preprocess_for_train` on JPEG bytes, decoding only the random crop window.

    The crop is drawn from the size in the JPEG header and decoded with
    `tf.image.decode_and_crop_jpeg`, which skips most of the work for the discarded part of
    the image. Same seed, same crop and distortions as `preprocess_for_train` on the decoded
    image; pixels within a few rows or columns of the crop's edge can differ by a few
    levels, because JPEG chroma upsampling does not see the neighbours outside the window.

    Args:
        encoded: scalar string tensor, a JPEG file's bytes.
        (the rest as `preprocess_for_train`)
    """
    crop_seed, *seeds = _ops.split_seed(seed, 5)
    if crop_image:
        begin, size, _ = _sample_crop(tf.image.extract_jpeg_shape(encoded), bbox, crop_seed)
        window = tf.stack([begin[0], begin[1], size[0], size[1]])
        image = tf.image.decode_and_crop_jpeg(encoded, window, channels=3)
    else:
        image = tf.io.decode_jpeg(encoded, channels=3)
    return _distort_crop(image, height, width, fast_mode, use_grayscale, seeds)


def preprocess_for_eval(
    image: tf.Tensor,
    height: int | None,
    width: int | None,
    central_fraction: float | None = CENTRAL_FRACTION,
    central_crop: bool = True,
    use_grayscale: bool = False,
) -> tf.Tensor:
    """Prepares one image for evaluation (slim's `preprocess_for_eval`).

    Args:
        image: 3-D image; integer images are scaled to [0, 1].
        height: output height; with `width`, the bilinear resize target (None: no resize).
        width: output width.
        central_fraction: fraction of each side kept by the central crop.
        central_crop: apply the central crop.
        use_grayscale: convert the result to one channel.

    Returns:
        float32 image in [-1, 1].
    """
    if central_crop and central_fraction:
        # Before the (elementwise) float conversion: slim's pixels, less to convert.
        image = tf.image.central_crop(image, central_fraction=central_fraction)
    if image.dtype != tf.float32:
        image = tf.image.convert_image_dtype(image, tf.float32)
    if height and width:
        image = _ops.legacy_resize(image, [height, width], 0)
    if use_grayscale:
        image = _ops.to_grayscale(image)
    return (image - 0.5) * 2.0


def preprocess_image(
    image: tf.Tensor,
    height: int,
    width: int,
    is_training: bool = False,
    bbox=None,
    fast_mode: bool = True,
    add_image_summaries: bool = True,
    crop_image: bool = True,
    use_grayscale: bool = False,
    seed=None,
) -> tf.Tensor:
    """Preprocesses one image for training or evaluation (slim's `preprocess_image`).

    `add_image_summaries` is accepted for slim compatibility and ignored: kslim writes no
    summaries from inside `tf.data`. `seed` (`[2]` ints) only matters in training.
    """
    del add_image_summaries
    if is_training:
        return preprocess_for_train(
            image, height, width, bbox, fast_mode, crop_image, use_grayscale, seed
        )
    return preprocess_for_eval(image, height, width, central_crop=crop_image, use_grayscale=use_grayscale)
