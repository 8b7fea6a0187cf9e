"""Inception-ResNet-v2, as research/slim's `nets/inception_resnet_v2.py`.

Szegedy et al., "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning", 2016 (https://arxiv.org/abs/1602.07261).

Stem (`Conv2d_1a_3x3` .. `MaxPool_5a_3x3`), `Mixed_5b`, 10 x block35
(`Repeat/block35_N`, scale 0.17), `Mixed_6a`, 20 x block17 (`Repeat_1/block17_N`,
scale 0.10; its output is the `PreAuxLogits` end point), `Mixed_7a`, 9 x block8
(`Repeat_2/block8_N`, scale 0.20), a final linear `Block8`, and `Conv2d_7b_1x1`.
Convs have `BatchNorm` without gamma and relu (`inception_resnet_v2_arg_scope`);
each residual block's up-projection `Conv2d_1x1` has biases and no BatchNorm.
The zoo checkpoint has 1001 classes (class 0 is background).
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import tensorflow as tf

from kslim.models._base import SlimModel
from kslim.models._layers import (Conv2d, FullyConnected, Stack, activation, l2_regularizer,
                                  out_size)
from kslim.models._registry import register_model
# The branch/block machinery is shared with Inception v4 (same slim conventions).
from kslim.models.inception_v4 import (AuxHead, C, ConvSpec, FullConv, Mixed, P, PoolSpec,
                                       Tower, aux_runs, block_size, flatten, global_average,
                                       pool, smallest_input)

__all__ = ["InceptionResnetV2", "inception_resnet_v2", "residual_add"]

# "VALID" below is slim's `padding` variable: SAME everywhere with align_feature_maps.
STEM = (C("Conv2d_1a_3x3", 32, 3, 2, "VALID"), C("Conv2d_2a_3x3", 32, 3, 1, "VALID"),
        C("Conv2d_2b_3x3", 64, 3), P("max", 3, 2, "VALID"),
        C("Conv2d_3b_1x1", 80, 1, 1, "VALID"), C("Conv2d_4a_3x3", 192, 3, 1, "VALID"),
        P("max", 3, 2, "VALID"))
STEM_END_POINTS = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_3a_3x3",
                   "Conv2d_3b_1x1", "Conv2d_4a_3x3", "MaxPool_5a_3x3")
MIXED_5B = ((C("Conv2d_1x1", 96, 1),),
            (C("Conv2d_0a_1x1", 48, 1), C("Conv2d_0b_5x5", 64, 5)),
            (C("Conv2d_0a_1x1", 64, 1), C("Conv2d_0b_3x3", 96, 3), C("Conv2d_0c_3x3", 96, 3)),
            (P("avg", 3), C("Conv2d_0b_1x1", 64, 1)))
MIXED_6A = ((C("Conv2d_1a_3x3", 384, 3, 2, "VALID"),),
            (C("Conv2d_0a_1x1", 256, 1), C("Conv2d_0b_3x3", 256, 3),
             C("Conv2d_1a_3x3", 384, 3, 2, "VALID")),
            (P("max", 3, 2, "VALID"),))
MIXED_7A = ((C("Conv2d_0a_1x1", 256, 1), C("Conv2d_1a_3x3", 384, 3, 2, "VALID")),
            (C("Conv2d_0a_1x1", 256, 1), C("Conv2d_1a_3x3", 288, 3, 2, "VALID")),
            (C("Conv2d_0a_1x1", 256, 1), C("Conv2d_0b_3x3", 288, 3),
             C("Conv2d_1a_3x3", 320, 3, 2, "VALID")),
            (P("max", 3, 2, "VALID"),))
BLOCK35 = ((C("Conv2d_1x1", 32, 1),),
           (C("Conv2d_0a_1x1", 32, 1), C("Conv2d_0b_3x3", 32, 3)),
           (C("Conv2d_0a_1x1", 32, 1), C("Conv2d_0b_3x3", 48, 3), C("Conv2d_0c_3x3", 64, 3)))
BLOCK17 = ((C("Conv2d_1x1", 192, 1),),
           (C("Conv2d_0a_1x1", 128, 1), C("Conv2d_0b_1x7", 160, (1, 7)),
            C("Conv2d_0c_7x1", 192, (7, 1))))
BLOCK8 = ((C("Conv2d_1x1", 192, 1),),
          (C("Conv2d_0a_1x1", 192, 1), C("Conv2d_0b_1x3", 224, (1, 3)),
           C("Conv2d_0c_3x1", 256, (3, 1))))
# (repeat scope, block name, branches, repeats, scale, channels in and out)
REPEATS = (("Repeat", "block35", BLOCK35, 10, 0.17, 320),
           ("Repeat_1", "block17", BLOCK17, 20, 0.10, 1088),
           ("Repeat_2", "block8", BLOCK8, 9, 0.20, 2080))


def residual_add(net, up, scale: float, activation_fn: str | None):
    """The end of slim's block35/17/8: `net + scale * up`, then the activation.

    Slim's quirk: with relu6 the scaled residual is first clipped to [-6, 6]
    ("to simulate bandpass activation"); no other activation clips.
    """
    scaled = up * scale
    if activation_fn == "relu6":
        scaled = tf.clip_by_value(scaled, -6.0, 6.0)
    net = net + scaled
    fn = activation(activation_fn)
    return fn(net) if fn is not None else net


class _BiasDecayConv2d(Conv2d):
    """Conv2d whose biases get the L2 too (inception_resnet_v2_arg_scope sets
    `biases_regularizer` as well as `weights_regularizer`)."""

    def _add_biases(self, units: int):
        if self.use_bias:
            self.biases = self.add_weight(name="biases", shape=(units,),
                                          initializer=self.bias_initializer,
                                          regularizer=l2_regularizer(self.weight_decay))


class _BiasDecayFullyConnected(FullyConnected):
    """FullyConnected with L2 on its biases too (see `_BiasDecayConv2d`)."""

    _add_biases = _BiasDecayConv2d._add_biases


class ResidualBlock(keras.layers.Layer):
    """slim's block35 / block17 / block8: branches, concat, a linear 1x1 back to the
    input depth (`Conv2d_1x1`, with biases), scaled and added to the input."""

    def __init__(self, branches: Sequence, conv: Callable, channels: int, scale: float,
                 activation_fn: str | None, weight_decay: float, **kwargs):
        super().__init__(**kwargs)
        self.towers = [Tower(ops, conv, name=f"Branch_{i}") for i, ops in enumerate(branches)]
        self.up = _BiasDecayConv2d(channels, 1, activation_fn=None, name="Conv2d_1x1",
                                   weight_decay=weight_decay)
        self.scale = scale
        self.activation_fn = activation_fn

    def call(self, x, training=None):
        mixed = tf.concat([tower(x, training=training) for tower in self.towers], axis=3)
        up = self.up(mixed, training=training)
        return residual_add(x, up, self.scale, self.activation_fn)


@keras.saving.register_keras_serializable(package="kslim")
class InceptionResnetV2(SlimModel):
    """Slim's Inception-ResNet-v2 (`inception_resnet_v2` with its arg scope).

    Args:
        num_classes: classifier outputs; 0/None returns `global_pool` (1x1x1536,
            before dropout) as slim does, with no aux head.
        dropout_keep_prob: `Logits/Dropout` keep probability in training.
        create_aux_logits: build the `AuxLogits` head on `PreAuxLogits` (an output
            in training, `{"logits", "aux_logits"}`, and an end point). Its
            `Conv2d_2a_5x5` kernel is the size of its input when the model is built
            (5x5 at 299x299), as in slim; at other image sizes inference leaves the
            aux head out and training raises.
        activation_fn: the residual blocks' activation (slim's
            `inception_resnet_v2(activation_fn=)`); "relu6" also clips the scaled
            residual, as slim.
        align_feature_maps: SAME padding for every stride/VALID layer of the base
            (`inception_resnet_v2_base(align_feature_maps=True)`): 299 -> 150 -> 75 ...
        conv_activation_fn: the convs' activation (the arg scope's `activation_fn`).
        weight_decay: slim's L2 on conv and fc weights and biases (the arg scope
            default is 4e-5; nets_factory passes 0 unless told).
        batch_norm_decay, batch_norm_epsilon, batch_norm_scale: the BatchNorm
            settings (`scale=False`: no gamma, slim's default).
        name: the top-level scope (default `InceptionResnetV2`).

    Example:
        >>> model = kslim.models.inception_resnet_v2(weights="ckpt/model.ckpt")
        >>> logits = model(images, training=False)       # [batch, 1001]
    """

    slim_name = "inception_resnet_v2"
    head_scopes = ("Logits", "AuxLogits")
    aux_output = "AuxLogits"

    def __init__(self, num_classes: int | None = 1001, dropout_keep_prob: float = 0.8,
                 create_aux_logits: bool = True, activation_fn: str | None = "relu",
                 align_feature_maps: bool = False, conv_activation_fn: str | None = "relu",
                 weight_decay: float = 0.0, batch_norm_decay: float = 0.9997,
                 batch_norm_epsilon: float = 0.001, batch_norm_scale: bool = False,
                 name: str | None = "InceptionResnetV2", **kwargs):
        activation(activation_fn)  # unknown names fail here
        super().__init__(num_classes=num_classes, name=name or "InceptionResnetV2", **kwargs)
        self.dropout_keep_prob = dropout_keep_prob
        self.create_aux_logits = bool(create_aux_logits)
        self.activation_fn = activation_fn
        self.align_feature_maps = bool(align_feature_maps)
        self.conv_activation_fn = conv_activation_fn
        self.weight_decay = weight_decay
        self.batch_norm_decay = batch_norm_decay
        self.batch_norm_epsilon = batch_norm_epsilon
        self.batch_norm_scale = bool(batch_norm_scale)
        self._padding = "SAME" if self.align_feature_maps else "VALID"
        conv_args = dict(activation_fn=conv_activation_fn, weight_decay=weight_decay,
                         batch_norm={"decay": batch_norm_decay, "epsilon": batch_norm_epsilon,
                                     "scale": self.batch_norm_scale})

        def conv(spec: ConvSpec, full: bool = False):
            if full:  # the aux head: literal VALID in slim, whatever align says
                return FullConv(spec.depth, name=spec.name, **conv_args)
            return Conv2d(spec.depth, spec.kernel, stride=spec.stride,
                          padding=self._align(spec.padding), name=spec.name, **conv_args)

        def fc(units: int, name: str):
            return _BiasDecayFullyConnected(units, activation_fn=None,
                                            weight_decay=weight_decay, name=name)

        self.stem = [conv(op) for op in STEM if isinstance(op, ConvSpec)]
        self.mixed_5b = Mixed(self._aligned(MIXED_5B), conv, name="Mixed_5b")
        self.mixed_6a = Mixed(self._aligned(MIXED_6A), conv, name="Mixed_6a")
        self.mixed_7a = Mixed(self._aligned(MIXED_7A), conv, name="Mixed_7a")
        self.repeats = []
        for scope, block, branches, count, scale, channels in REPEATS:
            self.repeats.append(Stack(
                [ResidualBlock(branches, conv, channels, scale, activation_fn, weight_decay,
                               name=f"{block}_{i}") for i in range(1, count + 1)],
                name=scope))
        # The last block8 is linear, unscaled, in slim's default scope `Block8`.
        self.block8 = ResidualBlock(BLOCK8, conv, 2080, 1.0, None, weight_decay,
                                    name="Block8")
        self.conv_7b = conv(C("Conv2d_7b_1x1", 1536, 1))
        self.aux = None
        if self.create_aux_logits and self.num_classes:
            self.aux = AuxHead(self.num_classes, conv, fc,
                               ("Conv2d_1b_1x1", "Conv2d_2a_5x5", "Logits"),
                               name="AuxLogits")
        if self.num_classes:
            self.dropout = keras.layers.Dropout(1.0 - dropout_keep_prob, name="Dropout")
            self.logits = Stack([fc(self.num_classes, "Logits")], name="Logits")

    def _align(self, padding: str) -> str:
        return self._padding if padding == "VALID" else padding

    def _aligned(self, branches):
        return tuple(tuple(op._replace(padding=self._align(op.padding))
                           if isinstance(op, (ConvSpec, PoolSpec)) else op
                           for op in ops) for ops in branches)

    def _sizes(self, size: int) -> dict[str, int]:
        sizes = {}
        for name, op in zip(STEM_END_POINTS, STEM):
            kernel = op.kernel if isinstance(op.kernel, int) else max(op.kernel)
            size = out_size(size, kernel, op.stride, self._align(op.padding)) if size else 0
            sizes[name] = size
        for scope, branches in (("Mixed_5b", MIXED_5B), ("Mixed_6a", MIXED_6A),
                                ("Mixed_7a", MIXED_7A)):
            size = block_size(size, self._aligned(branches)) if size else 0
            sizes[scope] = size
        return sizes

    @property
    def min_input_size(self) -> int:
        def fits(size):
            sizes = self._sizes(size)
            if min(sizes.values()) < 1:
                return False
            return self.aux is None or out_size(sizes["Mixed_6a"], 5, 3, "VALID") >= 1

        return smallest_input(fits)

    def forward(self, x, training=None):
        run_aux = aux_runs(self.slim_name, self.aux,
                           [None if s is None else self._sizes(s)["Mixed_6a"]
                            for s in x.shape[1:3]], training)
        end_points = {}
        convs = iter(self.stem)
        for name, op in zip(STEM_END_POINTS, STEM):
            if isinstance(op, ConvSpec):
                x = next(convs)(x, training=training)
            else:
                x = pool(x, op._replace(padding=self._align(op.padding)))
            end_points[name] = x
        x = end_points["Mixed_5b"] = self.mixed_5b(x, training=training)
        x = self.repeats[0](x, training=training)
        x = end_points["Mixed_6a"] = self.mixed_6a(x, training=training)
        x = end_points["PreAuxLogits"] = self.repeats[1](x, training=training)
        x = end_points["Mixed_7a"] = self.mixed_7a(x, training=training)
        x = self.repeats[2](x, training=training)
        x = self.block8(x, training=training)
        x = end_points["Conv2d_7b_1x1"] = self.conv_7b(x, training=training)
        if run_aux:
            end_points["AuxLogits"] = self.aux(end_points["PreAuxLogits"], training=training)
        x = end_points["global_pool"] = global_average(x)
        if not self.num_classes:
            return x, end_points
        x = flatten(x)
        x = end_points["PreLogitsFlatten"] = self.dropout(x, training=training)
        x = end_points["Logits"] = self.logits(x, training=training)
        end_points["Predictions"] = tf.nn.softmax(x)
        return x, end_points

    def get_config(self):
        return {**self._base_config(), "dropout_keep_prob": self.dropout_keep_prob,
                "create_aux_logits": self.create_aux_logits,
                "activation_fn": self.activation_fn,
                "align_feature_maps": self.align_feature_maps,
                "conv_activation_fn": self.conv_activation_fn,
                "weight_decay": self.weight_decay,
                "batch_norm_decay": self.batch_norm_decay,
                "batch_norm_epsilon": self.batch_norm_epsilon,
                "batch_norm_scale": self.batch_norm_scale}


inception_resnet_v2 = register_model(
    "inception_resnet_v2", InceptionResnetV2, image_size=299, num_classes=1001,
    preprocessing="inception_resnet_v2", scope="InceptionResnetV2")
