"""CifarNet as research/slim's `nets/cifarnet.py` (the cuda-convnet CIFAR-10 model).

Two 5x5 convolutions (64) with 2x2 max pools and local response normalization,
`fc3` (384), `fc4` (192) and the `logits` classifier, on 32x32 images.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from kslim.models._base import SlimModel
from kslim.models._layers import Conv2d, FullyConnected
from kslim.models._registry import register_model

__all__ = ["CifarNet", "cifarnet"]


def _truncated_normal(stddev: float) -> dict:
    return {"class_name": "TruncatedNormal", "config": {"stddev": stddev}}


def _lrn(x):
    # tf.nn.lrn(net, 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75), as slim's cifarnet.
    return tf.nn.lrn(x, 4, bias=1.0, alpha=0.001 / 9.0, beta=0.75)


@keras.saving.register_keras_serializable(package="kslim")
class CifarNet(SlimModel):
    """Slim's CifarNet.

    Args:
        num_classes: 0/None returns fc4's output (slim's pre-logits features).
        dropout_keep_prob: dropout3's keep probability in training.
        weight_decay: slim's L2 on fc3 and fc4 weights (cifarnet_arg_scope: 0.004;
            nets_factory passes 0 unless told).
        name: the top-level scope (default `CifarNet`).
    """

    slim_name = "cifarnet"
    head_scopes = ("logits",)

    def __init__(self, num_classes: int | None = 10, dropout_keep_prob: float = 0.5,
                 weight_decay: float = 0.0, name: str | None = "CifarNet", **kwargs):
        super().__init__(num_classes=num_classes, name=name or "CifarNet", **kwargs)
        self.dropout_keep_prob = dropout_keep_prob
        self.weight_decay = weight_decay
        # cifarnet_arg_scope: convs truncated_normal(0.05); fcs truncated_normal(0.04),
        # biases 0.1 and L2; the logits truncated_normal(1/192), zero biases, no L2.
        conv = dict(kernel_initializer=_truncated_normal(5e-2))
        fc = dict(kernel_initializer=_truncated_normal(0.04), weight_decay=weight_decay,
                  bias_initializer=keras.initializers.Constant(0.1))
        self.conv1 = Conv2d(64, 5, name="conv1", **conv)
        self.conv2 = Conv2d(64, 5, name="conv2", **conv)
        self.pool = keras.layers.MaxPooling2D(2, 2, padding="valid")
        self.fc3 = FullyConnected(384, name="fc3", **fc)
        self.dropout3 = keras.layers.Dropout(1.0 - dropout_keep_prob, name="dropout3")
        self.fc4 = FullyConnected(192, name="fc4", **fc)
        if self.num_classes:
            self.logits = FullyConnected(self.num_classes, activation_fn=None, name="logits",
                                         kernel_initializer=_truncated_normal(1 / 192.0))

    @property
    def min_input_size(self) -> int:
        return 4

    def forward(self, x, training=None):
        end_points = {}
        x = end_points["conv1"] = self.conv1(x)
        x = end_points["pool1"] = self.pool(x)
        x = end_points["conv2"] = self.conv2(_lrn(x))
        x = end_points["pool2"] = self.pool(_lrn(x))
        x = end_points["Flatten"] = tf.reshape(x, [-1, x.shape[1] * x.shape[2] * x.shape[3]])
        x = end_points["fc3"] = self.fc3(x)
        x = self.dropout3(x, training=training)
        x = end_points["fc4"] = self.fc4(x)
        if not self.num_classes:
            return x, end_points
        x = end_points["Logits"] = self.logits(x)
        end_points["Predictions"] = tf.nn.softmax(x)
        return x, end_points

    def get_config(self):
        return {**self._base_config(), "dropout_keep_prob": self.dropout_keep_prob,
                "weight_decay": self.weight_decay}


cifarnet = register_model("cifarnet", CifarNet, image_size=32, num_classes=10,
                          preprocessing="cifarnet", scope="CifarNet")
