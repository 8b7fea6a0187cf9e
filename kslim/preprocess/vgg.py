"""VGG preprocessing: aspect-preserving resize, crop, per-channel mean subtraction.

Mirrors research/slim `preprocessing/vgg_preprocessing.py` (Simonyan & Zisserman,
"Very Deep Convolutional Networks for Large-Scale Image Recognition", 2014). Used by the
VGG and ResNet families. Output stays in the 0-255 scale, minus the ImageNet RGB means.

Eval: resize so that the smaller side is `resize_side_min` (256; sizes rounded with
`rint`, TF1 bilinear sampling), take the central `height x width` crop, subtract the means.

Train: the smaller side is drawn uniformly from [256, 512], a random `height x width`
crop, a random left-right flip, then the means.

Example:
    >>> fn = kslim.preprocess.get_preprocessing("resnet_v1_50")
    >>> x = fn(image_uint8, 224, 224)     # float32 [224, 224, 3], about -124..152
"""

from __future__ import annotations

import tensorflow as tf

from kslim.preprocess import _ops

__all__ = ["preprocess_image", "preprocess_for_train", "preprocess_for_eval", "MEANS"]

MEANS = (123.68, 116.78, 103.94)  # R, G, B
RESIZE_SIDE_MIN = 256
RESIZE_SIDE_MAX = 512


def _smallest_size_at_least(height, width, smallest_side):
    """New (height, width) with the smaller side equal to `smallest_side`, ratio kept."""
    height = tf.cast(height, tf.float32)
    width = tf.cast(width, tf.float32)
    smallest_side = tf.cast(smallest_side, tf.float32)
    scale = tf.where(height > width, smallest_side / width, smallest_side / height)
    new_height = tf.cast(tf.math.rint(height * scale), tf.int32)
    new_width = tf.cast(tf.math.rint(width * scale), tf.int32)
    return new_height, new_width


def _aspect_preserving_resize(image: tf.Tensor, smallest_side) -> tf.Tensor:
    shape = tf.shape(image)
    new_height, new_width = _smallest_size_at_least(shape[0], shape[1], smallest_side)
    return _ops.legacy_resize(image, [new_height, new_width], 0)


def _crop(image: tf.Tensor, offset_height, offset_width, crop_height: int, crop_width: int):
    shape = tf.shape(image)
    tf.debugging.assert_greater_equal(
        shape[:2], [crop_height, crop_width], message="Crop size greater than the image size."
    )
    return tf.slice(image, tf.stack([offset_height, offset_width, 0]), [crop_height, crop_width, -1])


def _subtract_means(image: tf.Tensor) -> tf.Tensor:
    channels = image.shape[-1]
    if channels == 1:
        # slim raises here (three means for one channel); kslim uses the means' luminance.
        means = tf.image.rgb_to_grayscale(tf.constant(MEANS, tf.float32))
    elif channels == len(MEANS):
        means = tf.constant(MEANS, tf.float32)
    else:
        raise ValueError(f"vgg preprocessing needs 1 or 3 channels, got image shape {image.shape}")
    return image - means


def preprocess_for_train(
    image: tf.Tensor,
    output_height: int,
    output_width: int,
    resize_side_min: int = RESIZE_SIDE_MIN,
    resize_side_max: int = RESIZE_SIDE_MAX,
    use_grayscale: bool = False,
    seed=None,
) -> tf.Tensor:
    """Random-scale, random-crop, flip, subtract means (slim's `preprocess_for_train`).

    Args:
        image: 3-D RGB image, any real dtype, 0-255 scale.
        output_height: crop height.
        output_width: crop width.
        resize_side_min: smallest value of the smaller side after resizing.
        resize_side_max: largest value (inclusive).
        use_grayscale: convert to one channel before the means.
        seed: `[2]` int seed; the same seed gives the same crop and flip.

    Returns:
        float32 `[output_height, output_width, 3]`.
    """
    side_seed, crop_seed, flip_seed = _ops.split_seed(seed, 3)
    resize_side = _ops.random_int(side_seed, resize_side_min, resize_side_max + 1)
    image = _aspect_preserving_resize(image, resize_side)
    shape = tf.shape(image)
    oy_seed, ox_seed = _ops.split_seed(crop_seed, 2)
    offset_height = _ops.random_int(oy_seed, 0, shape[0] - output_height + 1)
    offset_width = _ops.random_int(ox_seed, 0, shape[1] - output_width + 1)
    image = _crop(image, offset_height, offset_width, output_height, output_width)
    image.set_shape([output_height, output_width, image.shape[-1]])
    image = tf.cast(image, tf.float32)
    if use_grayscale:
        image = _ops.to_grayscale(image)
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    return _subtract_means(image)


def preprocess_for_eval(
    image: tf.Tensor,
    output_height: int,
    output_width: int,
    resize_side: int = RESIZE_SIDE_MIN,
    use_grayscale: bool = False,
) -> tf.Tensor:
    """Resize, central crop, subtract means (slim's `preprocess_for_eval`)."""
    image = _aspect_preserving_resize(image, resize_side)
    shape = tf.shape(image)
    offset_height = (shape[0] - output_height) // 2
    offset_width = (shape[1] - output_width) // 2
    image = _crop(image, offset_height, offset_width, output_height, output_width)
    image.set_shape([output_height, output_width, image.shape[-1]])
    image = tf.cast(image, tf.float32)
    if use_grayscale:
        image = _ops.to_grayscale(image)
    return _subtract_means(image)


def preprocess_image(
    image: tf.Tensor,
    output_height: int,
    output_width: int,
    is_training: bool = False,
    resize_side_min: int = RESIZE_SIDE_MIN,
    resize_side_max: int = RESIZE_SIDE_MAX,
    use_grayscale: bool = False,
    seed=None,
) -> tf.Tensor:
    """Preprocesses one image (slim's `preprocess_image`).

    In eval mode the smaller side is resized to `resize_side_min`; `resize_side_max` only
    matters in training, as in slim.
    """
    if is_training:
        return preprocess_for_train(
            image, output_height, output_width, resize_side_min, resize_side_max, use_grayscale, seed
        )
    return preprocess_for_eval(image, output_height, output_width, resize_side_min, use_grayscale)
