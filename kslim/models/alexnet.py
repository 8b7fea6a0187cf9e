"""AlexNet v2 as research/slim's `nets/alexnet.py`.

Krizhevsky, "One weird trick for parallelizing convolutional neural networks", 2014
(the single-column AlexNet without LRN; first described in Krizhevsky, Sutskever &
Hinton, "ImageNet Classification with Deep Convolutional Neural Networks", 2012).

The fully connected layers are convolutions (`fc6` a 5x5 VALID conv), so the net runs
fully convolutionally on images larger than 224 with `spatial_squeeze=False` or
`global_pool=True`. `alexnet_v2_arg_scope`: biases start at 0.1, `fc6`..`fc8` weights
from a truncated normal with stddev 0.005 (`fc8` biases at 0), SAME convolutions and
VALID max pools. Slim has no zoo checkpoint for it; the default 1000 classes are the
function's. `ConvFcNet` is the structure it shares with OverFeat (`overfeat.py`).
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from kslim.models._base import SlimModel
from kslim.models._layers import Conv2d
from kslim.models._registry import register_model

__all__ = ["AlexNetV2", "ConvFcNet", "alexnet_v2"]

# The trunk: ("conv", scope, depth, kernel, stride, padding) or ("pool", scope, kernel,
# stride); max pools are VALID.
TRUNK = (
    ("conv", "conv1", 64, 11, 4, "VALID"),
    ("pool", "pool1", 3, 2),
    ("conv", "conv2", 192, 5, 1, "SAME"),
    ("pool", "pool2", 3, 2),
    ("conv", "conv3", 384, 3, 1, "SAME"),
    ("conv", "conv4", 384, 3, 1, "SAME"),
    ("conv", "conv5", 256, 3, 1, "SAME"),
    ("pool", "pool5", 3, 2),
)
FC6 = (4096, 5)  # fc6: depth, kernel (VALID)
FC7 = 4096

_FC_INIT = {"class_name": "TruncatedNormal", "config": {"stddev": 0.005}}
_FC_BIAS = {"class_name": "Constant", "config": {"value": 0.1}}


def min_input_size(trunk: Sequence[tuple], fc6_kernel: int) -> int:
    """The smallest image side for which the VALID `fc6` still gets a full window:
    walks the trunk backwards (`in >= (out - 1) * stride + kernel` for VALID,
    `in >= (out - 1) * stride + 1` for SAME)."""
    size = fc6_kernel
    for layer in reversed(trunk):
        if layer[0] == "conv":
            _, _, _, kernel, stride, padding = layer
        else:
            _, _, kernel, stride = layer
            padding = "VALID"
        size = (size - 1) * stride + (kernel if padding == "VALID" else 1)
    return size


class ConvFcNet(SlimModel):
    """AlexNet/OverFeat: a conv trunk, then `fc6` (VALID conv), `fc7` and `fc8` (1x1
    convs) with dropout before `fc7` and `fc8`.

    Subclasses set `slim_name`, `TRUNK`, `FC6`, `FC7` and `conv_bias_init` (the
    arg scope's biases initializer of the trunk).

    Args:
        num_classes: fc8 outputs; 0/None returns fc7's output (after `global_pool`, if
            set), the features research/slim returns.
        dropout_keep_prob: dropout6/dropout7 keep probability in training.
        spatial_squeeze: squeeze fc8's 1x1 spatial dimensions away.
        global_pool: average fc7 over its spatial dimensions before fc8 (any input size
            at least `min_input_size`).
        weight_decay: slim's L2 on every `weights` tensor (the arg scopes use 5e-4;
            nets_factory's default is 0).
        name: the top-level scope (default the slim name).
    """

    head_scopes = ("fc8",)
    TRUNK: tuple = ()
    FC6: tuple = ()
    FC7: int = 0
    conv_bias_init: float = 0.0

    def __init__(self, num_classes: int | None = 1000, dropout_keep_prob: float = 0.5,
                 spatial_squeeze: bool = True, global_pool: bool = False,
                 weight_decay: float = 0.0, name: str | None = None, **kwargs):
        super().__init__(num_classes=num_classes, name=name or self.slim_name, **kwargs)
        if not 0.0 < dropout_keep_prob <= 1.0:
            raise ValueError(f"{self.slim_name}: dropout_keep_prob must be in (0, 1], "
                             f"got {dropout_keep_prob!r}")
        self.dropout_keep_prob = dropout_keep_prob
        self.spatial_squeeze = spatial_squeeze
        self.global_pool = global_pool
        self.weight_decay = weight_decay

        trunk_bias = {"class_name": "Constant", "config": {"value": self.conv_bias_init}}
        self.trunk = []
        for row in self.TRUNK:
            if row[0] == "conv":
                _, scope, depth, kernel, stride, padding = row
                self.trunk.append(Conv2d(depth, kernel, stride=stride, padding=padding,
                                         weight_decay=weight_decay,
                                         bias_initializer=trunk_bias, name=scope))
            else:
                _, scope, kernel, stride = row
                self.trunk.append(keras.layers.MaxPooling2D(kernel, stride, name=scope))
        fc = dict(weight_decay=weight_decay, kernel_initializer=_FC_INIT)
        depth6, kernel6 = self.FC6
        self.fc6 = Conv2d(depth6, kernel6, padding="VALID", bias_initializer=_FC_BIAS,
                          name="fc6", **fc)
        self.dropout6 = keras.layers.Dropout(1.0 - dropout_keep_prob, name="dropout6")
        self.fc7 = Conv2d(self.FC7, 1, bias_initializer=_FC_BIAS, name="fc7", **fc)
        if self.num_classes:
            self.dropout7 = keras.layers.Dropout(1.0 - dropout_keep_prob, name="dropout7")
            self.fc8 = Conv2d(self.num_classes, 1, activation_fn=None,
                              bias_initializer="zeros", name="fc8", **fc)

    @property
    def min_input_size(self) -> int:
        return min_input_size(self.TRUNK, self.FC6[1])

    def forward(self, x, training=None):
        scope = self.name
        end_points = {}
        for layer in self.trunk:
            x = end_points[f"{scope}/{layer.name}"] = layer(x, training=training)
        x = end_points[f"{scope}/fc6"] = self.fc6(x, training=training)
        x = self.dropout6(x, training=training)
        x = end_points[f"{scope}/fc7"] = self.fc7(x, training=training)
        if self.global_pool:
            x = end_points["global_pool"] = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        if self.num_classes:
            x = self.dropout7(x, training=training)
            x = self.fc8(x, training=training)
            if self.spatial_squeeze:
                if x.shape[1] not in (1, None) or x.shape[2] not in (1, None):
                    raise ValueError(
                        f"{self.slim_name}: spatial_squeeze needs fc8 to be 1x1 but it is "
                        f"{x.shape[1]}x{x.shape[2]} for this input size; use "
                        f"{self.min_input_size}x{self.min_input_size} images, "
                        "global_pool=True or spatial_squeeze=False")
                x = tf.squeeze(x, axis=[1, 2])
            end_points[f"{scope}/fc8"] = x
        return x, end_points

    def get_config(self):
        return {**self._base_config(), "dropout_keep_prob": self.dropout_keep_prob,
                "spatial_squeeze": self.spatial_squeeze, "global_pool": self.global_pool,
                "weight_decay": self.weight_decay}


@keras.saving.register_keras_serializable(package="kslim")
class AlexNetV2(ConvFcNet):
    """Slim's `alexnet_v2`: five convolutions (11x11/4, 5x5, 3x3 x3) with 3x3/2 max
    pools, `fc6` a 5x5 VALID conv (4096), `fc7` (4096), `fc8`. Images of at least
    195x195 (224 in slim's factory). See `ConvFcNet` for the arguments.

    Example:
        >>> model = kslim.models.create_model("alexnet_v2", num_classes=1000)
        >>> logits = model(images, training=False)
    """

    slim_name = "alexnet_v2"
    TRUNK = TRUNK
    FC6 = FC6
    FC7 = FC7
    conv_bias_init = 0.1  # alexnet_v2_arg_scope's biases_initializer


# Slim's preprocessing map has no entry for alexnet_v2; its caffe-style nets use vgg's.
alexnet_v2 = register_model("alexnet_v2", AlexNetV2, image_size=224, num_classes=1000,
                            preprocessing="vgg")
