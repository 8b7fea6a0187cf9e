"""MobileNet v1, as research/slim's `nets/mobilenet_v1.py`.

Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile
Vision Applications", 2017 (https://arxiv.org/abs/1704.04861).

The body is a table of `Conv` / `DepthSepConv` rows (slim's namedtuples, same
fields); each depthwise-separable row is two slim layers, `Conv2d_N_depthwise`
(depthwise weights only) and `Conv2d_N_pointwise` (a 1x1 conv), each with
BatchNorm (gamma included) and relu6, as `mobilenet_v1_arg_scope` sets them up.
The classifier is `Logits/AvgPool_1a` (slim's 7x7 pool, shrunk for small inputs,
stride 2), dropout and the 1x1 conv `Logits/Conv2d_1c_1x1`.

Names: `mobilenet_v1`, `mobilenet_v1_075`, `mobilenet_v1_050`, `mobilenet_v1_025`
(depth multipliers 1.0/0.75/0.5/0.25), all under slim's scope `MobilenetV1`;
the zoo checkpoints have 1001 classes (class 0 is background).
"""

from __future__ import annotations

from collections import namedtuple
from typing import Sequence

import keras
import tensorflow as tf

from kslim.models._base import SlimModel
from kslim.models._layers import Conv2d, SeparableConv2d, Stack
from kslim.models._registry import register_model

__all__ = [
    "Conv",
    "DepthSepConv",
    "MOBILENETV1_CONV_DEFS",
    "MobileNetV1",
    "mobilenet_v1",
    "mobilenet_v1_025",
    "mobilenet_v1_050",
    "mobilenet_v1_075",
]

# slim's layer rows: a full conv, or a depthwise conv followed by a 1x1 conv.
Conv = namedtuple("Conv", ["kernel", "stride", "depth"])
DepthSepConv = namedtuple("DepthSepConv", ["kernel", "stride", "depth"])

MOBILENETV1_CONV_DEFS = (
    Conv(kernel=[3, 3], stride=2, depth=32),
    DepthSepConv(kernel=[3, 3], stride=1, depth=64),
    DepthSepConv(kernel=[3, 3], stride=2, depth=128),
    DepthSepConv(kernel=[3, 3], stride=1, depth=128),
    DepthSepConv(kernel=[3, 3], stride=2, depth=256),
    DepthSepConv(kernel=[3, 3], stride=1, depth=256),
    DepthSepConv(kernel=[3, 3], stride=2, depth=512),
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),
    DepthSepConv(kernel=[3, 3], stride=1, depth=512),
    DepthSepConv(kernel=[3, 3], stride=2, depth=1024),
    DepthSepConv(kernel=[3, 3], stride=1, depth=1024),
)
_ROW_TYPES = {"Conv": Conv, "DepthSepConv": DepthSepConv}
OUTPUT_STRIDES = (None, 8, 16, 32)
_NAMES = {1.0: "mobilenet_v1", 0.75: "mobilenet_v1_075", 0.5: "mobilenet_v1_050",
          0.25: "mobilenet_v1_025"}


def fixed_padding(kernel_size: Sequence[int], rate: int = 1) -> list[list[int]]:
    """The NHWC padding of slim's `mobilenet_v1._fixed_padding` (use_explicit_padding).

    Pads `(k_eff - 1) // 2` before and the rest after, so a VALID conv gives the
    size a SAME conv would, independent of the input size. Slim's quirk: the
    effective kernel comes from `kernel_size[0]` for both axes.
    """
    effective = kernel_size[0] + (kernel_size[0] - 1) * (rate - 1)
    total = effective - 1
    begin = total // 2
    return [[0, 0], [begin, total - begin], [begin, total - begin], [0, 0]]


def reduced_kernel_size(shape: Sequence[int | None], kernel_size=(7, 7)) -> tuple[int, int]:
    """slim's `_reduced_kernel_size_for_small_input`: the pool kernel shrunk to the
    feature map when it is smaller; kept when the size is unknown."""
    height, width = shape[1], shape[2]
    if height is None or width is None:
        return tuple(kernel_size)
    return (min(height, kernel_size[0]), min(width, kernel_size[1]))


def _as_rows(conv_defs) -> tuple:
    """Normalizes a conv_defs table: slim's namedtuples (ours or research/slim's
    own), or `(kind, kernel, stride, depth)` rows as `get_config` writes them."""
    rows = []
    for index, row in enumerate(conv_defs):
        kind = type(row).__name__
        if kind not in _ROW_TYPES:
            if (isinstance(row, (list, tuple)) and len(row) == 4
                    and row[0] in _ROW_TYPES):
                kind, row = row[0], row[1:]
            else:
                raise ValueError(
                    f"mobilenet_v1: conv_defs row {index} is {row!r}; expected Conv(kernel, "
                    "stride, depth), DepthSepConv(kernel, stride, depth) or "
                    "('Conv'|'DepthSepConv', kernel, stride, depth)")
        kernel, stride, depth = row
        kernel = [int(kernel), int(kernel)] if isinstance(kernel, int) else [
            int(k) for k in kernel]
        rows.append(_ROW_TYPES[kind](kernel=kernel, stride=int(stride), depth=int(depth)))
    if not rows:
        raise ValueError("mobilenet_v1: conv_defs is empty")
    return tuple(rows)


