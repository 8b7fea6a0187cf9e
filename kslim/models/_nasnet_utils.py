"""NASNet-A / PNASNet-5 cell machinery, as research/slim's `nets/nasnet/nasnet_utils.py`,
plus the pieces `nasnet.py` shares with `pnasnet.py` (ImageNet stem, auxiliary head,
final layer, scheduled drop path).

A cell is a small graph over "hidden states": state 0 is the cell input after a
ReLU-1x1-BN (`1x1`, `beginning_bn`), state 1 the previous cell's output matched to it
(`_reduce_prev_layer`), and each of the five `comb_iter_i` blocks adds `left(op) +
right(op)` of two earlier states. The unused states are concatenated (`cell_output`).
The operations and wiring are data (`CellSpec`), as in slim.

Slim builds these nets without a top-level variable scope (`cell_0/...`,
`final_layer/FC/...`); `NASNetBase` sets `has_slim_scope = False` so
`compat.slim_variables` drops the model-name prefix.

Structure is decided from channel counts and a resolution "level" (how many stride-2
steps a tensor has seen) instead of slim's runtime shapes; the two agree whenever each
stride-2 step really halves the map, which `min_input_size` guarantees.
"""

from __future__ import annotations

import dataclasses
import math
import re

import keras
import tensorflow as tf

from kslim.models._base import SlimModel
from kslim.models._layers import BatchNorm, Conv2d, FullyConnected, SeparableConv2d

__all__ = [
    "CellSpec",
    "NASNET_A_NORMAL",
    "NASNET_A_REDUCTION",
    "PNASNET_5",
    "NASNetBase",
    "NasNetCell",
    "calc_reduction_layers",
    "drop_path",
    "parse_operation",
]

# nasnet_utils.CLIP_BY_VALUE_CAP: the bound of `use_bounded_activation` nets.
CLIP_BY_VALUE_CAP = 6.0


@dataclasses.dataclass(frozen=True)
class CellSpec:
    """One searched cell: `operations[2i]`/`[2i+1]` run on hidden states
    `hiddenstate_indices[2i]`/`[2i+1]` in `comb_iter_i`; states with
    `used_hiddenstates[s] == 0` are concatenated as the cell output."""

    operations: tuple[str, ...]
    used_hiddenstates: tuple[int, ...]
    hiddenstate_indices: tuple[int, ...]


NASNET_A_NORMAL = CellSpec(
    operations=("separable_5x5_2", "separable_3x3_2", "separable_5x5_2", "separable_3x3_2",
                "avg_pool_3x3", "none", "avg_pool_3x3", "avg_pool_3x3",
                "separable_3x3_2", "none"),
    used_hiddenstates=(1, 0, 0, 0, 0, 0, 0),
    hiddenstate_indices=(0, 1, 1, 1, 0, 1, 1, 1, 0, 0),
)
NASNET_A_REDUCTION = CellSpec(
    operations=("separable_5x5_2", "separable_7x7_2", "max_pool_3x3", "separable_7x7_2",
                "avg_pool_3x3", "separable_5x5_2", "none", "avg_pool_3x3",
                "separable_3x3_2", "max_pool_3x3"),
    used_hiddenstates=(1, 1, 1, 0, 0, 0, 0),
    hiddenstate_indices=(0, 1, 0, 1, 0, 1, 3, 2, 2, 0),
)
PNASNET_5 = CellSpec(
    operations=("separable_5x5_2", "max_pool_3x3", "separable_7x7_2", "max_pool_3x3",
                "separable_5x5_2", "separable_3x3_2", "separable_3x3_2", "max_pool_3x3",
                "separable_3x3_2", "none"),
    used_hiddenstates=(1, 1, 0, 0, 0, 0, 0),
    hiddenstate_indices=(1, 1, 0, 0, 0, 0, 4, 0, 1, 0),
)

_SEPARABLE = re.compile(r"separable_(\d+)x(\d+)(?:_(\d+))?$")
_POOL = re.compile(r"(avg|max)_pool_(\d+)x(\d+)$")


def parse_operation(operation: str) -> tuple:
    """`'separable_3x3_2'` -> `('separable', 3, 2)` (kernel, stacked layers),
    `'avg_pool_3x3'` -> `('pool', 'avg', 3)`, `'none'` -> `('none',)`."""
    if operation == "none":
        return ("none",)
    match = _SEPARABLE.match(operation)
    if match:
        kh, kw, layers = match.groups()
        if kh != kw:
            raise ValueError(f"operation {operation!r}: rectangular filters are not supported")
        return ("separable", int(kh), int(layers or 1))
    match = _POOL.match(operation)
    if match:
        kind, kh, kw = match.groups()
        if kh != kw:
            raise ValueError(f"operation {operation!r}: rectangular pools are not supported")
        return ("pool", kind, int(kh))
    raise ValueError(f"unknown NASNet operation {operation!r}; expected 'none', "
                     "'separable_KxK[_N]', 'avg_pool_KxK' or 'max_pool_KxK'")


def calc_reduction_layers(num_cells: int, num_reduction_layers: int) -> list[int]:
    """slim's `calc_reduction_layers`: the cell indices that get a reduction."""
    return [int(float(i) / (num_reduction_layers + 1) * num_cells)
            for i in range(1, num_reduction_layers + 1)]


