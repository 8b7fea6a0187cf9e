"""CifarNet preprocessing: pad-and-crop augmentation, per-image standardization.

Mirrors research/slim `preprocessing/cifarnet_preprocessing.py`.

Eval: float, `tf.image.resize_with_crop_or_pad` to the output size, then
`tf.image.per_image_standardization`.

Train: float, zero-pad 4 pixels on each side, a random `height x width` crop, random
left-right flip, brightness delta in [-63, 63), contrast factor in [0.2, 1.8), then
per-image standardization.

slim passes (width, height) to `resize_image_with_crop_or_pad` in that (swapped) order;
for the square sizes slim uses the result is the same, and kslim passes them the right
way round so that non-square sizes come out `[height, width]`.
"""

from __future__ import annotations

import tensorflow as tf

from kslim.preprocess import _ops

__all__ = ["preprocess_image", "preprocess_for_train", "preprocess_for_eval"]

PADDING = 4
BRIGHTNESS_DELTA = 63
CONTRAST = (0.2, 1.8)


def preprocess_for_train(
    image: tf.Tensor,
    output_height: int,
    output_width: int,
    padding: int = PADDING,
    use_grayscale: bool = False,
    seed=None,
) -> tf.Tensor:
    """Pad, random crop, flip, brightness, contrast, standardize (slim's train path).

    Args:
        image: 3-D image, 0-255 scale.
        output_height: crop height.
        output_width: crop width.
        padding: zero padding added before and after each spatial dimension.
        use_grayscale: convert to one channel first.
        seed: `[2]` int seed; the same seed gives the same distortions.

    Returns:
        float32 `[output_height, output_width, C]`, zero mean and unit variance.
    """
    crop_seed, flip_seed, brightness_seed, contrast_seed = _ops.split_seed(seed, 4)
    image = tf.cast(image, tf.float32)
    if use_grayscale:
        image = _ops.to_grayscale(image)
    if padding > 0:
        image = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    channels = image.shape[-1] if image.shape[-1] is not None else tf.shape(image)[-1]
    image = tf.image.stateless_random_crop(image, [output_height, output_width, channels], crop_seed)
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    image = tf.image.stateless_random_brightness(image, BRIGHTNESS_DELTA, brightness_seed)
    image = tf.image.stateless_random_contrast(image, *CONTRAST, contrast_seed)
    return tf.image.per_image_standardization(image)


def preprocess_for_eval(
    image: tf.Tensor, output_height: int, output_width: int, use_grayscale: bool = False
) -> tf.Tensor:
    """Crop or pad to the output size, then standardize (slim's eval path)."""
    image = tf.cast(image, tf.float32)
    if use_grayscale:
        image = _ops.to_grayscale(image)
    image = tf.image.resize_with_crop_or_pad(image, output_height, output_width)
    return tf.image.per_image_standardization(image)


def preprocess_image(
    image: tf.Tensor,
    output_height: int,
    output_width: int,
    is_training: bool = False,
    add_image_summaries: bool = True,
    use_grayscale: bool = False,
    seed=None,
) -> tf.Tensor:
    """Preprocesses one image (slim's `preprocess_image`).

    `add_image_summaries` is accepted for slim compatibility and ignored.
    """
    del add_image_summaries
    if is_training:
        return preprocess_for_train(image, output_height, output_width, use_grayscale=use_grayscale, seed=seed)
    return preprocess_for_eval(image, output_height, output_width, use_grayscale)
