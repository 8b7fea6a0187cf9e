"""LeNet as research/slim's `nets/lenet.py` (a LeNet-5 variant for MNIST).

LeCun et al., "Gradient-Based Learning Applied to Document Recognition", 1998.
Two 5x5 SAME convolutions (32, 64) with 2x2 max pools, `fc3` (1024) and the `fc4`
classifier. Slim's nets_factory size is 28; the input channel count is whatever the
model is built for (1 for MNIST, the default).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from kslim.models._base import SlimModel
from kslim.models._layers import Conv2d, FullyConnected
from kslim.models._registry import register_model

__all__ = ["LeNet", "lenet"]

# lenet_arg_scope: truncated_normal(stddev=0.1) weights, relu.
_INIT = {"class_name": "TruncatedNormal", "config": {"stddev": 0.1}}


@keras.saving.register_keras_serializable(package="kslim")
class LeNet(SlimModel):
    """Slim's LeNet.

    Args:
        num_classes: 0/None returns fc3's output (slim's pre-logits features).
        dropout_keep_prob: dropout3's keep probability in training.
        weight_decay: slim's L2 on every `weights` tensor (lenet_arg_scope: 0).
        name: the top-level scope (default `LeNet`).

    Example:
        >>> model = kslim.models.create_model("lenet", num_classes=10)
    """

    slim_name = "lenet"
    head_scopes = ("fc4",)
    input_channels = 1

    def __init__(self, num_classes: int | None = 10, dropout_keep_prob: float = 0.5,
                 weight_decay: float = 0.0, name: str | None = "LeNet", **kwargs):
        super().__init__(num_classes=num_classes, name=name or "LeNet", **kwargs)
        self.dropout_keep_prob = dropout_keep_prob
        self.weight_decay = weight_decay
        layer = dict(weight_decay=weight_decay, kernel_initializer=_INIT)
        self.conv1 = Conv2d(32, 5, name="conv1", **layer)
        self.conv2 = Conv2d(64, 5, name="conv2", **layer)
        self.pool = keras.layers.MaxPooling2D(2, 2, padding="valid")
        self.fc3 = FullyConnected(1024, name="fc3", **layer)
        if self.num_classes:
            self.dropout3 = keras.layers.Dropout(1.0 - dropout_keep_prob, name="dropout3")
            self.fc4 = FullyConnected(self.num_classes, activation_fn=None, name="fc4", **layer)

    @property
    def min_input_size(self) -> int:
        return 4  # two 2x2 pools leave at least 1x1

    def forward(self, x, training=None):
        end_points = {}
        x = end_points["conv1"] = self.conv1(x)
        x = end_points["pool1"] = self.pool(x)
        x = end_points["conv2"] = self.conv2(x)
        x = end_points["pool2"] = self.pool(x)
        x = end_points["Flatten"] = tf.reshape(x, [-1, x.shape[1] * x.shape[2] * x.shape[3]])
        x = end_points["fc3"] = self.fc3(x)
        if not self.num_classes:
            return x, end_points
        x = end_points["dropout3"] = self.dropout3(x, training=training)
        x = end_points["Logits"] = self.fc4(x)
        end_points["Predictions"] = tf.nn.softmax(x)
        return x, end_points

    def get_config(self):
        return {**self._base_config(), "dropout_keep_prob": self.dropout_keep_prob,
                "weight_decay": self.weight_decay}


lenet = register_model("lenet", LeNet, image_size=28, num_classes=10, preprocessing="lenet",
                       scope="LeNet")