def drop_path(x, keep_prob):
    """slim's `drop_path` (training only): keeps each example's whole tensor with
    probability `keep_prob` and scales the kept ones by `1 / keep_prob`."""
    noise = keep_prob + tf.random.uniform([tf.shape(x)[0], 1, 1, 1], dtype=tf.float32)
    binary = tf.cast(tf.floor(noise), x.dtype)
    return x * tf.cast(1.0 / keep_prob, x.dtype) * binary


def scheduled_keep_prob(drop_path_keep_prob: float, cell_num: int, total_num_cells: int,
                        current_ratio):
    """slim's `_apply_drop_path` (drop_connect_version 'v3'): the keep probability
    falls linearly with the cell's depth, `1 - (cell_num + 1) / total_num_cells *
    (1 - p)`, and then with training progress, `1 - ratio * (1 - that)` where
    `ratio = min(1, step / total_training_steps)` (a float32 tensor)."""
    layer_ratio = (cell_num + 1) / float(total_num_cells)
    by_layer = 1 - layer_ratio * (1 - drop_path_keep_prob)
    return 1 - current_ratio * (1 - by_layer)


@dataclasses.dataclass(frozen=True)
class NetParams:
    """What the nasnet arg_scopes fix for every conv / separable conv / fc / batch norm:
    no biases and no activation on convs, variance-scaling (FAN_OUT) initializers,
    L2 weight decay on `weights`/`pointwise_weights`, scaled fused batch norm."""

    weight_decay: float
    batch_norm_decay: float
    batch_norm_epsilon: float
    bounded: bool  # use_bounded_activation: relu6 and clipping

    @staticmethod
    def initializer() -> dict:
        # contrib variance_scaling_initializer(mode='FAN_OUT'): factor 2, truncated normal.
        return {"class_name": "VarianceScaling",
                "config": {"scale": 2.0, "mode": "fan_out",
                           "distribution": "truncated_normal"}}

    def conv(self, filters: int, kernel, stride: int = 1, padding: str = "SAME", *,
             name: str) -> Conv2d:
        return Conv2d(filters, kernel, stride=stride, padding=padding, activation_fn=None,
                      use_bias=False, weight_decay=self.weight_decay,
                      kernel_initializer=self.initializer(), name=name)

    def separable(self, filters: int, kernel: int, stride: int, *, name: str):
        return SeparableConv2d(filters, kernel, depth_multiplier=1, stride=stride,
                               activation_fn=None, use_bias=False,
                               weight_decay=self.weight_decay,
                               kernel_initializer=self.initializer(), name=name)

    def fc(self, units: int, *, name: str) -> FullyConnected:
        return FullyConnected(units, activation_fn=None, weight_decay=self.weight_decay,
                              kernel_initializer=self.initializer(), name=name)

    def bn(self, name: str) -> BatchNorm:
        return BatchNorm(decay=self.batch_norm_decay, epsilon=self.batch_norm_epsilon,
                         scale=True, name=name)

    def act(self, x):
        return tf.nn.relu6(x) if self.bounded else tf.nn.relu(x)

    def clip(self, x):
        """The `tf.clip_by_value(x, -6, 6)` bounded nets apply after each operation."""
        return tf.clip_by_value(x, -CLIP_BY_VALUE_CAP, CLIP_BY_VALUE_CAP) if self.bounded else x


def _factorized_layers(params: NetParams, filters: int, stride: int) -> list:
    """The layers of slim's `factorized_reduction`, named as slim names them in the
    caller's scope (`path_conv`/`path_bn`, or `path1_conv`/`path2_conv`/`final_path_bn`)."""
    if stride == 1:
        return [params.conv(filters, 1, name="path_conv"), params.bn("path_bn")]
    half = filters // 2
    # An odd filter count gives the extra filter to the second path.
    return [params.conv(half, 1, stride, "VALID", name="path1_conv"),
            params.conv(half + filters % 2, 1, stride, "VALID", name="path2_conv"),
            params.bn("final_path_bn")]


def _build_chain(layers: list, channels: int) -> int:
    """Builds conv / separable / BN layers applied in sequence to `channels`-deep
    input (weights are created eagerly, under the caller's name scope); returns the
    output depth."""
    for layer in layers:
        layer.build((None, None, None, channels))
        if not isinstance(layer, BatchNorm):
            channels = layer.num_outputs
    return channels


def _build_factorized(layers: list, channels: int) -> None:
    if len(layers) == 2:
        _build_chain(layers, channels)
        return
    conv1, conv2, bn = layers
    conv1.build((None, None, None, channels))
    conv2.build((None, None, None, channels))
    bn.build((None, None, None, conv1.num_outputs + conv2.num_outputs))


def _factorized_call(layers: list, x, training):
    """slim's `factorized_reduction`: with stride s, path 1 is a 1x1/s average pool (one
    pixel of every s x s block) and path 2 the same on the map shifted by one pixel
    (zero-padded bottom/right), each through a 1x1 conv; concatenated, then BN. A 1x1
    VALID conv with stride s samples exactly the pixels of the 1x1/s pool."""
    if len(layers) == 2:
        conv, bn = layers
        return bn(conv(x), training=training)
    conv1, conv2, bn = layers
    path1 = conv1(x)
    height, width = x.shape[1], x.shape[2]
    if height is not None and width is not None and height % 2 == 0 and width % 2 == 0:
        shifted = x[:, 1:, 1:, :]  # the padded row/column would never be sampled
    else:
        shifted = tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]
    path2 = conv2(shifted)
    return bn(tf.concat([path1, path2], axis=3), training=training)


