"""Pascal VOC average precision, as SSD-Tensorflow's evaluation computes it.

Mirrors balancap/SSD-Tensorflow `tf_extended/bboxes.py` (`bboxes_jaccard`,
`bboxes_matching`, `bboxes_matching_batch`) and `tf_extended/metrics.py`
(`streaming_tp_fp_arrays`, `precision_recall`, `average_precision_voc07`,
`average_precision_voc12`), as `eval_ssd_network.py` chains them. The pure functions
work on numpy arrays (tensors are converted) in the original's dtypes: boxes and IoU in
float32, precision/recall/AP in float64, so the true/false-positive flags are the
original's bit for bit and the APs agree to float64 rounding.

Two rules for difficult objects, chosen by `rule=`:

* `"ssd_tf"` (default, parity): SSD-Tensorflow's matching. Each detection, in the order
  given, takes the ground truth of its class with the largest IoU (relative coordinates,
  no +1 pixel); IoU > threshold and not yet matched: true positive; otherwise false
  positive; if that ground truth is difficult, neither. Its quirks are kept: when no
  ground truth of the class overlaps at all, `argmax` picks ground truth #0 of the image
  (any class, even padding) and *its* difficult flag decides, so such a false positive
  disappears when object #0 is difficult; and a best match that is difficult but below the
  threshold is ignored instead of counted as a false positive. Detections with score
  <= 1e-4 are dropped (`streaming_tp_fp_arrays(remove_zero_scores=True)`).
* `"voc"`: the VOC devkit's `VOCevaldet.m`. Detections of an image are matched in
  decreasing score; IoU >= threshold with the best ground truth of the class: difficult ->
  ignored, else true positive (first time) or false positive (duplicate); below the
  threshold -> false positive, whatever the difficult flags. Zero-score entries (padding)
  are dropped. IoU is still on relative coordinates without the devkit's +1 pixel.

Both count only non-difficult ground truth in the recall's denominator, and both give the
VOC2007 11-point AP and the VOC2010+ area AP.

Example:
    >>> metric = kslim.detection.VOCMetric(21)
    >>> for images, gt_labels, gt_bboxes, gt_difficults in eval_batches:
    ...     detections = kslim.detection.detected_bboxes(probs, boxes, 0.01, 0.45)
    ...     metric.update(detections, gt_labels, gt_bboxes, gt_difficults)
    >>> metric.result()["AP_VOC07/mAP"]
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

__all__ = [
    "VOCMetric",
    "bboxes_jaccard",
    "bboxes_matching",
    "precision_recall",
    "average_precision_voc07",
    "average_precision_voc12",
    "RULES",
]

RULES = ("ssd_tf", "voc")

# streaming_tp_fp_arrays' rm_threshold (compared in float32).
_SCORE_FLOOR = np.float32(1e-4)


def _numpy(x) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def bboxes_jaccard(bbox: np.ndarray, gbboxes: np.ndarray) -> np.ndarray:
    """IoU of box(es) with each of `gbboxes`, float32, as `tfe.bboxes_jaccard`.

    Args:
        bbox: `[4]` (ymin, xmin, ymax, xmax), or `[K, 4]` for a `[K, G]` result.
        gbboxes: `[G, 4]`.

    Returns:
        `[G]` (or `[K, G]`) float32; 0 where the union is not positive.
    """
    ref = np.asarray(bbox, np.float32)[..., None, :]  # [(K,) 1, 4]
    boxes = np.asarray(gbboxes, np.float32).reshape(-1, 4)
    h = np.maximum(np.minimum(boxes[:, 2], ref[..., 2]) - np.maximum(boxes[:, 0], ref[..., 0]), np.float32(0))
    w = np.maximum(np.minimum(boxes[:, 3], ref[..., 3]) - np.maximum(boxes[:, 1], ref[..., 1]), np.float32(0))
    inter = h * w
    # The original's evaluation order: -inter + vol(gt) + vol(ref), in float32.
    vol = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = -inter + vol + (ref[..., 2] - ref[..., 0]) * (ref[..., 3] - ref[..., 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        jaccard = np.where(union > 0, inter / union, np.float32(0)).astype(np.float32)
    return jaccard.reshape(jaccard.shape[:-2] + jaccard.shape[-1:]) if np.ndim(bbox) == 1 else jaccard


def bboxes_matching(
    label: int,
    scores,
    bboxes,
    glabels,
    gbboxes,
    gdifficults=None,
    matching_threshold: float = 0.5,
    rule: str = "ssd_tf",
) -> tuple[np.int64, np.ndarray, np.ndarray]:
    """True and false positives of one image's detections of class `label`.

    `tfe.bboxes_matching` for `rule="ssd_tf"`; the devkit's assignment for `rule="voc"`
    (see the module doc).

    Args:
        label: the class of the detections.
        scores: `[K]` detection scores (zero-padded).
        bboxes: `[K, 4]` detected boxes, relative (ymin, xmin, ymax, xmax).
        glabels: `[G]` ground-truth labels (0 = padding).
        gbboxes: `[G, 4]` ground-truth boxes.
        gdifficults: `[G]` difficult flags (None: none difficult).
        matching_threshold: the IoU a match needs (ssd_tf: strictly more; voc: at least).
        rule: "ssd_tf" or "voc".

    Returns:
        `(n_gbboxes, tp, fp)`: the number of non-difficult ground truths of the class
        (int64), and `[K]` bool arrays.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    scores = np.asarray(scores, np.float32).reshape(-1)
    bboxes = np.asarray(bboxes, np.float32).reshape(-1, 4)
    glabels = np.asarray(glabels).reshape(-1)
    gbboxes = np.asarray(gbboxes, np.float32).reshape(-1, 4)
    if gdifficults is None:
        gdifficults = np.zeros(glabels.shape, bool)
    gdifficults = np.asarray(gdifficults).reshape(-1).astype(bool)
    same = glabels == label
    n_gbboxes = np.int64(np.count_nonzero(same & ~gdifficults))
    size = len(scores)
    tp = np.zeros(size, bool)
    fp = np.zeros(size, bool)
    if not len(glabels):  # no ground truth at all (the original's argmax would fail here)
        fp[scores > 0 if rule == "voc" else slice(None)] = True
        return n_gbboxes, tp, fp
    jaccard = bboxes_jaccard(bboxes, gbboxes) * same.astype(np.float32)  # [K, G]
    best = np.argmax(jaccard, axis=1)  # the first of equal maxima, as tf.argmax
    best_iou = jaccard[np.arange(size), best]
    threshold = np.float32(matching_threshold)
    gmatch = np.zeros(glabels.shape, bool)
    # Only a detection over the threshold can take a ground truth, so only those are walked
    # one by one, in the rule's order; the others are decided at once.
    if rule == "ssd_tf":
        match = best_iou > threshold
        counted = ~gdifficults[best]
        fp[~match] = counted[~match]
        order = np.flatnonzero(match)
    else:
        match = (best_iou >= threshold) & same[best] & (scores > 0)
        fp[~match & (scores > 0)] = True
        order = [i for i in np.argsort(-scores, kind="stable") if match[i]]
    for i in order:
        g = best[i]
        if gdifficults[g]:
            continue  # neither true nor false positive
        tp[i] = not gmatch[g]
        fp[i] = gmatch[g]
        gmatch[g] = True
    return n_gbboxes, tp, fp


