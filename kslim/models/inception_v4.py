"""Inception v4, as research/slim's `nets/inception_v4.py` (with `inception_utils`).

Szegedy et al., "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning", 2016 (https://arxiv.org/abs/1602.07261).

The stem (`Conv2d_1a_3x3` .. `Mixed_5a`), 4 Inception-A blocks (`Mixed_5b..e`),
Reduction-A (`Mixed_6a`), 7 Inception-B blocks (`Mixed_6b..h`), Reduction-B
(`Mixed_7a`) and 3 Inception-C blocks (`Mixed_7b..d`) are tables of branches;
each conv has `BatchNorm` without gamma and relu (slim's `inception_arg_scope`).
The auxiliary head `AuxLogits` reads `Mixed_6h`; the classifier is
`Logits/Logits`. The zoo checkpoint has 1001 classes (class 0 is background).

The block machinery here (`ConvSpec`, `PoolSpec`, `Split`, the branch towers and
the aux head) is shared with `inception_resnet_v2.py`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import keras
import tensorflow as tf

from kslim.models._base import SlimModel
from kslim.models._layers import Conv2d, FullyConnected, Stack, out_size, pair
from kslim.models._registry import register_model

__all__ = ["InceptionV4", "inception_v4"]


# -- the architecture as data -----------------------------------------------------------

class ConvSpec(NamedTuple):
    """One slim.conv2d of a branch: scope name, depth, kernel, stride, padding."""

    name: str
    depth: int
    kernel: int | tuple[int, int]
    stride: int = 1
    padding: str = "SAME"


class PoolSpec(NamedTuple):
    """A slim max/avg pool (no variables): 'max' or 'avg', kernel, stride, padding."""

    kind: str
    kernel: int
    stride: int = 1
    padding: str = "SAME"


class Split(NamedTuple):
    """Convs run on the same input and concatenated, inside one branch scope
    (Inception-C's `Conv2d_0b_1x3` + `Conv2d_0c_3x1`)."""

    convs: tuple


def C(name, depth, kernel, stride=1, padding="SAME") -> ConvSpec:  # noqa: N802
    """Short form of a ConvSpec row in the tables below."""
    return ConvSpec(name, depth, kernel, stride, padding)


def P(kind, kernel, stride=1, padding="SAME") -> PoolSpec:  # noqa: N802
    """Short form of a PoolSpec row in the tables below."""
    return PoolSpec(kind, kernel, stride, padding)


# Blocks: one tuple of ops per branch (`Branch_0`, `Branch_1`, ...), concatenated.
MIXED_3A = ((P("max", 3, 2, "VALID"),),
            (C("Conv2d_0a_3x3", 96, 3, 2, "VALID"),))
MIXED_4A = ((C("Conv2d_0a_1x1", 64, 1), C("Conv2d_1a_3x3", 96, 3, 1, "VALID")),
            (C("Conv2d_0a_1x1", 64, 1), C("Conv2d_0b_1x7", 64, (1, 7)),
             C("Conv2d_0c_7x1", 64, (7, 1)), C("Conv2d_1a_3x3", 96, 3, 1, "VALID")))
MIXED_5A = ((C("Conv2d_1a_3x3", 192, 3, 2, "VALID"),),
            (P("max", 3, 2, "VALID"),))
INCEPTION_A = ((C("Conv2d_0a_1x1", 96, 1),),
               (C("Conv2d_0a_1x1", 64, 1), C("Conv2d_0b_3x3", 96, 3)),
               (C("Conv2d_0a_1x1", 64, 1), C("Conv2d_0b_3x3", 96, 3),
                C("Conv2d_0c_3x3", 96, 3)),
               (P("avg", 3), C("Conv2d_0b_1x1", 96, 1)))
REDUCTION_A = ((C("Conv2d_1a_3x3", 384, 3, 2, "VALID"),),
               (C("Conv2d_0a_1x1", 192, 1), C("Conv2d_0b_3x3", 224, 3),
                C("Conv2d_1a_3x3", 256, 3, 2, "VALID")),
               (P("max", 3, 2, "VALID"),))
INCEPTION_B = ((C("Conv2d_0a_1x1", 384, 1),),
               (C("Conv2d_0a_1x1", 192, 1), C("Conv2d_0b_1x7", 224, (1, 7)),
                C("Conv2d_0c_7x1", 256, (7, 1))),
               (C("Conv2d_0a_1x1", 192, 1), C("Conv2d_0b_7x1", 192, (7, 1)),
                C("Conv2d_0c_1x7", 224, (1, 7)), C("Conv2d_0d_7x1", 224, (7, 1)),
                C("Conv2d_0e_1x7", 256, (1, 7))),
               (P("avg", 3), C("Conv2d_0b_1x1", 128, 1)))
REDUCTION_B = ((C("Conv2d_0a_1x1", 192, 1), C("Conv2d_1a_3x3", 192, 3, 2, "VALID")),
               (C("Conv2d_0a_1x1", 256, 1), C("Conv2d_0b_1x7", 256, (1, 7)),
                C("Conv2d_0c_7x1", 320, (7, 1)), C("Conv2d_1a_3x3", 320, 3, 2, "VALID")),
               (P("max", 3, 2, "VALID"),))
INCEPTION_C = ((C("Conv2d_0a_1x1", 256, 1),),
               (C("Conv2d_0a_1x1", 384, 1),
                Split((C("Conv2d_0b_1x3", 256, (1, 3)), C("Conv2d_0c_3x1", 256, (3, 1))))),
               (C("Conv2d_0a_1x1", 384, 1), C("Conv2d_0b_3x1", 448, (3, 1)),
                C("Conv2d_0c_1x3", 512, (1, 3)),
                Split((C("Conv2d_0d_1x3", 256, (1, 3)), C("Conv2d_0e_3x1", 256, (3, 1))))),
               (P("avg", 3), C("Conv2d_0b_1x1", 256, 1)))

# (end point / scope, spec): the stem convs, then the blocks, in order.
STEM = (C("Conv2d_1a_3x3", 32, 3, 2, "VALID"), C("Conv2d_2a_3x3", 32, 3, 1, "VALID"),
        C("Conv2d_2b_3x3", 64, 3))
BLOCKS = (("Mixed_3a", MIXED_3A), ("Mixed_4a", MIXED_4A), ("Mixed_5a", MIXED_5A),
          *((f"Mixed_5{c}", INCEPTION_A) for c in "bcde"),
          ("Mixed_6a", REDUCTION_A),
          *((f"Mixed_6{c}", INCEPTION_B) for c in "bcdefgh"),
          ("Mixed_7a", REDUCTION_B),
          *((f"Mixed_7{c}", INCEPTION_C) for c in "bcd"))
AUX_INPUT = "Mixed_6h"


# -- shape arithmetic (for min_input_size) ----------------------------------------------

def _ops_size(size: int, ops: Sequence) -> int:
    for op in ops:
        if isinstance(op, Split):
            op = op.convs[0]
        kernel = op.kernel if isinstance(op.kernel, int) else max(op.kernel)
        size = out_size(size, kernel, op.stride, op.padding)
        if size < 1:
            return 0
    return size


def block_size(size: int, branches: Sequence) -> int:
    """Spatial size after a block (every branch must fit)."""
    sizes = [_ops_size(size, ops) for ops in branches]
    return min(sizes)


def smallest_input(fits: Callable[[int], bool], limit: int = 4096) -> int:
    """The smallest image size `fits` accepts (the size chains are monotonic)."""
    for size in range(1, limit):
        if fits(size):
            return size
    raise ValueError(f"no input size up to {limit} fits this configuration")


# -- layers -----------------------------------------------------------------------------

def pool(x, spec: PoolSpec):
    """slim.max_pool2d / slim.avg_pool2d (TF's SAME average excludes the padding)."""
    fn = tf.nn.max_pool2d if spec.kind == "max" else tf.nn.avg_pool2d
    return fn(x, spec.kernel, spec.stride, spec.padding)


class Tower(keras.layers.Layer):
    """One branch scope (`Branch_N`): its ops in order; only the convs are layers."""

    def __init__(self, ops: Sequence, conv: Callable[[ConvSpec], keras.layers.Layer],
                 **kwargs):
        super().__init__(**kwargs)
        self._ops = tuple(ops)
        self.convs = []
        for op in self._ops:
            if isinstance(op, ConvSpec):
                self.convs.append(conv(op))
            elif isinstance(op, Split):
                self.convs.extend(conv(part) for part in op.convs)

    def call(self, x, training=None):
        convs = iter(self.convs)
        for op in self._ops:
            if isinstance(op, ConvSpec):
                x = next(convs)(x, training=training)
            elif isinstance(op, PoolSpec):
                x = pool(x, op)
            else:
                x = tf.concat([next(convs)(x, training=training) for _ in op.convs], axis=3)
        return x


class Mixed(keras.layers.Layer):
    """A block scope (`Mixed_5b`): its branches `Branch_0..` concatenated on channels."""

    def __init__(self, branches: Sequence, conv: Callable[[ConvSpec], keras.layers.Layer],
                 **kwargs):
        super().__init__(**kwargs)
        self.towers = [Tower(ops, conv, name=f"Branch_{i}") for i, ops in enumerate(branches)]

    def call(self, x, training=None):
        return tf.concat([tower(x, training=training) for tower in self.towers], axis=3)


class FullConv(Conv2d):
    """slim.conv2d(net, depth, net.get_shape()[1:3], padding='VALID'): the aux heads'
    conv whose kernel covers the whole feature map seen when the model is built."""

    def __init__(self, num_outputs: int, **kwargs):
        kwargs.pop("kernel_size", None)
        kwargs["padding"] = "VALID"
        super().__init__(num_outputs, 1, **kwargs)

    def build(self, input_shape):
        if input_shape[1] is None or input_shape[2] is None:
            raise ValueError(f"{self.name}: the auxiliary head needs a known image size "
                             "(its kernel is the feature map's size, as in slim); build "
                             "with input_shape=(H, W, C) or set create_aux_logits=False")
        self.kernel_size = (int(input_shape[1]), int(input_shape[2]))
        super().build(input_shape)


class AuxHead(keras.layers.Layer):
    """The `AuxLogits` scope: 5x5/3 average pool, 1x1 conv (128), a conv over the
    whole map (768), flatten, and the linear classifier."""

    def __init__(self, num_classes: int, conv: Callable, fc: Callable, names: Sequence[str],
                 **kwargs):
        super().__init__(**kwargs)
        reduce_name, full_name, logits_name = names
        self.reduce = conv(C(reduce_name, 128, 1))
        self.full = conv(C(full_name, 768, None, 1, "VALID"), full=True)  # kernel: at build
        self.classifier = fc(num_classes, logits_name)

    def fits(self, pooled: Sequence[int | None]) -> bool:
        """Whether the head (sized at build time, as slim) takes a map that pools to
        `pooled` (height, width; None when unknown)."""
        if not self.full.built:
            return None not in pooled and min(pooled) >= 1
        return tuple(pooled) == tuple(self.full.kernel_size)

    def call(self, x, training=None):
        x = tf.nn.avg_pool2d(x, 5, 3, "VALID")
        x = self.reduce(x, training=training)
        x = self.full(x, training=training)
        x = tf.reshape(x, [-1, x.shape[1] * x.shape[2] * x.shape[3]])
        return self.classifier(x, training=training)


def aux_runs(net: str, aux: AuxHead | None, aux_input_sizes, training) -> bool:
    """Whether the aux head runs on an input whose aux feature map is
    `aux_input_sizes` (height, width). It needs the map it was built for; training
    without it raises (before anything runs), inference leaves AuxLogits out."""
    if aux is None:
        return False
    pooled = tuple(None if s is None else out_size(s, 5, 3, "VALID") for s in aux_input_sizes)
    if aux.fits(pooled):
        return True
    if training:
        kernel = "x".join(map(str, aux.full.kernel_size)) if aux.full.built else "?"
        raise ValueError(
            f"{net}: the AuxLogits head was built for a {kernel} map (slim sizes its conv "
            f"kernel from the image size at build time) but this input gives "
            f"{'x'.join(map(str, pooled))}; train at the size the model was built for "
            "(input_shape=), or set create_aux_logits=False")
    return False


def global_average(x):
    """slim's final pool: avg_pool2d over the whole (known) map, else reduce_mean."""
    if x.shape[1] is not None and x.shape[2] is not None:
        return tf.nn.avg_pool2d(x, (x.shape[1], x.shape[2]), 1, "VALID")
    return tf.reduce_mean(x, axis=[1, 2], keepdims=True)


def flatten(x):
    """slim.flatten: [batch, -1] keeping the static feature count."""
    return tf.reshape(x, [-1, x.shape[1] * x.shape[2] * x.shape[3]])


# -- the model --------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="kslim")
class InceptionV4(SlimModel):
    """Slim's Inception v4 (`inception_v4` under `inception_v4_arg_scope`).

    Args:
        num_classes: classifier outputs; 0/None returns `global_pool` (1x1x1536,
            before dropout) as slim does, with no aux head.
        dropout_keep_prob: `Logits/Dropout_1b` keep probability in training.
        create_aux_logits: build the `AuxLogits` head on `Mixed_6h`. It is an
            output in training (`{"logits", "aux_logits"}`) and an end point. Its
            `Conv2d_2a` kernel is the size of its input when the model is built
            (5x5 at 299x299), as in slim; at other image sizes inference leaves
            the aux head out and training raises.
        weight_decay: slim's L2 on conv and fully connected weights (the arg
            scope default is 4e-5; nets_factory passes 0 unless told).
        use_batch_norm: BatchNorm after each conv (else conv biases), as
            `inception_arg_scope(use_batch_norm=)`.
        batch_norm_decay, batch_norm_epsilon, batch_norm_scale: the BatchNorm
            settings (`scale=False`: no gamma, slim's default).
        activation_fn: the convs' activation (arg scope's `activation_fn`).
        name: the top-level scope (default `InceptionV4`).

    Example:
        >>> model = kslim.models.inception_v4(weights="inception_v4.ckpt")
        >>> logits = model(images, training=False)       # [batch, 1001]
    """

    slim_name = "inception_v4"
    head_scopes = ("Logits", "AuxLogits")
    aux_output = "AuxLogits"

    def __init__(self, num_classes: int | None = 1001, dropout_keep_prob: float = 0.8,
                 create_aux_logits: bool = True, weight_decay: float = 0.0,
                 use_batch_norm: bool = True, batch_norm_decay: float = 0.9997,
                 batch_norm_epsilon: float = 0.001, batch_norm_scale: bool = False,
                 activation_fn: str | None = "relu", name: str | None = "InceptionV4",
                 **kwargs):
        super().__init__(num_classes=num_classes, name=name or "InceptionV4", **kwargs)
        self.dropout_keep_prob = dropout_keep_prob
        self.create_aux_logits = bool(create_aux_logits)
        self.weight_decay = weight_decay
        self.use_batch_norm = bool(use_batch_norm)
        self.batch_norm_decay = batch_norm_decay
        self.batch_norm_epsilon = batch_norm_epsilon
        self.batch_norm_scale = bool(batch_norm_scale)
        self.activation_fn = activation_fn
        batch_norm = ({"decay": batch_norm_decay, "epsilon": batch_norm_epsilon,
                       "scale": self.batch_norm_scale} if self.use_batch_norm else None)
        # inception_arg_scope: He-normal (slim's variance_scaling_initializer) convs
        # with BatchNorm and relu; L2 on conv and fc weights (not biases).
        conv_args = dict(activation_fn=activation_fn, batch_norm=batch_norm,
                         weight_decay=weight_decay,
                         kernel_initializer=keras.initializers.VarianceScaling(
                             2.0, "fan_in", "truncated_normal"))

        def conv(spec: ConvSpec, full: bool = False):
            if full:
                return FullConv(spec.depth, name=spec.name, **conv_args)
            return Conv2d(spec.depth, spec.kernel, stride=spec.stride,
                          padding=spec.padding, name=spec.name, **conv_args)

        def fc(units: int, name: str):
            return FullyConnected(units, activation_fn=None, weight_decay=weight_decay,
                                  name=name)

        self.stem = [conv(spec) for spec in STEM]
        self.blocks = [Mixed(branches, conv, name=scope) for scope, branches in BLOCKS]
        self.aux = None
        if self.create_aux_logits and self.num_classes:
            self.aux = AuxHead(self.num_classes, conv, fc,
                               ("Conv2d_1b_1x1", "Conv2d_2a", "Aux_logits"),
                               name="AuxLogits")
        if self.num_classes:
            self.dropout = keras.layers.Dropout(1.0 - dropout_keep_prob, name="Dropout_1b")
            self.logits = Stack([fc(self.num_classes, "Logits")], name="Logits")

    def _sizes(self, size: int) -> dict[str, int]:
        sizes = {}
        for spec in STEM:
            size = out_size(size, max(pair(spec.kernel)), spec.stride, spec.padding)
            sizes[spec.name] = size
        for scope, branches in BLOCKS:
            size = block_size(size, branches) if size >= 1 else 0
            sizes[scope] = size
        return sizes

    @property
    def min_input_size(self) -> int:
        def fits(size):
            sizes = self._sizes(size)
            if min(sizes.values()) < 1:
                return False
            return self.aux is None or out_size(sizes[AUX_INPUT], 5, 3, "VALID") >= 1

        return smallest_input(fits)

    def forward(self, x, training=None):
        run_aux = aux_runs(self.slim_name, self.aux,
                           [None if s is None else self._sizes(s)[AUX_INPUT]
                            for s in x.shape[1:3]], training)
        end_points = {}
        for layer in self.stem:
            x = end_points[layer.name] = layer(x, training=training)
        for block in self.blocks:
            x = end_points[block.name] = block(x, training=training)
        if run_aux:
            end_points["AuxLogits"] = self.aux(end_points[AUX_INPUT], training=training)
        x = end_points["global_pool"] = global_average(x)
        if not self.num_classes:
            return x, end_points
        x = self.dropout(x, training=training)
        x = end_points["PreLogitsFlatten"] = flatten(x)
        x = end_points["Logits"] = self.logits(x, training=training)
        end_points["Predictions"] = tf.nn.softmax(x)
        return x, end_points

    def get_config(self):
        return {**self._base_config(), "dropout_keep_prob": self.dropout_keep_prob,
                "create_aux_logits": self.create_aux_logits,
                "weight_decay": self.weight_decay, "use_batch_norm": self.use_batch_norm,
                "batch_norm_decay": self.batch_norm_decay,
                "batch_norm_epsilon": self.batch_norm_epsilon,
                "batch_norm_scale": self.batch_norm_scale,
                "activation_fn": self.activation_fn}


inception_v4 = register_model("inception_v4", InceptionV4, image_size=299, num_classes=1001,
                              preprocessing="inception_v4", scope="InceptionV4")
