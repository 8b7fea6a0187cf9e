"""SSD box encoding (matching) and decoding, as SSD-Tensorflow's `nets/ssd_common.py`
(`tf_ssd_bboxes_encode_layer`, `tf_ssd_bboxes_decode_layer`).

Boxes are `(ymin, xmin, ymax, xmax)` relative to the image; box offsets are
`(cx, cy, w, h)` (x before y, SSD-Caffe's order). Everything is TF ops on flat
tensors (anchors in the order layer, y, x, anchor), so `encode` runs inside a
`tf.data` map and both run inside `tf.function` and export.

`prior_scaling` index convention (kept from SSD-Tensorflow; it only matters when the
four factors are not pairwise equal, as they are in the default (0.1, 0.1, 0.2, 0.2)):
`encode` divides cy by `prior_scaling[0]`, cx by `[1]`, h by `[2]`, w by `[3]`, while
`decode` multiplies cx by `prior_scaling[0]`, cy by `[1]`, w by `[2]`, h by `[3]`. So
with unequal factors `decode(encode(box))` is not the box; this is the original's
behaviour, which trained checkpoints depend on.
"""

from __future__ import annotations

import tensorflow as tf

from kslim.detection.anchors import flat_anchors

__all__ = ["decode", "encode", "jaccard_with_anchors"]

PRIOR_SCALING = (0.1, 0.1, 0.2, 0.2)


def _anchor_corners(anchors):
    """Flat anchor centres/sizes and corners, in numpy float32 like the original."""
    yref, xref, href, wref = flat_anchors(anchors)
    ymin, xmin = yref - href / 2.0, xref - wref / 2.0
    ymax, xmax = yref + href / 2.0, xref + wref / 2.0
    volume = (xmax - xmin) * (ymax - ymin)
    return (yref, xref, href, wref), (ymin, xmin, ymax, xmax), volume


def jaccard_with_anchors(bboxes, anchors):
    """IoU `[G, N]` of boxes `[G, 4]` with every anchor (SSD-Tensorflow's
    `jaccard_with_anchors`, for all ground-truth boxes at once)."""
    _, (ymin, xmin, ymax, xmax), volume = _anchor_corners(anchors)
    return _jaccard(tf.convert_to_tensor(bboxes, tf.float32), ymin, xmin, ymax, xmax, volume)


def _jaccard(bboxes, ymin, xmin, ymax, xmax, volume):
    b = bboxes[:, :, None]  # [G, 4, 1] against [N] anchors
    h = tf.maximum(tf.minimum(ymax, b[:, 2]) - tf.maximum(ymin, b[:, 0]), 0.0)
    w = tf.maximum(tf.minimum(xmax, b[:, 3]) - tf.maximum(xmin, b[:, 1]), 0.0)
    inter = h * w
    union = volume - inter + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / union