def precision_recall(num_gbboxes, num_detections, tp, fp, scores) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall along decreasing score, float64 (`tfe.precision_recall`).

    Ties keep the stream order (`tf.nn.top_k` puts the lower index first).

    Returns:
        `(precision, recall)`, each `[num_detections]`; 0 where the denominator is 0.
    """
    scores = np.asarray(scores, np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")[: int(num_detections)]
    tp = np.cumsum(np.asarray(tp, bool).reshape(-1)[order].astype(np.float64))
    fp = np.cumsum(np.asarray(fp, bool).reshape(-1)[order].astype(np.float64))
    n = np.float64(num_gbboxes)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = tp / n if n > 0 else np.zeros_like(tp)
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
    return precision, recall


def average_precision_voc07(precision, recall) -> float:
    """VOC2007 11-point interpolated AP (`tfe.average_precision_voc07`).

    The thresholds are `np.arange(0., 1.1, 0.1)` (0.30000000000000004, ... as the original).
    """
    precision = np.concatenate([np.asarray(precision, np.float64).reshape(-1), [0.0]])
    recall = np.concatenate([np.asarray(recall, np.float64).reshape(-1), [np.inf]])
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        ap += precision[recall >= t].max() / 11.0
    return float(ap)


def average_precision_voc12(precision, recall) -> float:
    """VOC2010+ AP: the area under the monotone precision envelope (`..._voc12`)."""
    precision = np.concatenate([[0.0], np.asarray(precision, np.float64).reshape(-1), [0.0]])
    recall = np.concatenate([[0.0], np.asarray(recall, np.float64).reshape(-1), [1.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(precision[1:] * (recall[1:] - recall[:-1])))


class VOCMetric:
    """Streaming Pascal VOC mAP over batches of detections (`eval_ssd_network.py`'s metric).

    Args:
        num_classes: classes of the net, background (0) included; classes
            1..num_classes-1 can be scored.
        matching_threshold: IoU for a true positive (0.5).
        rule: "ssd_tf" (SSD-Tensorflow's matching, the default) or "voc" (the VOC
            devkit's handling of difficult objects); see the module doc.

    Example:
        >>> metric = VOCMetric(21)
        >>> metric.update(model_detections, gt_labels, gt_bboxes, gt_difficults)
        >>> metric.result()["AP_VOC12/mAP"]
    """

    def __init__(self, num_classes: int, matching_threshold: float = 0.5, rule: str = "ssd_tf"):
        if rule not in RULES:
            raise ValueError(f"VOCMetric rule must be one of {RULES}, got {rule!r}")
        if int(num_classes) < 2:
            raise ValueError(f"VOCMetric needs num_classes >= 2 (background + one class), got {num_classes}")
        self.num_classes = int(num_classes)
        self.matching_threshold = float(matching_threshold)
        self.rule = rule
        self.reset()

    def reset(self) -> None:
        """Forgets every update."""
        self._streams: dict[int, dict] = {}
        self.num_images = 0

    def _check_gt(self, gt_labels, gt_bboxes, gt_difficults):
        labels = _numpy(gt_labels).astype(np.int64)
        bboxes = _numpy(gt_bboxes).astype(np.float32)
        if labels.ndim != 2 or bboxes.shape != labels.shape + (4,):
            raise ValueError(
                f"VOCMetric.update: gt_labels must be [B, G] and gt_bboxes [B, G, 4], got "
                f"{labels.shape} and {bboxes.shape}"
            )
        if gt_difficults is None:
            difficults = np.zeros(labels.shape, bool)
        else:
            difficults = _numpy(gt_difficults).astype(bool)
            if difficults.shape != labels.shape:
                raise ValueError(
                    f"VOCMetric.update: gt_difficults has shape {difficults.shape}, gt_labels {labels.shape}"
                )
        bad = np.argwhere((labels < 0) | (labels >= self.num_classes))
        if len(bad):
            b, g = bad[0]
            raise ValueError(
                f"VOCMetric.update: image {self.num_images + b} of the stream (batch row {b}), ground "
                f"truth {g} has label {labels[b, g]}, outside 0..{self.num_classes - 1} for "
                f"num_classes={self.num_classes}; check the dataset's labels or num_classes"
            )
        return labels, bboxes, difficults

    def update(self, detections: Mapping, gt_labels, gt_bboxes, gt_difficults=None) -> None:
        """Adds one batch of images.

        Args:
            detections: `detected_bboxes`' output, `{class_id: (scores [B, K],
                bboxes [B, K, 4])}`, relative boxes, zero-padded, sorted by score.
            gt_labels: `[B, G]` int, 0 = padding.
            gt_bboxes: `[B, G, 4]` relative (ymin, xmin, ymax, xmax).
            gt_difficults: `[B, G]` (None: no difficult objects).

        Raises:
            ValueError: a class id outside 1..num_classes-1, a ground-truth label outside
                0..num_classes-1, or shapes that do not fit together (named).
        """
        labels, gbboxes, difficults = self._check_gt(gt_labels, gt_bboxes, gt_difficults)
        batch = labels.shape[0]
        checked = []  # everything is checked before anything is added
        for c, value in detections.items():
            c = int(c)
            if not 1 <= c < self.num_classes:
                raise ValueError(
                    f"VOCMetric.update: detections for class {c}, outside 1..{self.num_classes - 1} "
                    f"(num_classes={self.num_classes})"
                )
            scores, bboxes = (_numpy(v) for v in value)
            scores = scores.astype(np.float32)
            bboxes = bboxes.astype(np.float32)
            if scores.ndim != 2 or scores.shape[0] != batch or bboxes.shape != scores.shape + (4,):
                raise ValueError(
                    f"VOCMetric.update: class {c}: scores {scores.shape} and bboxes {bboxes.shape} do "
                    f"not fit [B, K] and [B, K, 4] with B={batch} ground-truth rows"
                )
            checked.append((c, scores, bboxes))
        for c, scores, bboxes in checked:
            stream = self._streams.setdefault(c, {"num_gbboxes": np.int64(0), "tp": [], "fp": [], "scores": []})
            for b in range(batch):
                n, tp, fp = bboxes_matching(
                    c, scores[b], bboxes[b], labels[b], gbboxes[b], difficults[b],
                    self.matching_threshold, self.rule,
                )  # fmt: skip
                keep = tp | fp
                if self.rule == "ssd_tf":
                    keep &= scores[b] > _SCORE_FLOOR
                stream["num_gbboxes"] += n
                stream["tp"].append(tp[keep])
                stream["fp"].append(fp[keep])
                stream["scores"].append(scores[b][keep])
        self.num_images += batch

    @property
    def classes(self) -> list[int]:
        """The class ids seen in `update`, sorted."""
        return sorted(self._streams)

    def stream(self, class_id: int) -> dict:
        """The accumulated arrays of a class (`streaming_tp_fp_arrays`' values):
        `num_gbboxes` (int64), `num_detections` (int32), `tp`, `fp` (bool), `scores` (float32)."""
        s = self._streams[int(class_id)]
        scores = np.concatenate(s["scores"]) if s["scores"] else np.zeros([0], np.float32)
        return {
            "num_gbboxes": np.int64(s["num_gbboxes"]),
            "num_detections": np.int32(len(scores)),
            "tp": np.concatenate(s["tp"]) if s["tp"] else np.zeros([0], bool),
            "fp": np.concatenate(s["fp"]) if s["fp"] else np.zeros([0], bool),
            "scores": scores,
        }

    def precision_recall(self, class_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Precision and recall of a class over everything seen (float64)."""
        s = self.stream(class_id)
        return precision_recall(s["num_gbboxes"], s["num_detections"], s["tp"], s["fp"], s["scores"])

    def result(self) -> dict[str, float]:
        """Per-class and mean APs: `AP_VOC07/<c>`, `AP_VOC12/<c>`, `AP_VOC07/mAP`, `AP_VOC12/mAP`.

        The means are over the classes given to `update` (eval_ssd_network.py's plain mean).

        Raises:
            ValueError: if `update` was never called with detections.
        """
        if not self._streams:
            raise ValueError("VOCMetric.result(): no detections were given to update() yet")
        out = {}
        aps = {"AP_VOC07": [], "AP_VOC12": []}
        for c in self.classes:
            precision, recall = self.precision_recall(c)
            for key, fn in (("AP_VOC07", average_precision_voc07), ("AP_VOC12", average_precision_voc12)):
                ap = fn(precision, recall)
                out[f"{key}/{c}"] = ap
                aps[key].append(ap)
        for key, values in aps.items():
            total = 0.0
            for v in values:  # tf.add_n's order
                total += v
            out[f"{key}/mAP"] = total / len(values)
        return out
