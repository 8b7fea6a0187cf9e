"""SSD-300 and SSD-512 on a VGG-16 trunk, as SSD-Tensorflow's `nets/ssd_vgg_300.py`
and `nets/ssd_vgg_512.py` (balancap/SSD-Tensorflow, with `nets/custom_layers.py`).

Liu et al., "SSD: Single Shot MultiBox Detector", 2016. The trunk is slim's vgg_16
convolutions (`conv1/conv1_1` ... `conv5/conv5_3`, the names a vgg_16 checkpoint
restores through `rename={"ssd_300_vgg": "vgg_16"}`), then pool5 3x3 stride 1, the
dilated `conv6` (rate 6) and `conv7` (1x1) in place of fc6/fc7, and the extra blocks
`block8`... Each feature layer L has a head `L_box/` (`conv_loc`, `conv_cls`, 3x3, no
activation; `block4_box` first L2-normalizes with a learned `gamma`).

The model returns the flat outputs of SPEC section 9:
`{"logits": [B, N, num_classes], "localisations": [B, N, 4]}`, the N anchors ordered
layer, y, x, anchor (each head's `[B, H, W, A * K]` output read anchor-major, as the
original's reshape to `[B, H, W, A, K]`). `model.endpoints(images)` gives the
original's `end_points` (`block1` ... `block11`/`block12`); `model.anchors()`,
`model.detect(images)` and `model.compute_loss` (for `model.fit` with targets from
`kslim.detection.encode`) complete it.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from kslim.models._base import SlimModel
from kslim.models._layers import Conv2d, Stack, out_size
from kslim.models._registry import register_model

__all__ = ["PARAMS", "SSDParams", "SSDVGG", "SSD300VGG", "SSD512VGG", "ssd_300_vgg",
           "ssd_512_vgg"]


@dataclasses.dataclass(frozen=True)
class SSDParams:
    """SSD-Tensorflow's `SSDParams` (minus what kslim takes elsewhere: `num_classes` is
    the model's, `no_annotation_label` and `anchor_size_bounds` are unused there too),
    plus the extra blocks of the net.

    Attributes:
        img_shape: the default input (height, width).
        feat_layers: end points that get a multibox head.
        feat_shapes: (H, W) of those layers at `img_shape` (the model measures them).
        anchor_sizes: per layer (s_min, s_max) in pixels.
        anchor_ratios: per layer the aspect ratios after the two square anchors.
        anchor_steps: per layer the anchor centre step in pixels.
        anchor_offset: grid offset of the centres.
        normalizations: per layer > 0: L2-normalize with a learned gamma first (the
            value itself is unused by the original: gamma starts at ones, issue #273).
        prior_scaling: the box-coding variances.
        extra_blocks: (scope, 1x1 depth, kxk depth, k, stride, pad) after conv7; the
            kxk conv is VALID after a symmetric zero pad of `pad` (pad2d + VALID).
        dropout: dropout after conv6 and conv7 in training (SSD-300 only).
    """

    img_shape: tuple[int, int]
    feat_layers: tuple[str, ...]
    feat_shapes: tuple[tuple[int, int], ...]
    anchor_sizes: tuple[tuple[float, ...], ...]
    anchor_ratios: tuple[tuple[float, ...], ...]
    anchor_steps: tuple[int, ...]
    anchor_offset: float
    normalizations: tuple[int, ...]
    prior_scaling: tuple[float, float, float, float]
    extra_blocks: tuple[tuple[str, int, int, int, int, int], ...]
    dropout: bool


_RATIOS_4 = (2, 0.5)
_RATIOS_6 = (2, 0.5, 3, 1.0 / 3)

PARAMS = {
    "ssd_300_vgg": SSDParams(
        img_shape=(300, 300),
        feat_layers=("block4", "block7", "block8", "block9", "block10", "block11"),
        feat_shapes=((38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)),
        anchor_sizes=((21.0, 45.0), (45.0, 99.0), (99.0, 153.0), (153.0, 207.0),
                      (207.0, 261.0), (261.0, 315.0)),
        anchor_ratios=(_RATIOS_4, _RATIOS_6, _RATIOS_6, _RATIOS_6, _RATIOS_4, _RATIOS_4),
        anchor_steps=(8, 16, 32, 64, 100, 300),
        anchor_offset=0.5,
        normalizations=(20, -1, -1, -1, -1, -1),
        prior_scaling=(0.1, 0.1, 0.2, 0.2),
        # block10/11 are unpadded 3x3 VALID convs (5 -> 3 -> 1).
        extra_blocks=(("block8", 256, 512, 3, 2, 1), ("block9", 128, 256, 3, 2, 1),
                      ("block10", 128, 256, 3, 1, 0), ("block11", 128, 256, 3, 1, 0)),
        dropout=True,
    ),
    "ssd_512_vgg": SSDParams(
        img_shape=(512, 512),
        feat_layers=("block4", "block7", "block8", "block9", "block10", "block11",
                     "block12"),
        feat_shapes=((64, 64), (32, 32), (16, 16), (8, 8), (4, 4), (2, 2), (1, 1)),
        anchor_sizes=((20.48, 51.2), (51.2, 133.12), (133.12, 215.04), (215.04, 296.96),
                      (296.96, 378.88), (378.88, 460.8), (460.8, 542.72)),
        anchor_ratios=(_RATIOS_4, _RATIOS_6, _RATIOS_6, _RATIOS_6, _RATIOS_6, _RATIOS_4,
                       _RATIOS_4),
        anchor_steps=(8, 16, 32, 64, 128, 256, 512),
        anchor_offset=0.5,
        normalizations=(20, -1, -1, -1, -1, -1, -1),
        prior_scaling=(0.1, 0.1, 0.2, 0.2),
        # block12's 4x4 conv (Caffe's conv10_2, pad 1) takes 2x2 to 1x1.
        extra_blocks=(("block8", 256, 512, 3, 2, 1), ("block9", 128, 256, 3, 2, 1),
                      ("block10", 128, 256, 3, 2, 1), ("block11", 128, 256, 3, 2, 1),
                      ("block12", 128, 256, 4, 1, 1)),
        dropout=False,
    ),
}

# slim.repeat counts and depths of the vgg_16 trunk (conv1 ... conv5).
TRUNK = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


class L2Normalization(keras.layers.Layer):
    """SSD-Tensorflow's `custom_layers.l2_normalization(scaling=True)`: L2-normalize
    over the channels (epsilon 1e-12), times a learned per-channel `gamma` (ones at
    start, not regularized)."""

    def __init__(self, name: str = "L2Normalization", **kwargs):
        super().__init__(name=name, **kwargs)

    def build(self, input_shape):
        self.gamma = self.add_weight(name="gamma", shape=(input_shape[-1],),
                                     initializer="ones")

    def call(self, x):
        return tf.nn.l2_normalize(x, axis=-1, epsilon=1e-12) * tf.cast(self.gamma, x.dtype)


class ExtraBlock(keras.layers.Layer):
    """`blockN`: a 1x1 conv (`conv1x1`), then a kxk conv (`conv3x3` / `conv4x4`),
    VALID after `custom_layers.pad2d` (symmetric zero padding; Caffe's pad)."""

    def __init__(self, depth_1x1: int, depth: int, kernel: int, stride: int, pad: int,
                 weight_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.pad = pad
        self.conv1x1 = Conv2d(depth_1x1, 1, weight_decay=weight_decay, name="conv1x1")
        self.conv = Conv2d(depth, kernel, stride=stride, padding="VALID",
                           weight_decay=weight_decay, name=f"conv{kernel}x{kernel}")

    def call(self, x, training=None):
        x = self.conv1x1(x)
        if self.pad:
            x = tf.pad(x, [[0, 0], [self.pad, self.pad], [self.pad, self.pad], [0, 0]])
        return self.conv(x)


class MultiboxHead(keras.layers.Layer):
    """`<layer>_box`: SSD-Tensorflow's `ssd_multibox_layer`, returning the
    `conv_cls` and `conv_loc` outputs reshaped to `[B, H*W*A, K]` (anchor-major
    channels: c = a * K + k)."""

    def __init__(self, num_anchors: int, num_classes: int, normalize: bool,
                 weight_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_anchors = num_anchors
        self.num_classes = num_classes
        self.norm = L2Normalization() if normalize else None
        # Creation order as the original: conv_loc before conv_cls.
        self.conv_loc = Conv2d(num_anchors * 4, 3, activation_fn=None,
                               weight_decay=weight_decay, name="conv_loc")
        self.conv_cls = Conv2d(num_anchors * num_classes, 3, activation_fn=None,
                               weight_decay=weight_decay, name="conv_cls")

    def call(self, x, training=None):
        if self.norm is not None:
            x = self.norm(x)
        loc = self.conv_loc(x)
        cls = self.conv_cls(x)
        batch = tf.shape(x)[0]
        return (tf.reshape(cls, [batch, -1, self.num_classes]),
                tf.reshape(loc, [batch, -1, 4]))


class SSDVGG(SlimModel):
    """SSD on VGG-16 (`ssd_300_vgg`, `ssd_512_vgg`), SSD-Tensorflow's `SSDNet.net`.

    Args:
        num_classes: classes including background (class 0); 21 for Pascal VOC.
        dropout_keep_prob: SSD-300's dropout after conv6 and conv7 in training. The
            original passes this value as the drop *rate*; at its default 0.5 the two
            are the same, and kslim reads it as a keep probability like slim.
        weight_decay: slim's L2 on every `weights` tensor (the original's arg_scope
            default is 5e-4, train_ssd_network's flag 4e-5).
        match_threshold, negative_ratio, loss_alpha: the loss options of
            `compute_loss` (train_ssd_network's `--match_threshold`,
            `--negative_ratio`, `--loss_alpha`).
        loss_normalization: "batch" (SSD-Tensorflow) or "positives" (the paper's).
        name: the top-level scope (default the net's name).

    Example:
        >>> model = kslim.models.create_model("ssd_300_vgg", num_classes=21)
        >>> out = model(images, training=False)    # {"logits", "localisations"}
        >>> found = model.detect(images)            # boxes, classes, scores
    """

    variant: str = ""
    loss_variant: str = ""  # which of SSD-Tensorflow's two losses (default: the variant's)
    params: SSDParams

    def __init__(self, num_classes: int | None = 21, dropout_keep_prob: float = 0.5,
                 weight_decay: float = 0.0, match_threshold: float = 0.5,
                 negative_ratio: float = 3.0, loss_alpha: float = 1.0,
                 loss_normalization: str = "batch", name: str | None = None, **kwargs):
        if kwargs.get("classifier_activation") is not None or kwargs.get("pooling"):
            raise ValueError(f"{self.variant}: classifier_activation and pooling do not "
                             "apply to a detector (the outputs are logits and box offsets)")
        super().__init__(num_classes=num_classes, name=name or self.variant, **kwargs)
        if self.num_classes < 2:
            raise ValueError(f"{self.variant}: num_classes must be at least 2 (background "
                             f"and one class), got {num_classes!r}")
        if loss_normalization not in ("batch", "positives"):
            raise ValueError(f"{self.variant}: loss_normalization must be 'batch' or "
                             f"'positives', got {loss_normalization!r}")
        self.slim_name = self.variant
        # The loss's hard negative mining is a top_k whose k depends on the batch (as the
        # original's), which XLA cannot compile: keeps Keras's jit_compile="auto" off XLA.
        self.supports_jit = False
        self.dropout_keep_prob = dropout_keep_prob
        self.weight_decay = weight_decay
        self.match_threshold = match_threshold
        self.negative_ratio = negative_ratio
        self.loss_alpha = loss_alpha
        self.loss_normalization = loss_normalization
        p = self.params
        self.trunk = [Stack([Conv2d(depth, 3, name=f"conv{block}_{i}",
                                    weight_decay=weight_decay)
                             for i in range(1, repeats + 1)], name=f"conv{block}")
                      for block, (repeats, depth) in enumerate(TRUNK, start=1)]
        self.conv6 = Conv2d(1024, 3, rate=6, weight_decay=weight_decay, name="conv6")
        self.conv7 = Conv2d(1024, 1, weight_decay=weight_decay, name="conv7")
        if p.dropout:
            self.dropout6 = keras.layers.Dropout(1.0 - dropout_keep_prob, name="dropout6")
            self.dropout7 = keras.layers.Dropout(1.0 - dropout_keep_prob, name="dropout7")
        self.extra = [ExtraBlock(d1, d, k, s, pad, weight_decay=weight_decay, name=scope)
                      for scope, d1, d, k, s, pad in p.extra_blocks]
        self.heads = [MultiboxHead(len(sizes) + len(ratios), self.num_classes, norm > 0,
                                   weight_decay=weight_decay, name=f"{layer}_box")
                      for layer, sizes, ratios, norm in zip(
                          p.feat_layers, p.anchor_sizes, p.anchor_ratios,
                          p.normalizations)]
        # Running means of the three loss terms, logged by fit/evaluate beside "loss".
        self.loss_trackers = {term: keras.metrics.Mean(name=term) for term in
                              ("cross_entropy_pos", "cross_entropy_neg", "localization")}
        self._measured_shapes: dict[tuple[int, int], list[tuple[int, int, int]]] = {}

    # -- architecture ----------------------------------------------------------------

    @property
    def anchors_per_location(self) -> list[int]:
        p = self.params
        return [len(s) + len(r) for s, r in zip(p.anchor_sizes, p.anchor_ratios)]

    def _feature_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """(H, W) of the feature layers for an input size, by TF's conv and pool
        output-size rules (for sizes the net has not run at)."""
        sizes = {}
        h, w = height, width
        for block in range(1, 6):
            sizes[f"block{block}"] = (h, w)
            if block < 5:  # pool1..pool4: 2x2 stride 2 SAME
                h, w = out_size(h, 2, 2, "SAME"), out_size(w, 2, 2, "SAME")
        sizes["block6"] = sizes["block7"] = (h, w)  # pool5 3x3 stride 1 SAME
        for scope, _, _, k, s, pad in self.params.extra_blocks:
            h = out_size(h + 2 * pad, k, s, "VALID")
            w = out_size(w + 2 * pad, k, s, "VALID")
            sizes[scope] = (h, w)
        return [sizes[layer] for layer in self.params.feat_layers]

    @property
    def min_input_size(self) -> int:
        size = 1
        while min(min(s) for s in self._feature_sizes(size, size)) < 1:
            size += 1
        return size

    def forward(self, x, training=None):
        end_points = {}
        input_hw = (x.shape[1], x.shape[2])
        for block, stack in enumerate(self.trunk, start=1):
            x = stack(x, training=training)
            end_points[f"block{block}"] = x
            if block < 5:
                x = tf.nn.max_pool2d(x, 2, 2, padding="SAME")
        x = tf.nn.max_pool2d(x, 3, 1, padding="SAME")  # pool5
        x = self.conv6(x)
        end_points["block6"] = x
        if self.params.dropout:
            x = self.dropout6(x, training=training)
        x = self.conv7(x)
        end_points["block7"] = x  # before its dropout; block8 reads the dropped tensor
        if self.params.dropout:
            x = self.dropout7(x, training=training)
        for block in self.extra:
            x = block(x, training=training)
            end_points[block.name] = x
        logits, localisations, shapes = [], [], []
        for layer, head, anchors in zip(self.params.feat_layers, self.heads,
                                        self.anchors_per_location):
            feature = end_points[layer]
            shapes.append((feature.shape[1], feature.shape[2], anchors))
            cls, loc = head(feature, training=training)
            logits.append(cls)
            localisations.append(loc)
        if None not in input_hw:
            self._measured_shapes[input_hw] = shapes
        out = {"logits": tf.concat(logits, axis=1),
               "localisations": tf.concat(localisations, axis=1)}
        return out, end_points

    # -- anchors and detection -------------------------------------------------------

    def _input_hw(self, image_shape=None) -> tuple[int, int]:
        if image_shape is None:
            built = getattr(self, "_built_input_shape", None)
            if built is None:
                return tuple(self.params.img_shape)
            image_shape = built
        return int(image_shape[0]), int(image_shape[1])

    def feature_shapes_for(self, image_shape=None) -> list[tuple[int, int, int]]:
        """(H, W, A) of every feature layer for inputs of `image_shape` (H, W[, C];
        default the size the model was built for): as measured when the net has run at
        that size, else from TF's conv and pool output-size rules (the same numbers)."""
        h, w = self._input_hw(image_shape)
        measured = self._measured_shapes.get((h, w))
        if measured:  # the net has run at this size
            return list(measured)
        return [(fh, fw, a) for (fh, fw), a in zip(self._feature_sizes(h, w),
                                                    self.anchors_per_location)]

    @property
    def feature_shapes(self) -> list[tuple[int, int, int]]:
        """(H, W, A) per feature layer (feat_layers order) at the built input size, as
        measured on the net's outputs (SSD-Tensorflow's `update_feat_shapes`)."""
        return self.feature_shapes_for()

    def anchors(self, image_shape=None, dtype=np.float32) -> list[tuple[np.ndarray, ...]]:
        """The default boxes per layer, `[(y, x, h, w), ...]` (SSD-Tensorflow's
        `SSDNet.anchors`): the image size is the input size (`image_shape` or the built
        one), feature shapes are the net's at that size, sizes and steps in pixels are
        the parameter table's, unchanged for other input sizes."""
        from kslim.detection.anchors import ssd_anchors

        p = self.params
        return ssd_anchors(self._input_hw(image_shape), self.feature_shapes_for(image_shape),
                           p.anchor_sizes, p.anchor_ratios, p.anchor_steps,
                           offset=p.anchor_offset, dtype=dtype)

    def split_layers(self, flat, image_shape=None) -> list:
        """A flat `[B, N, K]` output as the original's per-layer `[B, H, W, A, K]`."""
        flat = tf.convert_to_tensor(flat)
        shapes = self.feature_shapes_for(image_shape)
        parts = tf.split(flat, [h * w * a for h, w, a in shapes], axis=1)
        return [tf.reshape(part, [-1, h, w, a, flat.shape[-1]])
                for part, (h, w, a) in zip(parts, shapes)]

    def detect(self, images, select_threshold: float = 0.5, nms_threshold: float = 0.45,
               top_k: int = 400, keep_top_k: int = 200, max_detections: int = 200,
               clipping_bbox=None, bbox_img=None, image_size=None) -> dict:
        """Detections per image: the net, softmax, `decode`, `detected_bboxes`, then the
        classes merged by score.

        Args:
            images: `[B, H, W, 3]` float32, preprocessed as `ssd_vgg` (RGB minus the
                means); any size the net accepts (anchors follow the size).
            select_threshold: minimum class probability (0.5 as SSD-Tensorflow's
                notebook; its eval uses 0.01).
            nms_threshold, top_k, keep_top_k: `detected_bboxes`' options (per class).
            max_detections: boxes returned per image (all classes together).
            clipping_bbox: None (both originals' default) or a box to clip to, e.g.
                [0, 0, 1, 1].
            bbox_img: where the original image lies in the network input (`[4]` or
                `[B, 4]`, as the eval preprocessing returns it): boxes are then
                relative to the original image (`bboxes_resize`).
            image_size: `(height, width)` or `[B, 2]` in pixels: boxes are returned in
                pixels of that size (of the original image with `bbox_img`, else of
                the network input). None: relative coordinates.

        Returns:
            `{"boxes": [B, K, 4] (ymin, xmin, ymax, xmax), "classes": [B, K] int64,
            "scores": [B, K] float32, "num_detections": [B] int32}`, best first, K =
            `max_detections`, zero past `num_detections`. Boxes are relative (0..1)
            unless `image_size` is given.
        """
        from kslim.detection import box_coding, postprocess

        images = tf.convert_to_tensor(images, tf.float32)
        if images.shape.rank != 4 or images.shape[1] is None or images.shape[2] is None:
            raise ValueError(f"{self.name}.detect needs a [batch, height, width, 3] batch "
                             f"with a static height and width, got {images.shape}")
        out = self(images, training=False)
        anchors = self.anchors(images.shape[1:3])
        boxes = box_coding.decode(out["localisations"], anchors, self.params.prior_scaling)
        detections = postprocess.detected_bboxes(
            tf.nn.softmax(out["logits"]), boxes, select_threshold=select_threshold,
            nms_threshold=nms_threshold, top_k=top_k, keep_top_k=keep_top_k,
            clipping_bbox=clipping_bbox)
        result = postprocess.merge_classes(detections, max_detections)
        found = tf.cast(result["scores"] > 0.0, tf.float32)[..., None]
        boxes = result["boxes"]
        if bbox_img is not None:
            boxes = postprocess.bboxes_resize(bbox_img, boxes) * found
        if image_size is not None:
            size = tf.cast(image_size, tf.float32)
            size = size[:, None, :] if size.shape.rank == 2 else size
            boxes = boxes * tf.concat([size, size], axis=-1)
        result["boxes"] = boxes
        return result

    # -- checkpoints -----------------------------------------------------------------

    def check_checkpoint(self, path, rename=None) -> None:
        """Fails early, with what to do, when `path` is an SSD checkpoint of the other
        size (SSD-300 and SSD-512 differ in extra blocks and anchors per location, so
        no rename makes one load into the other). `create_model(weights=...)` calls
        this before restoring; anything else is left to `kslim.compat.restore`.

        Raises:
            kslim.compat.CheckpointError: naming the checkpoint, its net and the fix.
        """
        from kslim.compat import CheckpointError, list_checkpoint

        if self.variant not in PARAMS:  # a net of its own (ssd_demo): compat reports
            return
        names = {name: shape for name, shape, _ in list_checkpoint(path)}
        if any(name.split("/")[1:2] in (["block12"], ["block12_box"]) for name in names):
            found = "ssd_512_vgg"
        elif any(name.split("/")[1:2] == ["block11_box"] for name in names):
            found = "ssd_300_vgg"
        else:
            return
        if found != self.variant:
            scope = next(n for n in names if "_box/" in n).split("/")[0]
            raise CheckpointError(
                f"{path} is an {found} checkpoint (scope {scope!r}; "
                f"{'it has block12' if found == 'ssd_512_vgg' else 'it has no block12'}), "
                f"but the model is {self.variant}: the two sizes have different extra "
                f"blocks and anchors per layer. Build the net of the checkpoint: "
                f"kslim.models.create_model({found!r}, weights=...); no weight was changed.")

    # -- training --------------------------------------------------------------------

    def loss_terms(self, y, y_pred) -> dict:
        """The three SSD loss terms for flat targets `y = {"labels", "localisations",
        "scores"}` (`encode` per image, batched) and outputs `y_pred`."""
        from kslim.detection.losses import ssd_losses

        missing = {"labels", "localisations", "scores"} - set(y)
        if missing:
            raise ValueError(f"{self.name}: the SSD targets need keys labels, "
                             f"localisations and scores (kslim.detection.encode per "
                             f"image); missing {sorted(missing)}")
        variant = self.loss_variant or self.variant
        layer_sizes = None
        if variant == "ssd_512_vgg":
            layer_sizes = [h * w * a for h, w, a in self._shapes_for_outputs(y_pred)]
        return ssd_losses(y_pred["logits"], y_pred["localisations"], y["labels"],
                          y["localisations"], y["scores"],
                          match_threshold=self.match_threshold,
                          negative_ratio=self.negative_ratio, alpha=self.loss_alpha,
                          variant=variant, layer_sizes=layer_sizes,
                          normalization=self.loss_normalization)

    def _shapes_for_outputs(self, y_pred):
        count = y_pred["logits"].shape[1]
        for shapes in [self.feature_shapes, *self._measured_shapes.values()]:
            if sum(h * w * a for h, w, a in shapes) == count:
                return shapes
        raise ValueError(f"{self.name}: cannot tell the feature shapes of outputs with "
                         f"{count} anchors")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """SSD-Tensorflow's training loss for `model.fit`: the three terms of
        `kslim.detection.ssd_losses` (this net's variant and the model's loss
        options) plus the weight decay; `sample_weight` is not supported."""
        if sample_weight is not None:
            raise ValueError(f"{self.name}: sample weights are not supported by the SSD "
                             "loss; drop them from the dataset")
        terms = self.loss_terms(y, y_pred)
        for name, value in terms.items():
            self.loss_trackers[name].update_state(value)
        total = tf.add_n(list(terms.values()))
        if self.losses:
            total = total + tf.add_n([tf.cast(loss, total.dtype) for loss in self.losses])
        # Keras's convention under tf.distribute (what its own losses do): each replica
        # returns its loss divided by the replica count, so the summed gradients are the
        # mean over replicas (slim's model_deploy divides the clone losses the same way);
        # fit's logged loss is unscaled again.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            total = total / tf.cast(replicas, total.dtype)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return keras.Model.compute_metrics(self, x, y, y_pred, sample_weight)

    def get_config(self):
        config = self._base_config()
        for key in ("classifier_activation", "pooling"):
            config.pop(key, None)
        return {**config, "dropout_keep_prob": self.dropout_keep_prob,
                "weight_decay": self.weight_decay, "match_threshold": self.match_threshold,
                "negative_ratio": self.negative_ratio, "loss_alpha": self.loss_alpha,
                "loss_normalization": self.loss_normalization}


def _head_scopes(params: SSDParams) -> tuple[str, ...]:
    # The class-count-dependent convs: a class-count change leaves them as initialized
    # (as classification heads are) when restoring.
    return tuple(f"{layer}_box/conv_cls" for layer in params.feat_layers)


@keras.saving.register_keras_serializable(package="kslim")
class SSD300VGG(SSDVGG):
    """SSD-300 (`nets/ssd_vgg_300.py`); see `SSDVGG`."""

    variant = "ssd_300_vgg"
    params = PARAMS["ssd_300_vgg"]
    head_scopes = _head_scopes(PARAMS["ssd_300_vgg"])


@keras.saving.register_keras_serializable(package="kslim")
class SSD512VGG(SSDVGG):
    """SSD-512 (`nets/ssd_vgg_512.py`); see `SSDVGG`."""

    variant = "ssd_512_vgg"
    params = PARAMS["ssd_512_vgg"]
    head_scopes = _head_scopes(PARAMS["ssd_512_vgg"])


ssd_300_vgg = register_model("ssd_300_vgg", SSD300VGG, image_size=300, num_classes=21,
                             preprocessing="ssd_vgg")
ssd_512_vgg = register_model("ssd_512_vgg", SSD512VGG, image_size=512, num_classes=21,
                             preprocessing="ssd_vgg")