@keras.saving.register_keras_serializable(package="kslim")
class MobileNetV1(SlimModel):
    """Slim's MobileNet v1 classifier (`mobilenet_v1` with `mobilenet_v1_arg_scope`).

    Args:
        num_classes: classifier outputs; 0/None returns the pooled features
            (`AvgPool_1a` or `global_pool`, 4-D, before dropout) as slim does.
        depth_multiplier: scales every layer's depth (`max(int(d * m), min_depth)`).
        min_depth: the smallest depth a layer gets when thinned.
        conv_defs: the body table, rows `Conv(kernel, stride, depth)` /
            `DepthSepConv(kernel, stride, depth)` (default `MOBILENETV1_CONV_DEFS`).
        output_stride: None, 8, 16 or 32 (`mobilenet_v1_base`): once the running
            stride reaches it, depthwise convs run atrous (stride 1, growing rate).
        use_explicit_padding: pad each Conv / depthwise conv explicitly and run it
            VALID (slim's `_fixed_padding`), instead of SAME.
        global_pool: average the features over all positions (any input size)
            instead of slim's fixed 7x7 `AvgPool_1a`.
        spatial_squeeze: squeeze the 1x1 logits to `[batch, num_classes]`.
        dropout_keep_prob: `Logits/Dropout_1b` keep probability in training.
        weight_decay: slim's L2 on conv weights (the arg scope default is 4e-5;
            nets_factory passes 0 unless told).
        regularize_depthwise: apply the L2 to the depthwise weights too.
        stddev: the truncated-normal initializer's standard deviation.
        batch_norm_decay, batch_norm_epsilon: slim's BatchNorm decay (Keras
            momentum) and epsilon.
        name: the top-level scope (default `MobilenetV1`).

    Example:
        >>> model = kslim.models.mobilenet_v1_025(weights="model.ckpt")
        >>> logits = model(images, training=False)       # [batch, 1001]
    """

    slim_name = "mobilenet_v1"
    head_scopes = ("Logits",)

    def __init__(self, num_classes: int | None = 1000, depth_multiplier: float = 1.0,
                 min_depth: int = 8, conv_defs=None, output_stride: int | None = None,
                 use_explicit_padding: bool = False, global_pool: bool = False,
                 spatial_squeeze: bool = True, dropout_keep_prob: float = 0.999,
                 weight_decay: float = 0.0, regularize_depthwise: bool = False,
                 stddev: float = 0.09, batch_norm_decay: float = 0.9997,
                 batch_norm_epsilon: float = 0.001, name: str | None = "MobilenetV1",
                 **kwargs):
        if depth_multiplier <= 0:
            raise ValueError(f"mobilenet_v1: depth_multiplier must be greater than zero, "
                             f"got {depth_multiplier!r}")
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"mobilenet_v1: output_stride must be one of {OUTPUT_STRIDES}, "
                             f"got {output_stride!r}")
        super().__init__(num_classes=num_classes, name=name or "MobilenetV1", **kwargs)
        self.depth_multiplier = float(depth_multiplier)
        self.slim_name = _NAMES.get(self.depth_multiplier,
                                    f"mobilenet_v1 (depth_multiplier {depth_multiplier})")
        self.min_depth = int(min_depth)
        self.conv_defs = _as_rows(MOBILENETV1_CONV_DEFS if conv_defs is None else conv_defs)
        self.output_stride = output_stride
        self.use_explicit_padding = bool(use_explicit_padding)
        self.global_pool = bool(global_pool)
        self.spatial_squeeze = bool(spatial_squeeze)
        self.dropout_keep_prob = dropout_keep_prob
        self.weight_decay = weight_decay
        self.regularize_depthwise = bool(regularize_depthwise)
        self.stddev = stddev
        self.batch_norm_decay = batch_norm_decay
        self.batch_norm_epsilon = batch_norm_epsilon

        # mobilenet_v1_arg_scope: truncated-normal init, BatchNorm with gamma, relu6.
        common = dict(
            activation_fn="relu6", weight_decay=weight_decay,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=stddev),
            batch_norm={"decay": batch_norm_decay, "epsilon": batch_norm_epsilon,
                        "center": True, "scale": True})
        padding = "VALID" if self.use_explicit_padding else "SAME"
        self.body = []   # the slim layers in order
        self._plan = []  # (end point, explicit padding or None) per layer
        for index, (row, stride, rate) in enumerate(self._strides_and_rates()):
            depth = max(int(row.depth * self.depth_multiplier), self.min_depth)
            base = f"Conv2d_{index}"
            if isinstance(row, Conv):
                # slim's Conv rows keep their stride and never dilate, even past
                # output_stride (only DepthSepConv rows go atrous).
                self.body.append(Conv2d(depth, row.kernel, stride=row.stride,
                                        padding=padding, name=base, **common))
                self._plan.append((base, fixed_padding(row.kernel)))
            else:
                self.body.append(SeparableConv2d(
                    None, row.kernel, depth_multiplier=1, stride=stride, rate=rate,
                    padding=padding, regularize_depthwise=self.regularize_depthwise,
                    name=f"{base}_depthwise", **common))
                self._plan.append((f"{base}_depthwise", fixed_padding(row.kernel, rate)))
                self.body.append(Conv2d(depth, 1, stride=1, padding=padding,
                                        name=f"{base}_pointwise", **common))
                self._plan.append((f"{base}_pointwise", None))
        if self.num_classes:
            self.dropout = keras.layers.Dropout(1.0 - dropout_keep_prob, name="Dropout_1b")
            self.logits = Stack([Conv2d(
                self.num_classes, 1, activation_fn=None, weight_decay=weight_decay,
                kernel_initializer=keras.initializers.TruncatedNormal(stddev=stddev),
                name="Conv2d_1c_1x1")], name="Logits")

    def _strides_and_rates(self):
        """(row, layer stride, layer rate) per row: slim's output_stride bookkeeping."""
        current_stride, rate = 1, 1
        for row in self.conv_defs:
            if self.output_stride is not None and current_stride == self.output_stride:
                yield row, 1, rate
                rate *= row.stride
            else:
                yield row, row.stride, 1
                current_stride *= row.stride

    @property
    def min_input_size(self) -> int:
        # SAME (or explicitly padded) convs and the shrinking pool take any size.
        return 1

    def forward(self, x, training=None):
        end_points = {}
        for layer, (end_point, pad) in zip(self.body, self._plan):
            if self.use_explicit_padding and pad is not None:
                x = tf.pad(x, pad)
            x = end_points[end_point] = layer(x, training=training)
        if self.global_pool:
            x = end_points["global_pool"] = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        else:
            # slim.avg_pool2d's default stride is 2 (no arg scope sets it here).
            kernel = reduced_kernel_size(x.shape)
            x = end_points["AvgPool_1a"] = tf.nn.avg_pool2d(x, kernel, 2, "VALID")
        if not self.num_classes:
            return x, end_points
        x = self.dropout(x, training=training)
        x = self.logits(x, training=training)
        if self.spatial_squeeze:
            if x.shape[1] != 1 or x.shape[2] != 1:
                raise ValueError(
                    f"{self.slim_name}: spatial_squeeze needs 1x1 logits but they are "
                    f"{x.shape[1]}x{x.shape[2]} for this input size; use global_pool=True, "
                    "spatial_squeeze=False, or images whose final feature map is at most "
                    "7x7 (224x224 at output stride 32)")
            x = tf.squeeze(x, axis=[1, 2])
        end_points["Logits"] = x
        end_points["Predictions"] = tf.nn.softmax(x)
        return x, end_points

    def get_config(self):
        return {**self._base_config(), "depth_multiplier": self.depth_multiplier,
                "min_depth": self.min_depth,
                "conv_defs": [[type(r).__name__, list(r.kernel), r.stride, r.depth]
                              for r in self.conv_defs],
                "output_stride": self.output_stride,
                "use_explicit_padding": self.use_explicit_padding,
                "global_pool": self.global_pool, "spatial_squeeze": self.spatial_squeeze,
                "dropout_keep_prob": self.dropout_keep_prob,
                "weight_decay": self.weight_decay,
                "regularize_depthwise": self.regularize_depthwise, "stddev": self.stddev,
                "batch_norm_decay": self.batch_norm_decay,
                "batch_norm_epsilon": self.batch_norm_epsilon}


def _register(name: str, multiplier: float):
    return register_model(name, MobileNetV1, image_size=224, num_classes=1001,
                          preprocessing=name, scope="MobilenetV1",
                          depth_multiplier=multiplier)


mobilenet_v1 = _register("mobilenet_v1", 1.0)
mobilenet_v1_075 = _register("mobilenet_v1_075", 0.75)
mobilenet_v1_050 = _register("mobilenet_v1_050", 0.50)
mobilenet_v1_025 = _register("mobilenet_v1_025", 0.25)
