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

# The ranges of slim's random colour ops: each draws one value uniformly from its range.
_COLOR_RANGES = {
    "brightness": (-32.0 / 255.0, 32.0 / 255.0),
    "saturation": (0.5, 1.5),
    "hue": (-0.2, 0.2),
    "contrast": (0.5, 1.5),
}

# slim's four colour orderings (full mode); fast mode uses the first two ops of ordering 0.
_COLOR_ORDERINGS = (
    ("brightness", "saturation", "hue", "contrast"),
    ("saturation", "brightness", "contrast", "hue"),
    ("contrast", "hue", "brightness", "saturation"),
    ("hue", "saturation", "contrast", "brightness"),
)


def _color_ops(color_ordering: int, fast_mode: bool) -> tuple[str, ...]:
    if color_ordering not in range(4):
        raise ValueError(f"color_ordering must be in [0, 3], got {color_ordering}")
    if fast_mode:
        return ("brightness", "saturation") if color_ordering == 0 else ("saturation", "brightness")
    return _COLOR_ORDERINGS[color_ordering]


def _draw_colors(ops, seed) -> list[tf.Tensor]:
    """The values `tf.image.stateless_random_{brightness,...}` would draw for `ops`."""
    return [
        tf.random.stateless_uniform([], op_seed, *_COLOR_RANGES[name])
        for name, op_seed in zip(ops, _ops.split_seed(seed, len(ops)))
    ]


def _apply_colors(image: tf.Tensor, ops, values) -> tf.Tensor:
    """`tf.image.adjust_{brightness,saturation,hue,contrast}` in order, then clip to [0, 1]."""
    for name, value in zip(ops, values):
        if name == "brightness":
            image = image + value
        elif name == "saturation":
            image = _ops.adjust_saturation(image, value)
        elif name == "hue":
            image = tf.image.adjust_hue(image, value)
        else:
            image = tf.image.adjust_contrast(image, value)
    # The random_* ops do not clamp.
    return tf.clip_by_value(image, 0.0, 1.0)


def distort_color(image: tf.Tensor, color_ordering: int = 0, fast_mode: bool = True, seed=None):
    """Distorts the colours of a float image in [0, 1], as slim's `distort_color`.

    Args:
        image: 3-D float32 RGB image in [0, 1].
        color_ordering: 0-3, which of slim's orderings of the colour ops to apply.
        fast_mode: only brightness and saturation (ordering 0: brightness first, any
            other: saturation first), as slim.
        seed: `[2]` int seed; each op draws its value as `tf.image.stateless_random_*`.

    Returns:
        The distorted image, clipped to [0, 1].

    Raises:
        ValueError: if `color_ordering` is not in 0-3.
    """
    ops = _color_ops(color_ordering, fast_mode)
    return _apply_colors(image, ops, _draw_colors(ops, seed))


def _flip_colors_scale(image, flip, ops, values, use_grayscale):
    """slim's train path after the resize, on values drawn beforehand."""
    image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
    image = _apply_colors(image, ops, values)
    if use_grayscale:
        image = _ops.to_grayscale(image)
    return (image - 0.5) * 2.0


# The same, compiled with XLA: one fused loop instead of a dozen passes over the image
# (three times faster on CPU). Only arithmetic: the random values come from outside.
_flip_colors_scale_xla = tf.function(_flip_colors_scale, jit_compile=True, reduce_retracing=True)


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


def _distort_crop(image, height, width, fast_mode, use_grayscale, seeds, jit_compile=False) -> tf.Tensor:
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
    # tf.image.stateless_random_flip_left_right's draw.
    flip = tf.random.stateless_uniform([], flip_seed) < 0.5
    finish = _flip_colors_scale_xla if jit_compile else _flip_colors_scale

    def ordering(o):
        ops = _color_ops(o, fast_mode)
        return finish(image, flip, ops, _draw_colors(ops, color_seed), use_grayscale)

    return _ops.switch_on_random(order_seed, [lambda o=o: ordering(o) for o in range(1 if fast_mode else 4)])


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
    the image, and the flip, colour and scaling arithmetic runs as one XLA-compiled
    function. Same seed, same crop and distortions as `preprocess_for_train` on the decoded
    image; pixels within a few rows or columns of the crop's edge can differ by a few
    levels, because JPEG chroma upsampling does not see the neighbours outside the window,
    and elsewhere by float rounding (about 1e-6).

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
    return _distort_crop(image, height, width, fast_mode, use_grayscale, seeds, jit_compile=True)


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
