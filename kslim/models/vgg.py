"""VGG nets A (11 layers), D (16) and E (19), as research/slim's `nets/vgg.py`.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", 2014. The fully connected layers are convolutions (`fc6` a 7x7 VALID
conv), so the net runs fully convolutionally on larger images; the slim zoo
checkpoints have 1000 classes (no background class).

Aliases: `vgg16` and `vgg19` are keras.applications' VGG16/VGG19 architecture
(same layers and shapes; keras names them `block1_conv1`, slim `conv1/conv1_1`).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from kslim.models._base import SlimModel
from kslim.models._layers import Conv2d, Stack
from kslim.models._registry import register_model

__all__ = ["VGG", "vgg_a", "vgg_16", "vgg_19", "vgg16", "vgg19"]

# Convolutions per block (slim.repeat counts); widths are 64, 128, 256, 512, 512.
DEPTHS = {
    "vgg_a": (1, 1, 2, 2, 2),
    "vgg_16": (2, 2, 3, 3, 3),
    "vgg_19": (2, 2, 4, 4, 4),
}
WIDTHS = (64, 128, 256, 512, 512)


@keras.saving.register_keras_serializable(package="kslim")
class VGG(SlimModel):
    """Slim's VGG (`vgg_a`, `vgg_16`, `vgg_19`).

    Args:
        depth: one of `DEPTHS` (the slim function name).
        num_classes: 0/None returns fc7's output (slim's pre-logits features).
        dropout_keep_prob: dropout6/dropout7 keep probability in training.
        spatial_squeeze: squeeze fc8's 1x1 spatial dimensions away.
        fc_conv_padding: padding of fc6; 'SAME' runs the net fully convolutionally.
        global_pool: average fc7 over its spatial dimensions (any input size).
        weight_decay: slim's L2 on every `weights` tensor (vgg_arg_scope uses 5e-4).
        name: the top-level scope (default the slim name, e.g. `vgg_16`).

    Example:
        >>> model = kslim.models.create_model("vgg_16", num_classes=1000)
        >>> logits = model(images, training=False)
    """

    head_scopes = ("fc8",)

    def __init__(self, depth: str = "vgg_16", num_classes: int | None = 1000,
                 dropout_keep_prob: float = 0.5, spatial_squeeze: bool = True,
                 fc_conv_padding: str = "VALID", global_pool: bool = False,
                 weight_decay: float = 0.0, name: str | None = None, **kwargs):
        if depth not in DEPTHS:
            raise ValueError(f"unknown VGG depth {depth!r}; expected one of {sorted(DEPTHS)}")
        if fc_conv_padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"{depth}: fc_conv_padding must be 'SAME' or 'VALID', "
                             f"got {fc_conv_padding!r}")
        super().__init__(num_classes=num_classes, name=name or depth, **kwargs)
        self.slim_name = depth
        self.depth = depth
        self.dropout_keep_prob = dropout_keep_prob
        self.spatial_squeeze = spatial_squeeze
        self.fc_conv_padding = fc_conv_padding.upper()
        self.global_pool = global_pool
        self.weight_decay = weight_decay

        conv = dict(weight_decay=weight_decay)
        self.blocks = []
        for block, (repeats, width) in enumerate(zip(DEPTHS[depth], WIDTHS), start=1):
            scope = f"conv{block}"
            self.blocks.append(Stack(
                [Conv2d(width, 3, name=f"{scope}_{i}", **conv) for i in range(1, repeats + 1)],
                name=scope))
        self.pool = keras.layers.MaxPooling2D(2, 2, padding="valid")
        self.fc6 = Conv2d(4096, 7, padding=self.fc_conv_padding, name="fc6", **conv)
        self.dropout6 = keras.layers.Dropout(1.0 - dropout_keep_prob, name="dropout6")
        self.fc7 = Conv2d(4096, 1, name="fc7", **conv)
        if self.num_classes:
            self.dropout7 = keras.layers.Dropout(1.0 - dropout_keep_prob, name="dropout7")
            self.fc8 = Conv2d(self.num_classes, 1, activation_fn=None, name="fc8", **conv)

    @property
    def min_input_size(self) -> int:
        # Five 2x2 VALID pools, then fc6's 7x7 VALID conv needs 7x7 left.
        return 224 if self.fc_conv_padding == "VALID" else 32

    def forward(self, x, training=None):
        scope = self.name
        end_points = {}
        for block_index, block in enumerate(self.blocks, start=1):
            x = block.collect(x, end_points, prefix=scope, training=training)
            x = self.pool(x)
            end_points[f"{scope}/pool{block_index}"] = x
        x = self.fc6(x)
        end_points[f"{scope}/fc6"] = x
        x = self.dropout6(x, training=training)
        x = self.fc7(x)
        end_points[f"{scope}/fc7"] = x
        if self.global_pool:
            x = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
            end_points["global_pool"] = x
        if self.num_classes:
            x = self.dropout7(x, training=training)
            x = self.fc8(x)
            if self.spatial_squeeze:
                if x.shape[1] != 1 or x.shape[2] != 1:
                    raise ValueError(
                        f"{self.depth}: spatial_squeeze needs fc8 to be 1x1 but it is "
                        f"{x.shape[1]}x{x.shape[2]} for this input size; use 224x224 "
                        "images, global_pool=True or spatial_squeeze=False")
                x = tf.squeeze(x, axis=[1, 2])
            end_points[f"{scope}/fc8"] = x
        return x, end_points

    def get_config(self):
        return {**self._base_config(), "depth": self.depth,
                "dropout_keep_prob": self.dropout_keep_prob,
                "spatial_squeeze": self.spatial_squeeze,
                "fc_conv_padding": self.fc_conv_padding,
                "global_pool": self.global_pool, "weight_decay": self.weight_decay}


vgg_a = register_model("vgg_a", VGG, image_size=224, num_classes=1000,
                       preprocessing="vgg", depth="vgg_a")
vgg_16 = register_model("vgg_16", VGG, image_size=224, num_classes=1000,
                        preprocessing="vgg", depth="vgg_16", aliases=("vgg16",))
vgg_19 = register_model("vgg_19", VGG, image_size=224, num_classes=1000,
                        preprocessing="vgg", depth="vgg_19", aliases=("vgg19",))
vgg16 = vgg_16
vgg19 = vgg_19
