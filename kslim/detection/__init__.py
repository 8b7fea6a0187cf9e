"""SSD object detection as SSD-Tensorflow (balancap) does it: anchors, box coding and
matching, the loss, post-processing and the VOC metric, as small TF/numpy functions
the SSD models (`kslim.models.create_model("ssd_300_vgg")`) and the training, eval and
detect commands share.

    anchors = model.anchors()                               # per layer (y, x, h, w)
    t_labels, t_locs, t_scores = kslim.detection.encode(labels, bboxes, anchors, 21)
    boxes = kslim.detection.decode(out["localisations"], anchors)
    losses = kslim.detection.ssd_losses(out["logits"], out["localisations"],
                                        t_labels, t_locs, t_scores)
    detections = kslim.detection.detected_bboxes(tf.nn.softmax(out["logits"]), boxes)

Anchor order everywhere: feature layer, then y, then x, then anchor; boxes are
(ymin, xmin, ymax, xmax) relative to the image; box offsets (cx, cy, w, h).
Attributes load on first use.
"""

from __future__ import annotations

from kslim._lazy import lazy_attributes

_HOMES = {
    "ssd_anchors": "anchors",
    "layer_sizes": "anchors",
    "encode": "box_coding",
    "decode": "box_coding",
    "ssd_losses": "losses",
    "detected_bboxes": "postprocess",
    "bboxes_clip": "postprocess",
    "bboxes_resize": "postprocess",
    "VOCMetric": "metrics",
}
__all__ = sorted(_HOMES)

__getattr__, __dir__ = lazy_attributes(__name__, _HOMES)