def encode(labels, bboxes, anchors, num_classes: int,
           prior_scaling=PRIOR_SCALING, invalid_labels: str = "error"):
    """One image's ground truth as SSD targets (SSD-Tensorflow's matching).

    Each anchor takes the ground-truth box of highest IoU with it (the first one on
    ties), if that IoU is above 0; there is no IoU threshold here (the loss applies
    `match_threshold` to the returned scores), no "best anchor for every box" step
    (SSD-Tensorflow issues #71, #80), and matching is independent per layer (done here
    on all layers at once, which gives the same result). Unmatched anchors get label
    0, score 0 and the encoded box (0, 0, 1, 1), as in the original.

    Args:
        labels: `[G]` int ground-truth classes (1..num_classes-1; 0 is background).
        bboxes: `[G, 4]` float boxes (ymin, xmin, ymax, xmax), relative.
        anchors: per-layer `(y, x, h, w)` as `model.anchors()` / `ssd_anchors` give.
        num_classes: classes of the net, background included.
        prior_scaling: the four variances; see the module docstring for the index
            convention.
        invalid_labels: labels outside [0, num_classes): "error" (default) fails with
            an InvalidArgumentError naming the label; "ignore" drops those boxes from
            the matching (SSD-Tensorflow silently drops labels >= num_classes).

    Returns:
        `(labels [N] int64, localisations [N, 4] float32 (cx, cy, w, h), scores [N]
        float32)`: per anchor its matched class, encoded offsets and IoU.
    """
    if invalid_labels not in ("error", "ignore"):
        raise ValueError(f"encode: invalid_labels must be 'error' or 'ignore', got "
                         f"{invalid_labels!r}")
    with tf.name_scope("ssd_bboxes_encode"):
        labels = tf.cast(tf.convert_to_tensor(labels), tf.int64)
        bboxes = tf.cast(tf.convert_to_tensor(bboxes), tf.float32)
        bboxes = tf.reshape(bboxes, [-1, 4])
        labels = tf.reshape(labels, [-1])
        checks = []
        if invalid_labels == "error":
            checks = [
                tf.debugging.assert_less(
                    labels, tf.constant(num_classes, tf.int64),
                    message=f"encode: a ground-truth label is >= num_classes={num_classes}; "
                            "fix the label map or build the net with more classes"),
                tf.debugging.assert_non_negative(
                    labels, message="encode: a ground-truth label is negative")]
        # Inverted or non-finite boxes would give meaningless IoUs; a zero-area box is
        # valid and simply matches no anchor (IoU 0). Boxes beyond the image are used
        # as they are (SSD-Tensorflow does not clip them).
        bboxes = tf.debugging.check_numerics(bboxes, "encode: ground-truth boxes")
        checks += [
            tf.debugging.assert_less_equal(
                bboxes[:, 0], bboxes[:, 2],
                message="encode: a ground-truth box has ymin > ymax; boxes are (ymin, "
                        "xmin, ymax, xmax)"),
            tf.debugging.assert_less_equal(
                bboxes[:, 1], bboxes[:, 3],
                message="encode: a ground-truth box has xmin > xmax; boxes are (ymin, "
                        "xmin, ymax, xmax)")]
        with tf.control_dependencies(checks):
            labels, bboxes = tf.identity(labels), tf.identity(bboxes)
        (yref, xref, href, wref), corners, volume = _anchor_corners(anchors)
        jaccard = _jaccard(bboxes, *corners, volume)  # [G, N]
        # The original loops over the boxes and overwrites where IoU > the best so far
        # (strictly), starting from 0, skipping labels >= num_classes: the result is
        # the first box of highest IoU, where that IoU is above 0.
        valid = (labels < num_classes) & (labels >= 0)
        jaccard = tf.where(valid[:, None], jaccard, tf.zeros_like(jaccard))
        count = tf.shape(labels, out_type=tf.int64)[0]
        scores = tf.reduce_max(tf.concat([tf.zeros([1, yref.shape[0]]), jaccard], 0), 0)
        order = tf.range(count)[:, None]
        first = tf.reduce_min(tf.where(tf.equal(jaccard, scores) & (jaccard > 0.0),
                                       order, count), axis=0)  # [N]
        # Index `count` (one past the boxes) stands for "no match": label 0, box (0,0,1,1).
        index = tf.minimum(first, count)
        target_labels = tf.gather(tf.concat([labels, tf.zeros([1], tf.int64)], 0), index)
        default = tf.constant([0.0, 0.0, 1.0, 1.0])
        boxes = tf.gather(tf.concat([bboxes, default[None]], 0), index)
        ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
        cy, cx = (ymax + ymin) / 2.0, (xmax + xmin) / 2.0
        h, w = ymax - ymin, xmax - xmin
        localisations = tf.stack([
            (cx - xref) / wref / prior_scaling[1],
            (cy - yref) / href / prior_scaling[0],
            tf.math.log(w / wref) / prior_scaling[3],
            tf.math.log(h / href) / prior_scaling[2],
        ], axis=-1)
        return target_labels, localisations, scores


def decode(localisations, anchors, prior_scaling=PRIOR_SCALING):
    """Box offsets `[..., N, 4]` (cx, cy, w, h) -> boxes `[..., N, 4]` (ymin, xmin,
    ymax, xmax), relative (SSD-Tensorflow's `tf_ssd_bboxes_decode`; see the module
    docstring for its `prior_scaling` indices)."""
    with tf.name_scope("ssd_bboxes_decode"):
        yref, xref, href, wref = flat_anchors(anchors)
        loc = tf.convert_to_tensor(localisations, tf.float32)
        if loc.shape[-2] is not None and loc.shape[-2] != yref.shape[0]:
            raise ValueError(f"decode: localisations have {loc.shape[-2]} anchors, the "
                             f"anchors {yref.shape[0]}; use the anchors of the model "
                             "that produced them (model.anchors())")
        cx = loc[..., 0] * wref * prior_scaling[0] + xref
        cy = loc[..., 1] * href * prior_scaling[1] + yref
        w = wref * tf.exp(loc[..., 2] * prior_scaling[2])
        h = href * tf.exp(loc[..., 3] * prior_scaling[3])
        return tf.stack([cy - h / 2.0, cx - w / 2.0, cy + h / 2.0, cx + w / 2.0], axis=-1)