class FactorizedReduction(keras.layers.Layer):
    """`factorized_reduction` in its own scope (`cell_output/reduction_{i}`)."""

    def __init__(self, filters: int, stride: int, params: NetParams, in_channels: int,
                 **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.parts = _factorized_layers(params, filters, stride)

    def build(self, input_shape=None):
        _build_factorized(self.parts, self.in_channels)

    def call(self, x, training=None):
        return _factorized_call(self.parts, x, training)


class _Operation(keras.layers.Layer):
    """One predicted operation (`left` or `right` of a `comb_iter`), slim's
    `_apply_conv_operation`: stacked separable convs, a (projected) pool, or 'none'
    (identity, or a ReLU-1x1-BN when the stride or the width must change), followed
    by drop path in training for everything but 'none'."""

    def __init__(self, operation: str, stride: int, in_channels: int, filters: int,
                 params: NetParams, **kwargs):
        super().__init__(**kwargs)
        self.operation = operation
        self.params = params
        self.in_channels = in_channels
        self.parsed = parse_operation(operation)
        kind = self.parsed[0]
        self.body = []
        self.project = False
        if kind == "separable":
            _, kernel, num_layers = self.parsed
            for layer in range(1, num_layers + 1):
                tag = f"{kernel}x{kernel}_{layer}"
                self.body += [params.separable(filters, kernel, stride if layer == 1 else 1,
                                               name=f"separable_{tag}"),
                              params.bn(f"bn_sep_{tag}")]
            self.out_channels = filters
        else:
            if kind == "none":
                self.project = stride > 1 or in_channels != filters
            else:
                self.project = in_channels != filters
                self.pool_type, self.pool_size = self.parsed[1], self.parsed[2]
            if self.project:
                self.body = [params.conv(filters, 1, stride if kind == "none" else 1,
                                         name="1x1"),
                             params.bn("bn_1")]
            self.out_channels = filters if self.project else in_channels
        self.stride = stride

    def build(self, input_shape=None):
        _build_chain(self.body, self.in_channels)

    def call(self, x, training=None, keep_prob=None):
        params, kind = self.params, self.parsed[0]
        if kind == "separable":
            for conv, bn in zip(self.body[::2], self.body[1::2]):
                x = bn(conv(params.act(x)), training=training)
            x = params.clip(x)
        elif kind == "none":
            if params.bounded:
                x = tf.nn.relu6(x)
            if self.project:
                conv, bn = self.body
                x = params.clip(bn(conv(x if params.bounded else tf.nn.relu(x)),
                                   training=training))
        else:
            if params.bounded:
                x = tf.nn.relu6(x)
            pool = tf.nn.avg_pool2d if self.pool_type == "avg" else tf.nn.max_pool2d
            x = pool(x, self.pool_size, self.stride, "SAME")
            if self.project:
                conv, bn = self.body
                x = bn(conv(x), training=training)
            x = params.clip(x)
        if kind != "none" and keep_prob is not None:
            x = drop_path(x, keep_prob)
        return x


class _CombIter(keras.layers.Layer):
    """`comb_iter_{i}`: `left(h1) + right(h2)` (relu6 on the sum for bounded nets)."""

    def __init__(self, left: _Operation, right: _Operation, params: NetParams, **kwargs):
        super().__init__(**kwargs)
        self.left = left
        self.right = right
        self.params = params

    def build(self, h1_shape=None, h2_shape=None):
        self.left.build()
        self.right.build()

    def call(self, h1, h2, training=None, keep_prob=None):
        h = (self.left(h1, training=training, keep_prob=keep_prob)
             + self.right(h2, training=training, keep_prob=keep_prob))
        return tf.nn.relu6(h) if self.params.bounded else h


class _CellOutput(keras.layers.Layer):
    """`cell_output`: slim's `_combine_unused_states`. Unused states whose width or
    resolution differs from the last state's are factorized-reduced
    (`reduction_{i}`), then all unused states are concatenated."""

    def __init__(self, states: list[tuple[int, int]], used: tuple[int, ...],
                 params: NetParams, **kwargs):
        super().__init__(**kwargs)
        if len(states) != len(used):
            raise ValueError(f"a cell with {len(states)} hidden states needs "
                             f"{len(states)} used_hiddenstates flags, got {len(used)}")
        final_channels, final_level = states[-1]
        self.reductions = []
        self.reduced = []
        self.concat = []
        channels = 0
        for index, ((ch, level), is_used) in enumerate(zip(states, used)):
            if is_used:
                continue
            self.concat.append(index)
            if ch != final_channels or level != final_level:
                stride = 2 if level != final_level else 1
                self.reductions.append(FactorizedReduction(
                    final_channels, stride, params, ch, name=f"reduction_{index}"))
                self.reduced.append(index)
                ch = final_channels
            channels += ch
        self.out_channels = channels
        self.out_level = final_level

    def build(self, input_shape=None):
        for layer in self.reductions:
            layer.build()

    def call(self, states, training=None):
        reduce = dict(zip(self.reduced, self.reductions))
        parts = []
        for index in self.concat:
            h = states[index]
            if index in reduce:
                h = reduce[index](h, training=training)
            parts.append(h)
        return tf.concat(parts, axis=3)


class NasNetCell(keras.layers.Layer):
    """slim's `NasNetABaseCell.__call__` for one cell (a scope like `cell_3`).

    Args:
        spec: the operations and wiring.
        filter_size: `int(num_conv_filters * filter_scaling)`.
        stride: 2 for reduction cells (applied to ops on states 0 and 1 only).
        in_channels: channels of the cell input `net`.
        prev: None when slim's `prev_layer` is None (the input is used for state 1);
            else `(channels, reduce)` of the previous layer, `reduce` True when it has
            twice the resolution of `net` (then it is factorized-reduced).
        params: the arg-scope values.
        cell_num: slim's `cell_num` (depth for the drop-path schedule).
        total_num_cells: slim's `total_num_cells`.
        drop_path_keep_prob: the hparam (1.0 disables drop path).
    """

    def __init__(self, spec: CellSpec, filter_size: int, stride: int, in_channels: int,
                 prev: tuple[int, bool] | None, params: NetParams, cell_num: int,
                 total_num_cells: int, drop_path_keep_prob: float, **kwargs):
        super().__init__(**kwargs)
        if len(spec.operations) != 10 or len(spec.hiddenstate_indices) != 10:
            raise ValueError("a NASNet cell spec needs 10 operations and 10 hidden-state "
                             f"indices (5 comb_iters), got {len(spec.operations)} and "
                             f"{len(spec.hiddenstate_indices)}")
        self.params = params
        self.filter_size = filter_size
        self.in_channels = in_channels
        self.prev_channels = None if prev is None else prev[0]
        self.cell_num = cell_num
        self.total_num_cells = total_num_cells
        self.drop_path_keep_prob = drop_path_keep_prob
        # _reduce_prev_layer
        self.prev_mode = None
        self.prev_layers = []
        if prev is None:
            prev_state = (in_channels, 0)
        else:
            prev_channels, reduce = prev
            if reduce:
                self.prev_mode = "factorized"
                self.prev_layers = _factorized_layers(params, filter_size, 2)
            elif prev_channels != filter_size:
                self.prev_mode = "1x1"
                self.prev_layers = [params.conv(filter_size, 1, name="prev_1x1"),
                                    params.bn("prev_bn")]
            else:
                self.prev_mode = "identity"
            prev_state = (filter_size if self.prev_mode != "identity" else prev_channels, 0)
        self.conv_1x1 = params.conv(filter_size, 1, name="1x1")
        self.beginning_bn = params.bn("beginning_bn")
        # (channels, level) of each hidden state; level 1 = after this cell's stride.
        states = [(filter_size, 0), prev_state]
        self.comb_iters = []
        self.pairs = []
        indices, ops = spec.hiddenstate_indices, spec.operations
        for it in range(5):
            sides = []
            for side, index, op in (("left", indices[2 * it], ops[2 * it]),
                                    ("right", indices[2 * it + 1], ops[2 * it + 1])):
                if index >= len(states):
                    raise ValueError(f"comb_iter_{it} uses hidden state {index}, but only "
                                     f"{len(states)} exist at that point")
                op_stride = stride if index < 2 else 1  # only the cell inputs are strided
                channels, level = states[index]
                layer = _Operation(op, op_stride, channels, filter_size, params, name=side)
                sides.append((layer, level + (1 if op_stride > 1 else 0)))
            (left, left_level), (right, right_level) = sides
            if (left.out_channels, left_level) != (right.out_channels, right_level):
                raise ValueError(f"comb_iter_{it}: {ops[2 * it]!r} and {ops[2 * it + 1]!r} "
                                 "give tensors of different shapes")
            self.comb_iters.append(_CombIter(left, right, params, name=f"comb_iter_{it}"))
            self.pairs.append((indices[2 * it], indices[2 * it + 1]))
            states.append((left.out_channels, left_level))
        self.cell_output = _CellOutput(states, spec.used_hiddenstates, params,
                                       name="cell_output")
        self.out_channels = self.cell_output.out_channels
        self.out_level = self.cell_output.out_level

    def build(self, input_shape=None, prev_shape=None):
        if self.prev_mode == "factorized":
            _build_factorized(self.prev_layers, self.prev_channels)
        elif self.prev_mode == "1x1":
            _build_chain(self.prev_layers, self.prev_channels)
        _build_chain([self.conv_1x1, self.beginning_bn], self.in_channels)
        for comb in self.comb_iters:
            comb.build()
        self.cell_output.build()

    def keep_prob(self, current_ratio):
        """This cell's drop-path keep probability (None: no drop path)."""
        if self.drop_path_keep_prob >= 1.0 or current_ratio is None:
            return None
        return scheduled_keep_prob(self.drop_path_keep_prob, self.cell_num,
                                   self.total_num_cells, current_ratio)

    def call(self, net, prev=None, training=None, current_ratio=None):
        params = self.params
        if self.prev_mode is None:
            prev = net
        elif self.prev_mode == "factorized":
            prev = _factorized_call(self.prev_layers, params.act(prev), training)
        elif self.prev_mode == "1x1":
            conv, bn = self.prev_layers
            prev = bn(conv(params.act(prev)), training=training)
        states = [self.beginning_bn(self.conv_1x1(params.act(net)), training=training), prev]
        keep_prob = self.keep_prob(current_ratio) if training else None
        for comb, (left, right) in zip(self.comb_iters, self.pairs):
            states.append(comb(states[left], states[right], training=training,
                               keep_prob=keep_prob))
        return self.cell_output(states, training=training)


def _pooled(size):
    """The aux head's 5x5/3 VALID average pool output size (None: unknown or too small)."""
    if size is None or size < 5:
        return None
    return (size - 5) // 3 + 1


class _AuxLogits(keras.layers.Layer):
    """`aux_logits` of slim's `_build_aux_head`: 5x5/3 VALID avg pool, `proj` (1x1, 128),
    `aux_bn0`, ReLU, a VALID conv over the whole pooled map (slim's default scope
    `Conv`, 768), `aux_bn1`, ReLU, flatten, `FC`."""

    def __init__(self, num_classes: int, params: NetParams, **kwargs):
        super().__init__(**kwargs)
        self.params = params
        self.proj = params.conv(128, 1, name="proj")
        self.aux_bn0 = params.bn("aux_bn0")
        self.conv = params.conv(768, 1, padding="VALID", name="Conv")  # kernel: build()
        self.aux_bn1 = params.bn("aux_bn1")
        self.fc = params.fc(num_classes, name="FC")
        self.pooled_size = None

    def build(self, input_shape):
        pooled = (_pooled(input_shape[1]), _pooled(input_shape[2]))
        if None in pooled:
            raise ValueError(f"the auxiliary head needs a map of at least 5x5 with a static "
                             f"size, got {tuple(input_shape[1:3])}")
        self.pooled_size = pooled
        self.conv.kernel_size = pooled  # slim: the conv covers the whole pooled map
        _build_chain([self.proj, self.aux_bn0, self.conv, self.aux_bn1], input_shape[-1])
        self.fc.build((None, 768))

    def call(self, x, training=None):
        params = self.params
        x = tf.nn.avg_pool2d(x, 5, 3, "VALID")
        x = params.act(self.aux_bn0(self.proj(x), training=training))
        x = params.act(self.aux_bn1(self.conv(x), training=training))
        x = tf.reshape(x, [-1, math.prod(x.shape[1:])])
        return self.fc(x)


class AuxHead(keras.layers.Layer):
    """The `aux_{cell}` scope around `aux_logits`."""

    def __init__(self, num_classes: int, params: NetParams, **kwargs):
        super().__init__(**kwargs)
        self.aux_logits = _AuxLogits(num_classes, params, name="aux_logits")

    def build(self, input_shape):
        self.aux_logits.build(input_shape)

    def call(self, x, training=None):
        return self.aux_logits(x, training=training)


class _FinalLayer(keras.layers.Layer):
    """`final_layer`: dropout and `FC` (the ReLU and global pool run before it, in the
    same scope in slim, with no variables). Returns `(dropped features, logits)`."""

    def __init__(self, num_classes: int, keep_prob: float, params: NetParams, **kwargs):
        super().__init__(**kwargs)
        self.dropout = keras.layers.Dropout(1.0 - keep_prob, name="dropout")
        self.fc = params.fc(num_classes, name="FC")

    def build(self, input_shape):
        self.fc.build(input_shape)

    def call(self, x, training=None):
        x = self.dropout(x, training=training)
        return x, self.fc(x)


class _StepSource:
    """Holds the drop-path step outside Keras' attribute tracking (a step variable such
    as `optimizer.iterations` must not become one of the model's weights)."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = None


@dataclasses.dataclass(frozen=True)
class _Step:
    """One cell call of the net: which cell, which earlier output is its `prev_layer`
    (an index into slim's `cell_outputs`, or None), and its end point."""

    cell: int
    prev: int | None
    end_point: str | None
    aux: bool = False


# The hyper-parameters of slim's HParams configs that every NAS net takes.
HPARAMS = ("num_cells", "stem_multiplier", "filter_scaling_rate", "num_conv_filters",
           "num_reduction_layers", "drop_path_keep_prob", "total_training_steps",
           "use_aux_head", "skip_reduction_layer_input", "dense_dropout_keep_prob",
           "use_bounded_activation")


class NASNetBase(SlimModel):
    """What slim's `_build_nasnet_base` and `_build_pnasnet_base` share: the stem, the
    cells run from a plan (`_plan_cells`, written by the subclass), the auxiliary head
    after the cell before the second reduction (training only), and `final_layer`.

    Subclasses set `slim_prefix` (`nasnet`), `CONFIGS` ({variant: hparams}),
    `ARG_SCOPES` ({variant: (weight_decay, batch_norm_decay, batch_norm_epsilon)}) and
    `STEMS` ({variant: 'cifar' | 'imagenet'}), and define the `total_num_cells`
    property (slim's depth scale of the drop-path schedule) and `_plan_cells()`
    (slim's cell loop, through `_add_cell`).
    """

    CONFIGS: dict[str, dict] = {}
    ARG_SCOPES: dict[str, tuple[float, float, float]] = {}
    STEMS: dict[str, str] = {}
    has_slim_scope = False  # slim: `cell_0/...`, `final_layer/FC/...` with no net scope
    head_scopes = ("final_layer/FC", "aux_*/aux_logits/FC")
    aux_output = "AuxLogits"
    optional_scopes = ("aux_*",)  # slim builds the aux head only when is_training
    slim_prefix = ""

    def __init__(self, variant: str, num_classes: int | None = 1001, *,
                 num_cells: int | None = None, stem_multiplier: float | None = None,
                 filter_scaling_rate: float | None = None,
                 num_conv_filters: int | None = None,
                 num_reduction_layers: int | None = None,
                 drop_path_keep_prob: float | None = None,
                 total_training_steps: int | None = None,
                 use_aux_head: bool | None = None,
                 skip_reduction_layer_input: bool | None = None,
                 dense_dropout_keep_prob: float | None = None,
                 dropout_keep_prob: float | None = None,
                 use_bounded_activation: bool | None = None,
                 data_format: str = "NHWC", final_endpoint: str | None = None,
                 weight_decay: float = 0.0, batch_norm_decay: float | None = None,
                 batch_norm_epsilon: float | None = None, name: str | None = None,
                 **kwargs):
        family = type(self).__name__
        if variant not in self.CONFIGS:
            raise ValueError(f"{family}: unknown variant {variant!r}; expected one of "
                             f"{sorted(self.CONFIGS)}")
        slim_name = f"{self.slim_prefix}_{variant}"
        if data_format != "NHWC":
            raise ValueError(
                f"{slim_name}: data_format={data_format!r} is not supported: kslim nets "
                "take NHWC (channels-last) images only; transpose NCHW input with "
                "tf.transpose(images, [0, 2, 3, 1]) and leave the GPU layout to "
                "TensorFlow's layout optimizer")
        super().__init__(num_classes=num_classes, name=name or slim_name, **kwargs)
        self.slim_name = slim_name
        self.variant = variant
        self.data_format = data_format
        if dropout_keep_prob is not None:
            if dense_dropout_keep_prob not in (None, dropout_keep_prob):
                raise ValueError(f"{slim_name}: dropout_keep_prob={dropout_keep_prob} and "
                                 f"dense_dropout_keep_prob={dense_dropout_keep_prob} "
                                 "disagree; give one of them")
            dense_dropout_keep_prob = dropout_keep_prob
        given = dict(num_cells=num_cells, stem_multiplier=stem_multiplier,
                     filter_scaling_rate=filter_scaling_rate,
                     num_conv_filters=num_conv_filters,
                     num_reduction_layers=num_reduction_layers,
                     drop_path_keep_prob=drop_path_keep_prob,
                     total_training_steps=total_training_steps, use_aux_head=use_aux_head,
                     skip_reduction_layer_input=skip_reduction_layer_input,
                     dense_dropout_keep_prob=dense_dropout_keep_prob,
                     use_bounded_activation=use_bounded_activation)
        hparams = {k: (self.CONFIGS[variant][k] if v is None else v) for k, v in given.items()}
        for key in ("use_aux_head", "skip_reduction_layer_input", "use_bounded_activation"):
            hparams[key] = bool(hparams[key])  # slim's configs spell them 1/0
        self._check_hparams(hparams)
        for key in HPARAMS:
            setattr(self, key, hparams[key])
        _, default_decay, default_eps = self.ARG_SCOPES[variant]  # wd: 0 as nets_factory
        self.weight_decay = weight_decay
        self.batch_norm_decay = default_decay if batch_norm_decay is None else batch_norm_decay
        self.batch_norm_epsilon = default_eps if batch_norm_epsilon is None else batch_norm_epsilon
        self.params = NetParams(weight_decay, self.batch_norm_decay, self.batch_norm_epsilon,
                                bool(self.use_bounded_activation))
        self.stem_type = self.STEMS[variant]
        self.final_endpoint = final_endpoint
        self._step_source = _StepSource()
        self._min_size = None
        self._aux_step = None

        # The plan: slim's cell loop run on (channels, level) instead of tensors.
        self.cells = []
        self._plan: list[_Step] = []
        self._info: list[tuple[int, int] | None] = []  # slim's cell_outputs
        self._end_point_names: list[str] = []
        self._stopped = False
        self.aux_head = None
        params = self.params
        if self.stem_type == "cifar":
            filters = int(self.num_conv_filters * self.stem_multiplier)
            self.stem_conv = params.conv(filters, 3, name="l1_stem_3x3")
            self.stem_bn = params.bn("l1_stem_bn")
        else:
            filters = int(32 * self.stem_multiplier)
            self.stem_conv = params.conv(filters, 3, 2, "VALID", name="conv0")
            self.stem_bn = params.bn("conv0_bn")
        self._info = [None, (filters, 0)]
        if self.stem_type == "cifar":
            self._record("Stem")
        if not self._stopped:
            self._plan_cells()
        if self._stopped:
            self.final_layer = None
        else:
            for point in ("global_pool", "Logits", "Predictions"):
                self._record(point)
            logits = self.num_classes and final_endpoint != "global_pool"
            self.final_layer = (_FinalLayer(self.num_classes, self.dense_dropout_keep_prob,
                                            params, name="final_layer") if logits else None)
        if final_endpoint is not None and final_endpoint not in self._end_point_names:
            raise ValueError(f"{slim_name}: unknown final_endpoint {final_endpoint!r}; "
                             f"it is one of {', '.join(self._end_point_names)}")

    # -- construction helpers -------------------------------------------------------

    def _check_hparams(self, h: dict) -> None:
        name = self.slim_name
        for key in ("num_cells", "num_conv_filters", "num_reduction_layers",
                    "total_training_steps"):
            if not isinstance(h[key], int) or h[key] < 0 or (
                    key == "total_training_steps" and h[key] == 0):
                raise ValueError(f"{name}: {key} must be a non-negative int"
                                 f"{' > 0' if key == 'total_training_steps' else ''}, "
                                 f"got {h[key]!r}")
        for key in ("drop_path_keep_prob", "dense_dropout_keep_prob"):
            if not 0.0 < float(h[key]) <= 1.0:
                raise ValueError(f"{name}: {key} must be in (0, 1], got {h[key]!r}")
        for key in ("stem_multiplier", "filter_scaling_rate"):
            if float(h[key]) <= 0:
                raise ValueError(f"{name}: {key} must be > 0, got {h[key]!r}")

    def _record(self, end_point: str) -> bool:
        """Notes an end point; False once slim's `final_endpoint` has been reached."""
        self._end_point_names.append(end_point)
        if end_point == self.final_endpoint:
            self._stopped = True
        return not self._stopped

    def _add_cell(self, scope: str, spec: CellSpec, filter_scaling: float, stride: int,
                  prev: int | None, cell_num: int, end_point: str | None,
                  aux: bool = False) -> bool:
        """Plans one cell call; returns False when the net ends at its end point."""
        filter_size = int(self.num_conv_filters * filter_scaling)
        in_channels, level = self._info[-1]
        prev_info = None if prev is None else self._info[prev]
        if prev_info is not None:
            prev_info = (prev_info[0], prev_info[1] != level)
        cell = NasNetCell(spec, filter_size, stride, in_channels, prev_info, self.params,
                          cell_num=cell_num, total_num_cells=self.total_num_cells,
                          drop_path_keep_prob=float(self.drop_path_keep_prob), name=scope)
        self.cells.append(cell)
        self._info.append((cell.out_channels, level + cell.out_level))
        going = True
        if end_point is not None:
            going = self._record(end_point)
        if aux and going and self.use_aux_head and self.num_classes:
            self._aux_step = len(self._plan)
            self.aux_head = AuxHead(self.num_classes, self.params, name=scope.replace(
                "cell", "aux"))
        self._plan.append(_Step(len(self.cells) - 1, prev, end_point,
                                aux and self.aux_head is not None and going))
        return going

    def _imagenet_stem(self, spec: CellSpec) -> bool:
        """slim's `_imagenet_stem` after conv0: two stride-2 stem cells, filter scaling
        1/rate^2 then 1/rate, each taking `cell_outputs[-2]` as its previous layer."""
        scaling = 1.0 / (self.filter_scaling_rate ** 2)
        for cell_num in range(2):
            prev = len(self._info) - 2
            if not self._add_cell(f"cell_stem_{cell_num}", spec, scaling, 2, prev, cell_num,
                                  "Stem" if cell_num == 1 else None):
                return False
            scaling *= self.filter_scaling_rate
        return True

    def _aux_cells(self) -> list[int]:
        reductions = calc_reduction_layers(self.num_cells, self.num_reduction_layers)
        return [reductions[1] - 1] if len(reductions) >= 2 else []

    # -- sizes ------------------------------------------------------------------

    def _walk(self, size: int) -> list[int] | None:
        """The spatial size after each planned cell for an input of `size`, or None if
        some stride-2 step would not halve its map (slim then builds another net)."""
        if self.stem_type == "imagenet":
            if size < 3:
                return None
            size = (size - 3) // 2 + 1
        sizes = []
        for step in self._plan:
            if self.cells[step.cell].out_level:
                if size < 2:
                    return None
                size = -(-size // 2)
            sizes.append(size)
        return sizes

    @property
    def min_input_size(self) -> int:
        if self._min_size is None:
            self._min_size = next(s for s in range(1, 1 << 16) if self._walk(s) is not None)
        return self._min_size

    def _aux_min_size(self) -> int:
        step = self._aux_step
        return next(s for s in range(self.min_input_size, 1 << 16)
                    if self._walk(s)[step] >= 5)

    def _aux_map(self, input_shape) -> tuple | None:
        """(h, w) of the aux head's input for `input_shape`, or None (unknown size,
        or the head's 5x5 pool does not fit)."""
        if self.aux_head is None:
            return None
        sizes = []
        for size in input_shape[1:3]:
            walked = None if size is None else self._walk(size)
            if walked is None or walked[self._aux_step] < 5:
                return None
            sizes.append(walked[self._aux_step])
        return tuple(sizes)

    def build(self, input_shape):
        """Creates every weight from the planned channel counts (eagerly; no trace of
        the net), the auxiliary head too when the input size is known and fits it."""
        _build_chain([self.stem_conv, self.stem_bn], input_shape[-1])
        for cell in self.cells:
            cell.build()
        aux_map = self._aux_map(input_shape)
        if aux_map is not None:
            channels = self._info[2 + self._plan[self._aux_step].cell][0]
            self.aux_head.build((None, *aux_map, channels))
        if self.final_layer is not None:
            self.final_layer.build((None, self._info[-1][0]))

    def compute_output_spec(self, inputs, training=None):
        """The output's shape from the plan (a symbolic call need not trace the net)."""
        shape = tuple(inputs.shape)
        self.check_input_shape(shape)
        batch = shape[0]
        end = self.final_endpoint
        head_end = end in ("global_pool", "Logits", "Predictions")
        if self._stopped and not head_end:  # ends at a feature map
            if end == "Stem" and self.stem_type == "cifar":
                index, spatial = 1, shape[1:3]
            else:
                index = 2 + len(self._plan) - 1
                walked = [None if s is None else self._walk(s)[-1] for s in shape[1:3]]
                spatial = tuple(walked)
            out = (batch, *spatial, self._info[index][0])
            if not self.num_classes and self.pooling:
                out = (batch, out[-1])
        elif head_end or not self.num_classes:
            out = (batch, self._info[-1][0])
        else:
            out = (batch, self.num_classes)
        spec = keras.KerasTensor(out, dtype=inputs.dtype)
        if training and self.aux_head is not None and any(s.aux for s in self._plan):
            return {"logits": spec,
                    "aux_logits": keras.KerasTensor((batch, self.num_classes),
                                                    dtype=inputs.dtype)}
        return spec

    # -- drop path --------------------------------------------------------------

    def set_drop_path_step(self, step) -> None:
        """Sets the training step the drop-path schedule reads (slim's `current_step`).

        Args:
            step: None (default) reads `self.optimizer.iterations` once the model is
                compiled, as slim reads the global step, and 0 before that (slim's
                freshly created global step: no drop path yet); or an int, a tensor, a
                `tf.Variable`/`keras.Variable` the training code advances, or a
                callable returning one. A Python int is fixed when a training function
                is traced; pass a variable for a step that changes. Every cell reads
                this step (slim's stem cells read the global step even when
                `current_step` is given; in training the two are the same).
        """
        self._step_source.value = step

    def drop_path_progress(self):
        """slim's `current_ratio`: `min(1, step / total_training_steps)` (float32) for
        the step `set_drop_path_step` selects."""
        step = self._step_source.value
        if step is None:
            optimizer = getattr(self, "optimizer", None)
            step = optimizer.iterations if optimizer is not None else 0
        elif callable(step):
            step = step()
        step = tf.cast(step, tf.float32)
        return tf.minimum(1.0, step / float(self.total_training_steps))

    # -- forward ----------------------------------------------------------------

    def _aux(self, net, end_points: dict, training) -> None:
        """Runs the auxiliary head in training (and once, to create its weights, when
        the model is first built at a size where it fits)."""
        logits = self.aux_head.aux_logits
        pooled = (_pooled(net.shape[1]), _pooled(net.shape[2]))
        if not logits.built:
            if None in pooled:
                if training:
                    self._aux_error(net)
                return
            out = self.aux_head(self.params.act(net), training=training)
        elif training:
            if pooled != logits.pooled_size:
                self._aux_error(net)
            out = self.aux_head(self.params.act(net), training=training)
        else:
            return
        if training:
            end_points["AuxLogits"] = out

    def _aux_error(self, net):
        scope = self.aux_head.name
        h, w = net.shape[1], net.shape[2]
        built = self.aux_head.aux_logits.pooled_size
        if built is None:
            need = (f"a map of at least 5x5 at {scope} (images of at least "
                    f"{self._aux_min_size()}x{self._aux_min_size()})")
        else:
            need = (f"the {scope} map it was built for (pooled {built[0]}x{built[1]}; build "
                    "the model at the training image size with "
                    "create_model(..., input_shape=(H, W, 3)))")
        raise ValueError(
            f"{self.slim_name} ({self.name}): the auxiliary head needs {need}, but this "
            f"input gives a {h}x{w} map at {scope}; train with larger images or set "
            "use_aux_head=False")

    def forward(self, x, training=None):
        end_points = {}
        net = self.stem_bn(self.stem_conv(x), training=training)
        outputs = [None, net]
        if self.stem_type == "cifar":
            end_points["Stem"] = net
            if self.final_endpoint == "Stem":
                return net, end_points
        ratio = None
        if training and self.drop_path_keep_prob < 1.0:
            ratio = self.drop_path_progress()
        for step in self._plan:
            prev = None if step.prev is None else outputs[step.prev]
            net = self.cells[step.cell](net, prev, training=training, current_ratio=ratio)
            outputs.append(net)
            if step.end_point is not None:
                end_points[step.end_point] = net
                if step.end_point == self.final_endpoint:
                    return net, end_points
            if step.aux:
                self._aux(net, end_points, training)
        # final_layer
        net = tf.reduce_mean(self.params.act(net), axis=[1, 2])
        end_points["global_pool"] = net
        if self.final_endpoint == "global_pool" or not self.num_classes:
            return net, end_points
        net, logits = self.final_layer(net, training=training)
        end_points["Logits"] = logits
        end_points["Predictions"] = tf.nn.softmax(logits)
        if self.final_endpoint in ("Logits", "Predictions"):
            # slim's quirk: ending at Logits/Predictions returns the features after
            # dropout, not the logits.
            return net, end_points
        return logits, end_points

    def get_config(self):
        return {**self._base_config(), "variant": self.variant,
                **{key: getattr(self, key) for key in HPARAMS},
                "data_format": self.data_format, "final_endpoint": self.final_endpoint,
                "weight_decay": self.weight_decay, "batch_norm_decay": self.batch_norm_decay,
                "batch_norm_epsilon": self.batch_norm_epsilon}
