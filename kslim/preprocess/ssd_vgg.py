"""SSD preprocessing: images *and* their boxes, as SSD-Tensorflow prepares them.

Mirrors balancap/SSD-Tensorflow `preprocessing/ssd_vgg_preprocessing.py` and the box
helpers of `preprocessing/tf_image.py` and `tf_extended/bboxes.py` (`bboxes_resize`,
`bboxes_filter_overlap`, `bboxes_crop_or_pad`). Images come out in the 0-255 scale minus
the RGB means (123, 117, 104), with no division; boxes are `(ymin, xmin, ymax, xmax)`
relative to the output image.

Eval (`preprocess_for_eval`): subtract the means first, then one of the four `Resize`
modes; the whole-image box `[0, 0, 1, 1]` goes through the same transform and comes back
as `bbox_img` (where the original image lies in the output frame, for `model.detect`).
`"pad_and_resize"` shrinks (never enlarges) to fit with floor-rounded sizes and pads
with zeros (= the mean colour); `"central_crop"` crops or pads to the output size;
`"warp_resize"` (the default) stretches. Resizing is TF1's `resize_images` (bilinear,
`align_corners=False`, `half_pixel_centers=False`).

Train (`preprocess_for_train`): a `sample_distorted_bounding_box` crop that covers at least
a quarter of some object (aspect 0.6-1.67, area 0.1-1, 200 attempts), boxes moved into
the crop and those with half or less of their area inside dropped (the survivors are not
clipped: the original does not clip them either), a warp resize to `out_shape`, a random
left-right flip, one of the four colour-distortion orderings, then the means. Every random
draw is stateless (`seed=`), so it runs inside a seeded, parallel `tf.data` pipeline.

Example:
    >>> fn = kslim.preprocess.get_preprocessing("ssd_vgg", is_training=False)
    >>> image, labels, bboxes, bbox_img = fn(image_uint8, labels, bboxes, out_shape=(300, 300))
"""

from __future__ import annotations

import tensorflow as tf

from kslim.preprocess import _ops, inception

__all__ = [
    "preprocess_image",
    "preprocess_for_train",
    "preprocess_for_eval",
    "bboxes_resize",
    "bboxes_filter_overlap",
    "bboxes_intersection",
    "resize_image_bboxes_with_crop_or_pad",
    "MEANS",
    "RESIZE_MODES",
    "EVAL_SIZE",
]

MEANS = (123.0, 117.0, 104.0)  # R, G, B (_R_MEAN, _G_MEAN, _B_MEAN)
EVAL_SIZE = (300, 300)
# SSD-Tensorflow's `Resize` enum, by value (NONE=1 ... WARP_RESIZE=4).
RESIZE_MODES = ("none", "central_crop", "pad_and_resize", "warp_resize")

BBOX_CROP_OVERLAP = 0.5  # a box survives a crop with more than this fraction inside
MIN_OBJECT_COVERED = 0.25
CROP_RATIO_RANGE = (0.6, 1.67)
CROP_AREA_RANGE = (0.1, 1.0)
CROP_MAX_ATTEMPTS = 200


def _resize_mode(resize) -> str:
    """Accepts the mode names, SSD-Tensorflow's enum values 1-4, or `Resize.X` names."""
    if isinstance(resize, int) and not isinstance(resize, bool) and 1 <= resize <= 4:
        return RESIZE_MODES[resize - 1]
    name = str(getattr(resize, "name", resize)).lower()
    if name not in RESIZE_MODES:
        raise ValueError(
            f"resize must be one of {', '.join(RESIZE_MODES)} (or SSD-Tensorflow's Resize 1-4), got {resize!r}"
        )
    return name


def _check_image(image: tf.Tensor) -> tf.Tensor:
    image = tf.convert_to_tensor(image)
    if image.shape.rank != 3:
        raise ValueError(f"ssd_vgg preprocessing takes one [height, width, channels] image, got shape {image.shape}")
    return image


def _boxes(bboxes) -> tf.Tensor:
    bboxes = tf.reshape(tf.cast(tf.convert_to_tensor(bboxes), tf.float32), [-1, 4])
    return bboxes


def _subtract_means(image: tf.Tensor) -> tf.Tensor:
    return image - tf.constant(MEANS, image.dtype)


def bboxes_resize(bbox_ref: tf.Tensor, bboxes: tf.Tensor) -> tf.Tensor:
    """Boxes relative to `bbox_ref` (which becomes `[0, 0, 1, 1]`), `tfe.bboxes_resize`."""
    v = tf.stack([bbox_ref[0], bbox_ref[1], bbox_ref[0], bbox_ref[1]])
    s = tf.stack([bbox_ref[2] - bbox_ref[0], bbox_ref[3] - bbox_ref[1]] * 2)
    return (bboxes - v) / s


