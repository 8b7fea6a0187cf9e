"""A small SSD for CPU demos: `ssd_demo`, SSD-300's detector on a five-layer trunk.

Not a net of SSD-Tensorflow: the demo's detector (`kslim demo --task=detection`),
small enough to train on a CPU in minutes on the embedded `shapes` set (96x96
canvases). Everything but the trunk is `ssd_300_vgg`'s code: the multibox heads
(`<layer>_box/conv_loc`, `conv_cls`), the anchors (`kslim.detection.ssd_anchors`
from a parameter table), SSD-Tensorflow's matching (`encode`), its SSD-300 loss
(hard negative mining, `ssd_losses(variant="ssd_300_vgg")`), `detect` /
`detected_bboxes` and the VOC metric. The trunk uses slim-style batch norm (decay 0.97)
so a few hundred steps train it.

    conv1 (16, stride 2)  conv2 (32) pool  conv3 (64) pool  conv4 (96) = block4  (96 -> 12)
    block5, block6: 1x1 (32) + 3x3 stride 2 (64)                                   (6, 3)
    block7: 1x1 (32) + 3x3 VALID (64)                                               (1)
"""

from __future__ import annotations

import keras
import tensorflow as tf

from kslim.models._base import SlimModel
from kslim.models._layers import Conv2d, Stack, out_size
from kslim.models._registry import register_model
from kslim.models.ssd_vgg import SSDParams, SSDVGG, MultiboxHead

__all__ = ["PARAMS", "SSDDemo", "ssd_demo"]

_RATIOS = (2, 0.5)

PARAMS = SSDParams(
    img_shape=(96, 96),
    feat_layers=("block4", "block5", "block6", "block7"),
    feat_shapes=((12, 12), (6, 6), (3, 3), (1, 1)),
    # Sizes in pixels at 96x96 (s_min, s_max), as SSD-300's table is at 300x300.
    anchor_sizes=((10.0, 20.0), (20.0, 38.0), (38.0, 62.0), (62.0, 90.0)),
    anchor_ratios=(_RATIOS, _RATIOS, _RATIOS, _RATIOS),
    anchor_steps=(8, 16, 32, 96),
    anchor_offset=0.5,
    normalizations=(-1, -1, -1, -1),
    prior_scaling=(0.1, 0.1, 0.2, 0.2),
    # (scope, 1x1 depth, 3x3 depth, kernel, stride, pad): 12 -> 6 -> 3 -> 1.
    extra_blocks=(("block5", 32, 64, 3, 2, 1), ("block6", 32, 64, 3, 2, 1),
                  ("block7", 32, 64, 3, 1, 0)),
    dropout=False,
)

# (scope, depth, stride, max pool 2x2 after it); the strided first conv keeps the
# full-resolution work (most of a small net's cost on CPU) to one layer.
TRUNK = (("conv1", 16, 2, False), ("conv2", 32, 1, True), ("conv3", 64, 1, True),
         ("conv4", 96, 1, False))

BATCH_NORM = {"decay": 0.97, "epsilon": 0.001, "scale": True}


