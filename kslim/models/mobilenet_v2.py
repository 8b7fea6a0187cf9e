"""MobileNet v2 as research/slim's `nets/mobilenet/mobilenet_v2.py`.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", 2018
(https://arxiv.org/abs/1801.04381). A 3x3 stride-2 conv, seventeen inverted
residual blocks (`expanded_conv`, expansion 6 except the first) and a 1x1 conv to
1280, relu6 throughout, batch norm everywhere (training_scope: decay 0.997,
epsilon 0.001, scale), then slim's `Logits` head (global average pool, dropout
keep 0.8, the 1x1 conv `Conv2d_1c_1x1`). The zoo checkpoints have 1001 classes.

Names: `mobilenet_v2`, `mobilenet_v2_140` (depth_multiplier 1.4) and
`mobilenet_v2_035` (0.35 with finegrain_classification_mode), as slim's
nets_factory. No keras-style alias: keras.applications' MobileNetV2 rounds depths
differently below alpha 1, keeps 1280 final channels unless alpha > 1, and has a
Dense 1000-class head.
"""

from __future__ import annotations

import dataclasses

import keras

from kslim.models._mobilenet import Conv, ConvDefs, ExpandedConv, MobileNet
from kslim.models._registry import register_model

__all__ = ["MobileNetV2", "V2_DEF", "mobilenet_v2", "mobilenet_v2_035", "mobilenet_v2_140"]

# mobilenet_v2.V2_DEF: (slim.conv2d | expanded_conv, output depth, stride).
V2_DEF = ConvDefs(activation_fn="relu6", spec=(
    Conv(32, kernel_size=3, stride=2),
    ExpandedConv(16, expansion=1, expansion_divisible_by=1),
    ExpandedConv(24, stride=2),
    ExpandedConv(24),
    ExpandedConv(32, stride=2),
    ExpandedConv(32),
    ExpandedConv(32),
    ExpandedConv(64, stride=2),
    ExpandedConv(64),
    ExpandedConv(64),
    ExpandedConv(64),
    ExpandedConv(96),
    ExpandedConv(96),
    ExpandedConv(96),
    ExpandedConv(160, stride=2),
    ExpandedConv(160),
    ExpandedConv(160),
    ExpandedConv(320),
    Conv(1280, kernel_size=1),
))

TABLES = {"V2_DEF": V2_DEF}


@keras.saving.register_keras_serializable(package="kslim")
class MobileNetV2(MobileNet):
    """Slim's MobileNet v2 (`mobilenet_v2.mobilenet`).

    Args:
        num_classes: 0/None returns the global pool (slim's pre-logits features,
            `[batch, 1, 1, depth]`).
        depth_multiplier: scales every row's depth with slim's `_make_divisible`.
        finegrain_classification_mode: keep the last conv at 1280 channels when
            depth_multiplier < 1.
        min_depth, divisible_by: slim's depth rounding (defaults 8, 8).
        conv_defs: "V2_DEF", a `ConvDefs`, or a list of `Conv`/`ExpandedConv` rows.
        output_stride: None, 1 or an even number: strides past it become atrous rates.
        use_explicit_padding: pad k>1 convs explicitly (slim's `_fixed_padding`) and
            run them VALID, instead of TF's SAME.
        activation_fn: replaces the table's default activation (relu6).
        base_only: return the last feature map (no pool, no logits).
        dropout_keep_prob: keep probability of the logits dropout in training.
        weight_decay: slim's L2 on the conv weights (training_scope uses 4e-5;
            depthwise weights are not regularized).
        batch_norm_decay, batch_norm_epsilon: training_scope's 0.997 and 0.001.
        net: the nets_factory name used in messages (set by the registry).
        name: the top-level scope (default `MobilenetV2`).

    Example:
        >>> model = kslim.models.create_model("mobilenet_v2", weights=None)
        >>> logits = model(images, training=False)  # [batch, 1001]
    """

    tables = TABLES

    def __init__(self, num_classes: int | None = 1001, depth_multiplier: float = 1.0,
                 finegrain_classification_mode: bool = False, min_depth: int = 8,
                 divisible_by: int = 8, conv_defs="V2_DEF", output_stride: int | None = None,
                 use_explicit_padding: bool = False, activation_fn: str | None = None,
                 base_only: bool = False, dropout_keep_prob: float = 0.8,
                 weight_decay: float = 0.0, batch_norm_decay: float = 0.997,
                 batch_norm_epsilon: float = 0.001, net: str = "mobilenet_v2",
                 name: str | None = "MobilenetV2", **kwargs):
        super().__init__(
            num_classes, net=net, conv_defs=conv_defs, depth_multiplier=depth_multiplier,
            finegrain_classification_mode=finegrain_classification_mode,
            min_depth=min_depth, divisible_by=divisible_by, output_stride=output_stride,
            use_explicit_padding=use_explicit_padding, base_only=base_only,
            dropout_keep_prob=dropout_keep_prob, weight_decay=weight_decay,
            batch_norm_decay=batch_norm_decay, batch_norm_epsilon=batch_norm_epsilon,
            activation_fn=activation_fn, name=name or "MobilenetV2", **kwargs)

    def _finegrain(self, defs):
        rows = [(row, False) for row in defs.spec]
        # slim v2 divides the last row's depth by the multiplier (< 1 only), so the
        # multiplier brings it back to its full size.
        if self.finegrain_classification_mode and self.depth_multiplier < 1:
            last = rows[-1][0]
            if hasattr(last, "num_outputs"):
                rows[-1] = (dataclasses.replace(
                    last, num_outputs=last.num_outputs / self.depth_multiplier), False)
        return rows

    def get_config(self):
        return {**super().get_config(), "activation_fn": self.activation_fn}


_SPEC = dict(image_size=224, num_classes=1001, scope="MobilenetV2")
mobilenet_v2 = register_model("mobilenet_v2", MobileNetV2, preprocessing="mobilenet_v2",
                              net="mobilenet_v2", **_SPEC)
mobilenet_v2_140 = register_model("mobilenet_v2_140", MobileNetV2,
                                  preprocessing="mobilenet_v2_140", net="mobilenet_v2_140",
                                  depth_multiplier=1.4, **_SPEC)
mobilenet_v2_035 = register_model("mobilenet_v2_035", MobileNetV2,
                                  preprocessing="mobilenet_v2_035", net="mobilenet_v2_035",
                                  depth_multiplier=0.35, finegrain_classification_mode=True,
                                  **_SPEC)