def bboxes_intersection(bbox_ref: tf.Tensor, bboxes: tf.Tensor) -> tf.Tensor:
    """Area of each box inside `bbox_ref` over the box's area (0 for empty boxes)."""
    h = tf.maximum(tf.minimum(bboxes[:, 2], bbox_ref[2]) - tf.maximum(bboxes[:, 0], bbox_ref[0]), 0.0)
    w = tf.maximum(tf.minimum(bboxes[:, 3], bbox_ref[3]) - tf.maximum(bboxes[:, 1], bbox_ref[1]), 0.0)
    area = (bboxes[:, 2] - bboxes[:, 0]) * (bboxes[:, 3] - bboxes[:, 1])
    return tf.math.divide_no_nan(h * w, tf.maximum(area, 0.0))


def bboxes_filter_overlap(labels, bboxes, threshold: float = BBOX_CROP_OVERLAP, *others):
    """Keeps the boxes with more than `threshold` of their area inside `[0, 1]^2`.

    Args:
        labels: `[G]`.
        bboxes: `[G, 4]`.
        threshold: the fraction a box needs (strictly more).
        *others: more `[G, ...]` per-box tensors (difficult flags, ...) filtered alike.

    Returns:
        `(labels, bboxes, *others)` filtered.
    """
    keep = bboxes_intersection(tf.constant([0.0, 0.0, 1.0, 1.0]), bboxes) > threshold
    return tuple(tf.boolean_mask(t, keep) for t in (labels, bboxes) + tuple(others))


def _bboxes_crop_or_pad(bboxes, height, width, offset_y, offset_x, target_height, target_width):
    """`tf_image.bboxes_crop_or_pad`: to pixels, shift by the offset, to the new size."""
    scale = tf.cast(tf.stack([height, width, height, width]), bboxes.dtype)
    offset = tf.cast(tf.stack([offset_y, offset_x, offset_y, offset_x]), bboxes.dtype)
    target = tf.cast(tf.stack([target_height, target_width, target_height, target_width]), bboxes.dtype)
    return (bboxes * scale + offset) / target