class SSDDemo(SSDVGG):
    """`ssd_demo`: SSD-300's heads, anchors, loss and post-processing on a small trunk.

    Args:
        num_classes: classes including background (`shapes`: 4).
        weight_decay, match_threshold, negative_ratio, loss_alpha, loss_normalization:
            as `SSDVGG`.
        name: the top-level scope (default `ssd_demo`).

    Example:
        >>> model = kslim.models.create_model("ssd_demo", num_classes=4)
        >>> model.detect(images)["boxes"]
    """

    variant = "ssd_demo"
    loss_variant = "ssd_300_vgg"  # SSD-Tensorflow's SSD-300 loss
    params = PARAMS
    head_scopes = tuple(f"{layer}_box/conv_cls" for layer in PARAMS.feat_layers)

    def __init__(self, num_classes: int | None = 4, weight_decay: float = 0.0,
                 match_threshold: float = 0.5, negative_ratio: float = 3.0,
                 loss_alpha: float = 1.0, loss_normalization: str = "batch",
                 name: str | None = None, **kwargs):
        SlimModel.__init__(self, num_classes=num_classes, name=name or self.variant,
                           **kwargs)
        if self.num_classes < 2:
            raise ValueError(f"{self.variant}: num_classes must be at least 2 (background "
                             f"and one class), got {num_classes!r}")
        self.slim_name = self.variant
        self.dropout_keep_prob = 1.0
        self.weight_decay = weight_decay
        self.match_threshold = match_threshold
        self.negative_ratio = negative_ratio
        self.loss_alpha = loss_alpha
        self.loss_normalization = loss_normalization
        self.trunk = [Conv2d(depth, 3, stride=stride, batch_norm=BATCH_NORM,
                             weight_decay=weight_decay, name=scope)
                      for scope, depth, stride, _ in TRUNK]
        self.extra = [Stack([Conv2d(d1, 1, batch_norm=BATCH_NORM, weight_decay=weight_decay,
                                    name="conv1x1"),
                             Conv2d(d, k, stride=s, padding="SAME" if pad else "VALID",
                                    batch_norm=BATCH_NORM, weight_decay=weight_decay,
                                    name=f"conv{k}x{k}")], name=scope)
                      for scope, d1, d, k, s, pad in PARAMS.extra_blocks]
        self.heads = [MultiboxHead(len(sizes) + len(ratios), self.num_classes, False,
                                   weight_decay=weight_decay, name=f"{layer}_box")
                      for layer, sizes, ratios in zip(PARAMS.feat_layers,
                                                      PARAMS.anchor_sizes,
                                                      PARAMS.anchor_ratios)]
        self.loss_trackers = {term: keras.metrics.Mean(name=term) for term in
                              ("cross_entropy_pos", "cross_entropy_neg", "localization")}
        self._measured_shapes = {}

    def _feature_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        h, w = height, width
        for _, _, stride, pool in TRUNK:
            h, w = out_size(h, 3, stride, "SAME"), out_size(w, 3, stride, "SAME")
            if pool:
                h, w = out_size(h, 2, 2, "SAME"), out_size(w, 2, 2, "SAME")
        sizes = {"block4": (h, w)}
        for scope, _, _, k, s, pad in PARAMS.extra_blocks:
            padding = "SAME" if pad else "VALID"
            h, w = out_size(h, k, s, padding), out_size(w, k, s, padding)
            sizes[scope] = (h, w)
        return [sizes[layer] for layer in PARAMS.feat_layers]

    def forward(self, x, training=None):
        end_points = {}
        for conv, (_, _, _, pool) in zip(self.trunk, TRUNK):
            x = conv(x, training=training)
            end_points[conv.name] = x
            if pool:
                x = tf.nn.max_pool2d(x, 2, 2, padding="SAME")
        end_points["block4"] = x
        for block in self.extra:
            x = block(x, training=training)
            end_points[block.name] = x
        logits, localisations, shapes = [], [], []
        for layer, head, anchors in zip(PARAMS.feat_layers, self.heads,
                                        self.anchors_per_location):
            feature = end_points[layer]
            shapes.append((feature.shape[1], feature.shape[2], anchors))
            cls, loc = head(feature, training=training)
            logits.append(cls)
            localisations.append(loc)
        if all(h is not None and w is not None for h, w, _ in shapes):
            self._measured_shapes[(x.shape[1], x.shape[2])] = shapes
            self._last_shapes = shapes
        return ({"logits": tf.concat(logits, axis=1),
                 "localisations": tf.concat(localisations, axis=1)}, end_points)

    def get_config(self):
        config = super().get_config()
        config.pop("dropout_keep_prob", None)
        return config


ssd_demo = register_model("ssd_demo", SSDDemo, image_size=96, num_classes=4,
                          preprocessing="ssd_vgg")
