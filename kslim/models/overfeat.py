"""OverFeat as research/slim's `nets/overfeat.py`.

Sermanet, Eigen, Zhang, Mathieu, Fergus & LeCun, "OverFeat: Integrated Recognition,
Localization and Detection using Convolutional Networks", 2014 (the "fast" model).

Same structure as AlexNet v2 (`alexnet.ConvFcNet`): an 11x11/4 VALID conv, 2x2/2 max
pools, a 5x5 VALID `conv2`, three 3x3 SAME convs, `fc6` a 6x6 VALID conv (3072), `fc7`
(4096) and `fc8`. `overfeat_arg_scope`: trunk biases start at 0, `fc6`/`fc7` biases at
0.1, `fc6`..`fc8` weights from a truncated normal with stddev 0.005. 231x231 is both the
factory's image size and the smallest the net accepts. Slim has no zoo checkpoint.
"""

from __future__ import annotations

import keras

from kslim.models._registry import register_model
from kslim.models.alexnet import ConvFcNet

__all__ = ["OverFeat", "overfeat"]

TRUNK = (
    ("conv", "conv1", 64, 11, 4, "VALID"),
    ("pool", "pool1", 2, 2),
    ("conv", "conv2", 256, 5, 1, "VALID"),
    ("pool", "pool2", 2, 2),
    ("conv", "conv3", 512, 3, 1, "SAME"),
    ("conv", "conv4", 1024, 3, 1, "SAME"),
    ("conv", "conv5", 1024, 3, 1, "SAME"),
    ("pool", "pool5", 2, 2),
)
FC6 = (3072, 6)  # fc6: depth, kernel (VALID)
FC7 = 4096


@keras.saving.register_keras_serializable(package="kslim")
class OverFeat(ConvFcNet):
    """Slim's `overfeat`. See `alexnet.ConvFcNet` for the arguments
    (`num_classes`, `dropout_keep_prob`, `spatial_squeeze`, `global_pool`,
    `weight_decay`, `name`).

    Example:
        >>> model = kslim.models.create_model("overfeat", num_classes=1000)
        >>> logits = model(images_231, training=False)
    """

    slim_name = "overfeat"
    TRUNK = TRUNK
    FC6 = FC6
    FC7 = FC7
    conv_bias_init = 0.0  # overfeat_arg_scope's biases_initializer


# Slim's preprocessing map has no entry for overfeat; its caffe-style nets use vgg's.
overfeat = register_model("overfeat", OverFeat, image_size=231, num_classes=1000,
                          preprocessing="vgg")
