"""SSD post-processing, as SSD-Tensorflow's `SSDNet.detected_bboxes`
(`nets/ssd_common.py` `tf_ssd_bboxes_select`, `tf_extended/bboxes.py` `bboxes_sort`,
`bboxes_nms_batch`, `bboxes_clip`, `bboxes_resize`).

Per class c = 1..num_classes-1: scores below `select_threshold` (and their boxes) are
zeroed, the `top_k` highest are kept (sorted, lower anchor index first on ties, as
TF's `top_k`), then per image `tf.image.non_max_suppression` (the op the original
calls; no score threshold, so zero scores survive as padding) keeps up to
`keep_top_k`, zero-padded. All TF ops: usable in `tf.function` and in an exported
SavedModel.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["bboxes_clip", "bboxes_resize", "detected_bboxes", "merge_classes"]


def bboxes_clip(bbox_ref, bboxes):
    """Clips boxes `[..., 4]` to the reference box `[4]` (SSD-Tensorflow's
    `bboxes_clip`: max/min against the reference, then ymin <= ymax, xmin <= xmax).
    A dict `{class: boxes}` is clipped per entry."""
    if isinstance(bboxes, dict):
        return {key: bboxes_clip(bbox_ref, value) for key, value in bboxes.items()}
    ref = tf.cast(bbox_ref, tf.float32)
    bboxes = tf.convert_to_tensor(bboxes, tf.float32)
    ymin = tf.maximum(bboxes[..., 0], ref[..., 0:1] if ref.shape.rank > 1 else ref[0])
    xmin = tf.maximum(bboxes[..., 1], ref[..., 1:2] if ref.shape.rank > 1 else ref[1])
    ymax = tf.minimum(bboxes[..., 2], ref[..., 2:3] if ref.shape.rank > 1 else ref[2])
    xmax = tf.minimum(bboxes[..., 3], ref[..., 3:4] if ref.shape.rank > 1 else ref[3])
    ymin = tf.minimum(ymin, ymax)
    xmin = tf.minimum(xmin, xmax)
    return tf.stack([ymin, xmin, ymax, xmax], axis=-1)


def bboxes_resize(bbox_ref, bboxes):
    """Expresses boxes `[..., 4]` in the frame of the reference box (SSD-Tensorflow's
    `bboxes_resize`): `bbox_ref` becomes (0, 0, 1, 1). With the `bbox_img` the eval
    preprocessing returns, this maps boxes on the network input back to relative
    coordinates of the original image. A dict is resized per entry; `bbox_ref` may
    be `[4]` or one box per image `[B, 4]` for boxes `[B, K, 4]`."""
    if isinstance(bboxes, dict):
        return {key: bboxes_resize(bbox_ref, value) for key, value in bboxes.items()}
    ref = tf.cast(bbox_ref, tf.float32)
    bboxes = tf.convert_to_tensor(bboxes, tf.float32)
    if ref.shape.rank == 2:
        ref = ref[:, None, :]
    origin = tf.stack([ref[..., 0], ref[..., 1], ref[..., 0], ref[..., 1]], axis=-1)
    height, width = ref[..., 2] - ref[..., 0], ref[..., 3] - ref[..., 1]
    scale = tf.stack([height, width, height, width], axis=-1)
    return (bboxes - origin) / scale


def _nms_one(scores, bboxes, nms_threshold: float, keep_top_k: int):
    index = tf.image.non_max_suppression(bboxes, scores, keep_top_k, nms_threshold)
    count = tf.shape(index)[0]
    scores = tf.pad(tf.gather(scores, index), [[0, keep_top_k - count]])
    bboxes = tf.pad(tf.gather(bboxes, index), [[0, keep_top_k - count], [0, 0]])
    return scores, bboxes


def detected_bboxes(predictions, boxes, select_threshold: float = 0.01,
                    nms_threshold: float = 0.45, top_k: int = 400, keep_top_k: int = 200,
                    clipping_bbox=None, sorted_only: bool = False) -> dict:
    """Per-class detections from the flat SSD outputs.

    Args:
        predictions: `[B, N, num_classes]` class probabilities (softmax of the logits).
        boxes: `[B, N, 4]` decoded boxes (`decode(localisations, anchors)`).
        select_threshold: scores below it are zeroed (the original's `>=` rule;
            SSD-Tensorflow's eval uses 0.01).
        nms_threshold: IoU above which NMS suppresses a box of the same class.
        top_k: boxes per class kept before NMS (fewer when N is smaller).
        keep_top_k: boxes per class and image kept after NMS; the output is padded
            with zero scores and boxes to this size.
        clipping_bbox: None, or a box `[4]` (e.g. [0, 0, 1, 1]) the boxes are clipped
            to after NMS (as SSD-300's code; honoured for every net here, while
            SSD-512's own code ignored it).
        sorted_only: stop after the per-class sort (the first two steps), returning
            `[B, top_k]` scores and boxes.

    Returns:
        `{class_id: (scores [B, keep_top_k], bboxes [B, keep_top_k, 4])}` for class
        ids 1..num_classes-1, each sorted by decreasing score.
    """
    with tf.name_scope("detected_bboxes"):
        predictions = tf.convert_to_tensor(predictions, tf.float32)
        boxes = tf.convert_to_tensor(boxes, tf.float32)
        num_classes = predictions.shape[-1]
        if num_classes is None:
            raise ValueError("detected_bboxes: the class axis of predictions must have a "
                             "static size")
        count = predictions.shape[1]
        k = top_k if count is None else min(top_k, count)
        result = {}
        for c in range(1, num_classes):
            scores = predictions[:, :, c]
            keep = tf.cast(scores >= select_threshold, scores.dtype)
            scores = scores * keep
            selected = boxes * keep[..., None]
            scores, index = tf.math.top_k(scores, k=k, sorted=True)
            selected = tf.gather(selected, index, batch_dims=1)
            if sorted_only:
                result[c] = (scores, selected)
                continue
            scores, selected = tf.map_fn(
                lambda x: _nms_one(x[0], x[1], nms_threshold, keep_top_k),
                (scores, selected),
                fn_output_signature=(tf.TensorSpec([keep_top_k], tf.float32),
                                     tf.TensorSpec([keep_top_k, 4], tf.float32)))
            if clipping_bbox is not None:
                selected = bboxes_clip(clipping_bbox, selected)
            result[c] = (scores, selected)
        return result


def merge_classes(detections: dict, max_detections: int = 200) -> dict:
    """`detected_bboxes`' per-class dict as one list per image, best first:
    `{"boxes": [B, K, 4], "classes": [B, K] int64, "scores": [B, K],
    "num_detections": [B] int32}` with K = `max_detections`; entries past
    `num_detections` (those of score 0) are zero."""
    classes = sorted(detections)
    scores = tf.concat([detections[c][0] for c in classes], axis=1)
    bboxes = tf.concat([detections[c][1] for c in classes], axis=1)
    labels = tf.concat([tf.fill(tf.shape(detections[c][0]), tf.constant(c, tf.int64))
                        for c in classes], axis=1)
    k = min(max_detections, scores.shape[1]) if scores.shape[1] is not None else max_detections
    scores, index = tf.math.top_k(scores, k=k, sorted=True)
    found = scores > 0.0
    labels = tf.where(found, tf.gather(labels, index, batch_dims=1), tf.zeros_like(index, tf.int64))
    bboxes = tf.gather(bboxes, index, batch_dims=1) * tf.cast(found, tf.float32)[..., None]
    pad = max_detections - k
    if pad > 0:
        scores = tf.pad(scores, [[0, 0], [0, pad]])
        labels = tf.pad(labels, [[0, 0], [0, pad]])
        bboxes = tf.pad(bboxes, [[0, 0], [0, pad], [0, 0]])
    return {"boxes": bboxes, "classes": labels, "scores": scores,
            "num_detections": tf.reduce_sum(tf.cast(found, tf.int32), axis=1)}
