"""MobileNet v3 and MobileNet EdgeTPU as research/slim's `nets/mobilenet/mobilenet_v3.py`.

Howard et al., "Searching for MobileNetV3", 2019 (https://arxiv.org/abs/1905.02244);
Gupta & Akin, "Accelerator-aware Neural Network Design using AutoML", 2020
(MobileNet EdgeTPU). The v3 tables use hard-swish (`x * relu6(x + 3) / 6`) and
squeeze-excite (`expanded_conv_N/squeeze_excite/{Conv,Conv_1}`: global mean, 1x1 to
`_make_divisible(depth / 4, 8)` with relu, 1x1 back gated by `relu6(x + 3) *
0.16667`, both with biases) after the depthwise conv; the head reduces to 1x1
(`reduce_to_1x1`) before a biased 1x1 conv without batch norm (`Conv_2`), then
slim's `Logits`. The minimalistic tables drop squeeze-excite, hard-swish and 5x5
kernels. EdgeTPU replaces the early blocks' expansion and depthwise by one `k x k`
expansion conv (`mbv3_fused`) and has no squeeze-excite; its scope is
`MobilenetEdgeTPU`. Batch norm as mobilenet's training_scope (decay 0.997,
epsilon 0.001, scale); 1001 classes.

`finegrain_classification_mode` (set for `mobilenet_edgetpu_075`) keeps the last
row's depth out of the depth multiplier, as slim's v3 does.

No keras-style alias: keras.applications' MobileNetV3 has its own head and gate
constants and a preprocessing layer built in.
"""

from __future__ import annotations

import keras

from kslim.models._mobilenet import Conv, ConvDefs, ExpandedConv, MobileNet, ReduceTo1x1
from kslim.models._registry import register_model

__all__ = [
    "MobileNetV3", "V3_EDGETPU", "V3_LARGE", "V3_LARGE_MINIMALISTIC", "V3_SMALL",
    "V3_SMALL_MINIMALISTIC", "mobilenet_edgetpu", "mobilenet_edgetpu_075",
    "mobilenet_v3_large", "mobilenet_v3_large_minimalistic", "mobilenet_v3_small",
    "mobilenet_v3_small_minimalistic",
]

HS = "hard_swish"


def _op(expansion, num_outputs, kernel_size, stride=1, activation_fn="relu", **kwargs):
    """slim's `mbv3_op(ef, n, k, s, act)`."""
    return ExpandedConv(num_outputs, expansion=expansion, kernel_size=kernel_size,
                        stride=stride, activation_fn=activation_fn, **kwargs)


def _op_se(expansion, num_outputs, kernel_size, stride=1, activation_fn="relu"):
    """slim's `mbv3_op_se`: mbv3_op with squeeze-excite."""
    return _op(expansion, num_outputs, kernel_size, stride, activation_fn,
               squeeze_excite=True)


def _fused(expansion, num_outputs, kernel_size, stride=1):
    """slim's `mbv3_fused`: a k x k expansion conv, no depthwise."""
    return _op(expansion, num_outputs, kernel_size, stride, fused=True)


V3_LARGE = ConvDefs(activation_fn="relu", spec=(
    Conv(16, kernel_size=3, stride=2, activation_fn=HS),
    _op(1, 16, 3),
    _op(4, 24, 3, 2),
    _op(3, 24, 3),
    _op_se(3, 40, 5, 2),
    _op_se(3, 40, 5),
    _op_se(3, 40, 5),
    _op(6, 80, 3, 2, HS),
    _op(2.5, 80, 3, 1, HS),
    _op(184 / 80, 80, 3, 1, HS),
    _op(184 / 80, 80, 3, 1, HS),
    _op_se(6, 112, 3, 1, HS),
    _op_se(6, 112, 3, 1, HS),
    _op_se(6, 160, 5, 2, HS),
    _op_se(6, 160, 5, 1, HS),
    _op_se(6, 160, 5, 1, HS),
    Conv(960, kernel_size=1, activation_fn=HS),
    ReduceTo1x1(7),
    Conv(1280, kernel_size=1, activation_fn=HS, batch_norm=False),
))

