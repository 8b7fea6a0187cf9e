"""LeNet preprocessing: crop or pad to size, then `(x - 128) / 128`.

Mirrors research/slim `preprocessing/lenet_preprocessing.py`; training and evaluation are
the same (no augmentation). As in `cifarnet`, slim swaps height and width in its
`resize_image_with_crop_or_pad` call; kslim passes them in order (same result for the
square sizes slim uses).
"""

from __future__ import annotations

import tensorflow as tf

from kslim.preprocess import _ops

__all__ = ["preprocess_image"]


def preprocess_image(
    image: tf.Tensor,
    output_height: int,
    output_width: int,
    is_training: bool = False,
    use_grayscale: bool = False,
    seed=None,
) -> tf.Tensor:
    """Preprocesses one image for LeNet.

    Args:
        image: 3-D image, 0-255 scale (MNIST: `[28, 28, 1]` uint8).
        output_height: output height.
        output_width: output width.
        is_training: unused; LeNet has no augmentation.
        use_grayscale: convert an RGB image to one channel first.
        seed: unused; accepted so that every kslim preprocessing function takes it.

    Returns:
        float32 `[output_height, output_width, C]` in about [-1, 1).
    """
    del is_training, seed
    image = tf.cast(image, tf.float32)
    if use_grayscale:
        image = _ops.to_grayscale(image)
    image = tf.image.resize_with_crop_or_pad(image, output_height, output_width)
    return (image - 128.0) / 128.0