def resize_image_bboxes_with_crop_or_pad(image, bboxes, target_height: int, target_width: int):
    """Centre-crops and/or zero-pads to the target size, moving the boxes along.

    `tf_image.resize_image_bboxes_with_crop_or_pad`: the crop offset is
    `max((size - target) // 2, 0)` and the pad offset `max((target - size) // 2, 0)`.
    """
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    width_diff = target_width - width
    height_diff = target_height - height
    crop_x = tf.maximum(-width_diff // 2, 0)
    pad_x = tf.maximum(width_diff // 2, 0)
    crop_y = tf.maximum(-height_diff // 2, 0)
    pad_y = tf.maximum(height_diff // 2, 0)
    crop_h = tf.minimum(target_height, height)
    crop_w = tf.minimum(target_width, width)
    image = tf.image.crop_to_bounding_box(image, crop_y, crop_x, crop_h, crop_w)
    bboxes = _bboxes_crop_or_pad(bboxes, height, width, -crop_y, -crop_x, crop_h, crop_w)
    image = tf.image.pad_to_bounding_box(image, pad_y, pad_x, target_height, target_width)
    bboxes = _bboxes_crop_or_pad(bboxes, crop_h, crop_w, pad_y, pad_x, target_height, target_width)
    return image, bboxes


def _resize(image: tf.Tensor, size) -> tf.Tensor:
    channels = image.shape[-1]
    resized = _ops.legacy_resize(image, size, 0)
    return tf.reshape(resized, tf.stack([size[0], size[1], channels if channels is not None else tf.shape(image)[2]]))


def preprocess_for_eval(
    image,
    labels,
    bboxes,
    out_shape=EVAL_SIZE,
    data_format: str = "NHWC",
    difficults=None,
    resize="warp_resize",
):
    """SSD-Tensorflow's `preprocess_for_eval`.

    Args:
        image: `[H, W, 3]` image (uint8 or float, 0-255).
        labels: `[G]` int labels.
        bboxes: `[G, 4]` relative (ymin, xmin, ymax, xmax), or None.
        out_shape: `(height, width)` of the output (ignored by `"none"`).
        data_format: "NHWC", or "NCHW" for a `[3, H, W]` image.
        difficults: `[G]` flags; when given, difficult objects are removed from the
            returned labels and boxes (SSD-Tensorflow's evaluation passes None and
            keeps them for its metric).
        resize: "none", "central_crop", "pad_and_resize" or "warp_resize" (or 1-4).

    Returns:
        `(image float32, labels [G'], bboxes [G', 4], bbox_img [4])`.
    """
    mode = _resize_mode(resize)
    image = _check_image(image)
    out_h, out_w = int(out_shape[0]), int(out_shape[1])
    with tf.name_scope("ssd_preprocessing_eval"):
        image = _subtract_means(tf.cast(image, tf.float32))
        bbox_img = tf.constant([[0.0, 0.0, 1.0, 1.0]])
        labels = tf.convert_to_tensor(labels) if labels is not None else tf.zeros([0], tf.int64)
        bboxes = bbox_img if bboxes is None else tf.concat([bbox_img, _boxes(bboxes)], axis=0)
        if mode == "central_crop":
            image, bboxes = resize_image_bboxes_with_crop_or_pad(image, bboxes, out_h, out_w)
        elif mode == "pad_and_resize":
            shape = tf.shape(image)
            size = tf.cast(shape[0:2], tf.float64)
            # Shrink to fit (never enlarge), computed in float64 and floored, as the original.
            factor = tf.minimum(
                tf.constant(1.0, tf.float64), tf.minimum(out_h / size[0], out_w / size[1])
            )
            resize_shape = tf.cast(tf.floor(factor * size), tf.int32)
            image = _resize(image, [resize_shape[0], resize_shape[1]])
            image, bboxes = resize_image_bboxes_with_crop_or_pad(image, bboxes, out_h, out_w)
        elif mode == "warp_resize":
            image = _resize(image, [out_h, out_w])
        bbox_img = bboxes[0]
        bboxes = bboxes[1:]
        if difficults is not None:
            keep = tf.logical_not(tf.cast(difficults, tf.bool))
            labels = tf.boolean_mask(labels, keep)
            bboxes = tf.boolean_mask(bboxes, keep)
        if data_format == "NCHW":
            image = tf.transpose(image, (2, 0, 1))
        return image, labels, bboxes, bbox_img


def preprocess_for_train(
    image,
    labels,
    bboxes,
    out_shape=EVAL_SIZE,
    data_format: str = "NHWC",
    seed=None,
    fast_mode: bool = False,
):
    """SSD-Tensorflow's `preprocess_for_train` (crop, box filter, resize, flip, colour).

    Args:
        image: `[H, W, 3]` uint8 (or float in [0, 1]) image.
        labels: `[G]` int labels.
        bboxes: `[G, 4]` relative boxes inside `[0, 1]` (the crop sampler requires it;
            others stop with an error showing them).
        out_shape: `(height, width)` of the output.
        data_format: "NHWC" or "NCHW".
        seed: `[2]` int seed for every random draw (None: a fresh one each call).
        fast_mode: brightness and saturation only (the original hard-codes False).

    Returns:
        `(image float32 [out_h, out_w, 3], labels [G'], bboxes [G', 4])`.
    """
    image = _check_image(image)
    out_h, out_w = int(out_shape[0]), int(out_shape[1])
    crop_seed, flip_seed, order_seed, color_seed = _ops.split_seed(seed, 4)
    with tf.name_scope("ssd_preprocessing_train"):
        if image.dtype != tf.float32:
            image = tf.image.convert_image_dtype(image, tf.float32)
        labels = tf.convert_to_tensor(labels)
        bboxes = _boxes(bboxes)
        inside = tf.reduce_all((bboxes >= 0.0) & (bboxes <= 1.0))
        check = tf.debugging.Assert(
            inside,
            ["ssd_vgg training preprocessing: boxes must lie in [0, 1] (ymin, xmin, ymax, xmax); got", bboxes],
            summarize=40,
        )
        with tf.control_dependencies([check]):
            bboxes = tf.identity(bboxes)
        begin, size, distort_bbox = tf.image.stateless_sample_distorted_bounding_box(
            tf.shape(image),
            bounding_boxes=bboxes[None],
            seed=crop_seed,
            min_object_covered=MIN_OBJECT_COVERED,
            aspect_ratio_range=CROP_RATIO_RANGE,
            area_range=CROP_AREA_RANGE,
            max_attempts=CROP_MAX_ATTEMPTS,
            use_image_if_no_bounding_boxes=True,
        )
        channels = image.shape[-1]
        image = tf.slice(image, begin, size)
        image.set_shape([None, None, channels])  # the dynamic slice loses it
        bboxes = bboxes_resize(distort_bbox[0, 0], bboxes)
        labels, bboxes = bboxes_filter_overlap(labels, bboxes, BBOX_CROP_OVERLAP)
        image = _resize(image, [out_h, out_w])
        # tf_image.random_flip_left_right: image and boxes flipped together.
        flip = tf.random.stateless_uniform([], flip_seed) < 0.5
        image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
        flipped = tf.stack([bboxes[:, 0], 1.0 - bboxes[:, 3], bboxes[:, 2], 1.0 - bboxes[:, 1]], axis=-1)
        bboxes = tf.where(flip, flipped, bboxes)
        image = _ops.switch_on_random(
            order_seed,
            [
                lambda o=o: inception.distort_color(image, o, fast_mode=fast_mode, seed=color_seed)
                for o in range(4)
            ],
        )
        image = _subtract_means(image * 255.0)
        if data_format == "NCHW":
            image = tf.transpose(image, (2, 0, 1))
        return image, labels, bboxes


def preprocess_image(
    image, labels, bboxes, out_shape=EVAL_SIZE, data_format: str = "NHWC", is_training: bool = False, **kwargs
):
    """SSD-Tensorflow's `preprocess_image`: the train or eval transform.

    Train keyword arguments: `seed`, `fast_mode`. Eval: `difficults`, `resize`.
    """
    if is_training:
        return preprocess_for_train(image, labels, bboxes, out_shape, data_format, **kwargs)
    return preprocess_for_eval(image, labels, bboxes, out_shape, data_format, **kwargs)