V3_LARGE_MINIMALISTIC = ConvDefs(activation_fn="relu", spec=(
    Conv(16, kernel_size=3, stride=2),
    _op(1, 16, 3),
    _op(4, 24, 3, 2),
    _op(3, 24, 3),
    _op(3, 40, 3, 2),
    _op(3, 40, 3),
    _op(3, 40, 3),
    _op(6, 80, 3, 2),
    _op(2.5, 80, 3),
    _op(184 / 80, 80, 3),
    _op(184 / 80, 80, 3),
    _op(6, 112, 3),
    _op(6, 112, 3),
    _op(6, 160, 3, 2),
    _op(6, 160, 3),
    _op(6, 160, 3),
    Conv(960, kernel_size=1),
    ReduceTo1x1(7),
    Conv(1280, kernel_size=1, batch_norm=False),
))

V3_SMALL = ConvDefs(activation_fn="relu", spec=(
    Conv(16, kernel_size=3, stride=2, activation_fn=HS),
    _op_se(1, 16, 3, 2),
    _op(72 / 16, 24, 3, 2),
    _op(88 / 24, 24, 3),
    _op_se(4, 40, 5, 2, HS),
    _op_se(6, 40, 5, 1, HS),
    _op_se(6, 40, 5, 1, HS),
    _op_se(3, 48, 5, 1, HS),
    _op_se(3, 48, 5, 1, HS),
    _op_se(6, 96, 5, 2, HS),
    _op_se(6, 96, 5, 1, HS),
    _op_se(6, 96, 5, 1, HS),
    Conv(576, kernel_size=1, activation_fn=HS),
    ReduceTo1x1(7),
    Conv(1024, kernel_size=1, activation_fn=HS, batch_norm=False),
))

V3_SMALL_MINIMALISTIC = ConvDefs(activation_fn="relu", spec=(
    Conv(16, kernel_size=3, stride=2),
    _op(1, 16, 3, 2),
    _op(72 / 16, 24, 3, 2),
    _op(88 / 24, 24, 3),
    _op(4, 40, 3, 2),
    _op(6, 40, 3),
    _op(6, 40, 3),
    _op(3, 48, 3),
    _op(3, 48, 3),
    _op(6, 96, 3, 2),
    _op(6, 96, 3),
    _op(6, 96, 3),
    Conv(576, kernel_size=1),
    ReduceTo1x1(7),
    Conv(1024, kernel_size=1, batch_norm=False),
))

V3_EDGETPU = ConvDefs(activation_fn="relu", spec=(
    Conv(32, kernel_size=3, stride=2),
    _fused(1, 16, 3),
    _fused(8, 32, 3, 2),
    _fused(4, 32, 3),
    _fused(4, 32, 3),
    _fused(4, 32, 3),
    _fused(8, 48, 3, 2),
    _fused(4, 48, 3),
    _fused(4, 48, 3),
    _fused(4, 48, 3),
    _op(8, 96, 3, 2),
    _op(4, 96, 3),
    _op(4, 96, 3),
    _op(4, 96, 3),
    _op(8, 96, 3, residual=False),
    _op(4, 96, 3),
    _op(4, 96, 3),
    _op(4, 96, 3),
    _op(8, 160, 5, 2),
    _op(4, 160, 5),
    _op(4, 160, 5),
    _op(4, 160, 5),
    _op(8, 192, 3),
    Conv(1280, kernel_size=1),
))

TABLES = {
    "V3_LARGE": V3_LARGE,
    "V3_LARGE_MINIMALISTIC": V3_LARGE_MINIMALISTIC,
    "V3_SMALL": V3_SMALL,
    "V3_SMALL_MINIMALISTIC": V3_SMALL_MINIMALISTIC,
    "V3_EDGETPU": V3_EDGETPU,
}


@keras.saving.register_keras_serializable(package="kslim")
class MobileNetV3(MobileNet):
    """Slim's MobileNet v3 and EdgeTPU (`mobilenet_v3.mobilenet` over a table).

    Args:
        num_classes: 0/None returns the global pool (`[batch, 1, 1, depth]`).
        conv_defs: "V3_LARGE" (default), "V3_SMALL", "V3_LARGE_MINIMALISTIC",
            "V3_SMALL_MINIMALISTIC", "V3_EDGETPU", a `ConvDefs` or a list of rows.
        depth_multiplier: scales every row's depth with slim's `_make_divisible`.
        finegrain_classification_mode: keep the last row's depth unscaled.
        min_depth, divisible_by: slim's depth rounding (defaults 8, 8; slim sets
            them through an arg_scope on `mobilenet.depth_multiplier`).
        output_stride: None, 1 or an even number: strides past it become atrous
            rates. Slim's own graph fails below 32 for the tables that end in
            `reduce_to_1x1` (it hands the rate to avg_pool2d); kslim pools unchanged.
        use_explicit_padding: pad each k>1 conv (first conv, depthwise, fused
            expansion) explicitly and run it VALID. Slim's v3 graph fails with this
            flag (it pads the block input and passes the flag to reduce_to_1x1); kslim
            gives it the meaning it has for MobileNet v2.
        base_only: return the last feature map (no pool, no logits).
        dropout_keep_prob: keep probability of the logits dropout in training.
        weight_decay: slim's L2 on the conv weights (depthwise not regularized).
        batch_norm_decay, batch_norm_epsilon: training_scope's 0.997 and 0.001.
        net: the nets_factory name used in messages (set by the registry).
        name: the top-level scope (default `MobilenetV3`, `MobilenetEdgeTPU` for
            the EdgeTPU table).

    Example:
        >>> model = kslim.models.create_model("mobilenet_v3_small", weights=None)
        >>> points = model.endpoints(images)  # layer_1 .. layer_15, Logits, ...
    """

    tables = TABLES

    def __init__(self, num_classes: int | None = 1001, conv_defs="V3_LARGE",
                 depth_multiplier: float = 1.0, finegrain_classification_mode: bool = False,
                 min_depth: int = 8, divisible_by: int = 8, output_stride: int | None = None,
                 use_explicit_padding: bool = False, base_only: bool = False,
                 dropout_keep_prob: float = 0.8, weight_decay: float = 0.0,
                 batch_norm_decay: float = 0.997, batch_norm_epsilon: float = 0.001,
                 net: str = "mobilenet_v3_large", name: str | None = None, **kwargs):
        if name is None:
            name = "MobilenetEdgeTPU" if conv_defs == "V3_EDGETPU" else "MobilenetV3"
        super().__init__(
            num_classes, net=net, conv_defs=conv_defs, depth_multiplier=depth_multiplier,
            finegrain_classification_mode=finegrain_classification_mode,
            min_depth=min_depth, divisible_by=divisible_by, output_stride=output_stride,
            use_explicit_padding=use_explicit_padding, base_only=base_only,
            dropout_keep_prob=dropout_keep_prob, weight_decay=weight_decay,
            batch_norm_decay=batch_norm_decay, batch_norm_epsilon=batch_norm_epsilon,
            name=name, **kwargs)

    def _finegrain(self, defs):
        rows = [(row, False) for row in defs.spec]
        # slim v3 replaces the last op's multiplier function by the identity.
        if self.finegrain_classification_mode:
            rows[-1] = (rows[-1][0], True)
        return rows


def _register(name, conv_defs, scope="MobilenetV3", **fixed):
    return register_model(name, MobileNetV3, image_size=224, num_classes=1001,
                          preprocessing=name, scope=scope, net=name, conv_defs=conv_defs,
                          **fixed)


mobilenet_v3_small = _register("mobilenet_v3_small", "V3_SMALL")
mobilenet_v3_large = _register("mobilenet_v3_large", "V3_LARGE")
mobilenet_v3_small_minimalistic = _register("mobilenet_v3_small_minimalistic",
                                            "V3_SMALL_MINIMALISTIC")
mobilenet_v3_large_minimalistic = _register("mobilenet_v3_large_minimalistic",
                                            "V3_LARGE_MINIMALISTIC")
mobilenet_edgetpu = _register("mobilenet_edgetpu", "V3_EDGETPU", scope="MobilenetEdgeTPU")
mobilenet_edgetpu_075 = _register("mobilenet_edgetpu_075", "V3_EDGETPU",
                                  scope="MobilenetEdgeTPU", depth_multiplier=0.75,
                                  finegrain_classification_mode=True)
