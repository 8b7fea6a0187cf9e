"""The conv_defs machinery shared by MobileNet v2, v3 and EdgeTPU.

Mirrors research/slim's `nets/mobilenet/mobilenet.py` (`mobilenet_base`,
`mobilenet`, `global_pool`, `training_scope`, the depth multiplier with
`_make_divisible`, `output_stride`, `use_explicit_padding`) and
`nets/mobilenet/conv_blocks.py` (`expanded_conv`, `squeeze_excite`). A net is a
`ConvDefs` table of `Conv`, `ExpandedConv` and `ReduceTo1x1` rows (slim's `op(...)`
list); `MobileNet` turns a table into a Keras model whose weight paths are the slim
variable names (`MobilenetV2/expanded_conv_3/depthwise/depthwise_weights`, ...) and
whose `endpoints()` are slim's (`layer_4`, `layer_4/expansion_output`,
`layer_4/depthwise_output`, `layer_4/output`, `global_pool`, `Logits`, `Predictions`).

Where slim's own graph cannot be built kslim gives the option its documented
meaning, and says so where it does it: `use_explicit_padding` for the v3 tables
(slim passes the flag to `reduce_to_1x1` and pads the block input instead of the
depthwise input, and fails) and `output_stride` below 32 for tables with
`ReduceTo1x1` (slim passes the atrous rate to `avg_pool2d`, and fails).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import keras
import tensorflow as tf

from kslim.models._base import SlimModel
from kslim.models._layers import (Conv2d, SeparableConv2d, Stack, activation,
                                  conv2d_same_padding)

__all__ = ["Conv", "ConvDefs", "ExpandedConv", "MobileNet", "ReduceTo1x1", "depth",
           "make_divisible"]

# A row's activation "default" is its table's (slim's conv_defs `defaults`).
DEFAULT = "default"

# mobilenet.training_scope: truncated_normal(stddev=0.09) weights; batch norm decay
# 0.997 and slim's epsilon 0.001; the conv_defs set center=True, scale=True.
WEIGHTS_INITIALIZER = {"class_name": "TruncatedNormal", "config": {"stddev": 0.09}}

# mobilenet_v3's squeeze_excite partial: squeeze_factor=4, relu inside, divisible_by 8.
SE_SQUEEZE_FACTOR = 4
SE_DIVISIBLE_BY = 8


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """slim's `_make_divisible`: round to the nearest multiple of `divisor` (at least
    `min_value`, default `divisor`), one multiple up if rounding lost over 10%."""
    if min_value is None:
        min_value = divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return int(new_value)


def depth(num_outputs: float, multiplier: float, divisible_by: int = 8,
          min_depth: int = 8) -> int:
    """slim's `mobilenet.depth_multiplier`: a row's output depth under a multiplier."""
    return make_divisible(num_outputs * multiplier, divisible_by, min_depth)


def fixed_padding(x, kernel_size: int, rate: int = 1):
    """slim's `_fixed_padding`: pad so a VALID conv gives SAME's output size, split
    `(k_eff - 1) // 2` before and the rest after (a no-op for 1x1 kernels)."""
    if kernel_size == 1:
        return x
    return tf.pad(x, conv2d_same_padding(kernel_size, rate))


def hard_sigmoid_gate(x):
    """mobilenet_v3's squeeze-excite gate, `relu6(x + 3) * 0.16667`: slim rounds 1/6
    to 0.16667 here (its `hard_swish` uses the exact float32(1/6))."""
    return tf.nn.relu6(x + 3.0) * 0.16667


# -- the architecture table rows (slim's `op(...)` entries) -----------------------------

@dataclasses.dataclass(frozen=True)
class Conv:
    """`op(slim.conv2d, ...)`: a conv with batch norm (or biases) and an activation.

    Attributes:
        num_outputs: output depth before the depth multiplier.
        kernel_size: square kernel.
        stride: spatial stride.
        activation_fn: activation name, None (linear) or "default" (the table's).
        batch_norm: False is slim's `normalizer_fn=None` (the conv gets biases).
    """

    num_outputs: float
    kernel_size: int = 3
    stride: int = 1
    activation_fn: str | None = DEFAULT
    batch_norm: bool = True


@dataclasses.dataclass(frozen=True)
class ExpandedConv:
    """`op(expanded_conv, ...)`: 1x1 expansion, depthwise, optional squeeze-excite,
    linear 1x1 projection, residual when the stride is 1 and the depths match.

    Attributes:
        num_outputs: projection depth before the depth multiplier.
        expansion: slim's `expand_input_by_factor(expansion, expansion_divisible_by)`;
            the expansion conv exists only when it widens the input.
        kernel_size: depthwise kernel (the expansion kernel when `fused`).
        stride: depthwise stride (the expansion stride when `fused`).
        activation_fn: slim's `inner_activation_fn` (expansion and depthwise).
        squeeze_excite: mobilenet_v3's `_se4` expansion transform.
        fused: mobilenet_v3's `mbv3_fused`: a `kernel_size` expansion conv and no
            depthwise (EdgeTPU).
        residual: allow the residual connection.
        expansion_divisible_by: rounding of the expanded depth.
    """

    num_outputs: float
    expansion: float = 6.0
    kernel_size: int = 3
    stride: int = 1
    activation_fn: str | None = DEFAULT
    squeeze_excite: bool = False
    fused: bool = False
    residual: bool = True
    expansion_divisible_by: int = 8


@dataclasses.dataclass(frozen=True)
class ReduceTo1x1:
    """mobilenet_v3's `reduce_to_1x1`: a VALID average pool over the whole (square)
    feature map, or a `default_size` window when it is not square."""

    default_size: int = 7


_ROWS = {cls.__name__: cls for cls in (Conv, ExpandedConv, ReduceTo1x1)}


@dataclasses.dataclass(frozen=True)
class ConvDefs:
    """slim's `conv_defs`: the rows of a net and its default activation."""

    spec: tuple
    activation_fn: str = "relu6"

    def to_config(self) -> dict:
        return {"activation_fn": self.activation_fn,
                "spec": [{"type": type(row).__name__, **dataclasses.asdict(row)}
                         for row in self.spec]}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ConvDefs":
        rows = []
        for item in config["spec"]:
            item = dict(item)
            kind = item.pop("type", None)
            if kind not in _ROWS:
                raise ValueError(f"conv_defs row {item!r} has type {kind!r}; expected one "
                                 f"of {sorted(_ROWS)}")
            rows.append(_ROWS[kind](**item))
        return cls(tuple(rows), config.get("activation_fn", "relu6"))


def resolve_conv_defs(conv_defs, tables: Mapping[str, ConvDefs], net: str
                      ) -> tuple[ConvDefs, str | None]:
    """`(ConvDefs, table name or None)` for a table name, a `ConvDefs`, its config
    dict or a sequence of rows."""
    if isinstance(conv_defs, str):
        if conv_defs not in tables:
            raise ValueError(f"{net}: unknown conv_defs {conv_defs!r}; expected one of "
                             f"{sorted(tables)}, a ConvDefs or a list of rows")
        return tables[conv_defs], conv_defs
    if isinstance(conv_defs, ConvDefs):
        defs = conv_defs
    elif isinstance(conv_defs, Mapping):
        defs = ConvDefs.from_config(conv_defs)
    elif isinstance(conv_defs, Sequence):
        defs = ConvDefs(tuple(conv_defs))
    else:
        raise ValueError(f"{net}: conv_defs must be a table name, a ConvDefs or a list "
                         f"of rows, got {conv_defs!r}")
    for row in defs.spec:
        if type(row) not in _ROWS.values():
            raise ValueError(f"{net}: conv_defs row {row!r} is not one of "
                             f"{sorted(_ROWS)}")
    if not defs.spec:
        raise ValueError(f"{net}: conv_defs has no rows")
    return defs, None


def _check_activation(name: str | None, net: str) -> None:
    try:
        activation(name)
    except ValueError as error:
        raise ValueError(f"{net}: {error}") from None


# -- blocks ---------------------------------------------------------------------------

class SqueezeExcite(keras.layers.Layer):
    """conv_blocks.squeeze_excite as mobilenet_v3 uses it: global mean, 1x1 conv to
    `_make_divisible(channels / 4, 8)` with relu (`Conv`), 1x1 conv back with the
    hard-sigmoid gate (`Conv_1`), both with biases; scales the input."""

    def __init__(self, weight_decay: float = 0.0, name: str = "squeeze_excite", **kwargs):
        super().__init__(name=name, **kwargs)
        self.weight_decay = weight_decay

    def build(self, input_shape):
        channels = int(input_shape[-1])
        squeeze = make_divisible(channels / SE_SQUEEZE_FACTOR, SE_DIVISIBLE_BY)
        common = dict(weight_decay=self.weight_decay, kernel_initializer=WEIGHTS_INITIALIZER)
        self.squeeze = Conv2d(squeeze, 1, activation_fn="relu", name="Conv", **common)
        self.excite = Conv2d(channels, 1, activation_fn=None, name="Conv_1", **common)

    def call(self, x):
        pooled = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        gate = hard_sigmoid_gate(self.excite(self.squeeze(pooled)))
        return x * gate


class ExpandedConvBlock(keras.layers.Layer):
    """conv_blocks.expanded_conv (slim scope `expanded_conv[_N]`).

    The sub-layers depend on the input depth (the expansion exists only when it
    widens the input), so they are made in `build`.
    """

    def __init__(self, row: ExpandedConv, num_outputs: int, stride: int, rate: int,
                 activation_fn: str | None, explicit_padding: bool, batch_norm: dict,
                 weight_decay: float, **kwargs):
        super().__init__(**kwargs)
        self.row = row
        self.num_outputs = num_outputs
        self.stride = stride
        self.rate = rate
        self.activation_fn = activation_fn
        self.explicit_padding = explicit_padding
        self.batch_norm = batch_norm
        self.weight_decay = weight_decay

    def build(self, input_shape):
        row = self.row
        in_depth = int(input_shape[-1])
        inner = make_divisible(in_depth * row.expansion, row.expansion_divisible_by)
        padding = "VALID" if self.explicit_padding else "SAME"
        common = dict(batch_norm=self.batch_norm, weight_decay=self.weight_decay,
                      kernel_initializer=WEIGHTS_INITIALIZER)
        self.expand = None
        if inner > in_depth:
            if row.fused:
                # mbv3_fused binds the row's stride into the expansion conv, so
                # output_stride does not reach it (slim's quirk, kept).
                self.expand = Conv2d(inner, row.kernel_size, stride=row.stride,
                                     padding=padding, activation_fn=self.activation_fn,
                                     name="expand", **common)
            else:
                self.expand = Conv2d(inner, 1, activation_fn=self.activation_fn,
                                     name="expand", **common)
        self.depthwise = None
        if not row.fused:
            self.depthwise = SeparableConv2d(
                None, row.kernel_size, depth_multiplier=1, stride=self.stride,
                padding=padding, rate=self.rate, activation_fn=self.activation_fn,
                batch_norm=self.batch_norm, kernel_initializer=WEIGHTS_INITIALIZER,
                name="depthwise")
        self.squeeze_excite = (SqueezeExcite(self.weight_decay)
                               if row.squeeze_excite else None)
        self.project = Conv2d(self.num_outputs, 1, activation_fn=None, name="project",
                              **common)
        # slim checks the block's stride param (1 under atrous) and the depths only.
        self.use_residual = (row.residual and self.stride == 1
                             and self.num_outputs == in_depth)

    def call(self, x, training=None, return_all: bool = False):
        points = {}
        net = x
        if self.expand is not None:
            if self.row.fused and self.explicit_padding:
                net = fixed_padding(net, self.row.kernel_size)
            net = points["expansion_output"] = self.expand(net, training=training)
        if self.depthwise is not None:
            if self.explicit_padding:
                net = fixed_padding(net, self.row.kernel_size, self.rate)
            net = points["depthwise_output"] = self.depthwise(net, training=training)
        if self.squeeze_excite is not None:
            net = self.squeeze_excite(net)
        net = self.project(net, training=training)
        if self.use_residual:
            net = net + x
        points["output"] = net
        return (net, points) if return_all else net


def reduce_to_1x1(x, default_size: int):
    """mobilenet_v3's `reduce_to_1x1`: VALID average pool, stride 1, with an HxH window
    when the map is square with a known size, else `default_size`."""
    height, width = x.shape[1], x.shape[2]
    size = height if (height is not None and width == height) else default_size
    return tf.nn.avg_pool2d(x, ksize=size, strides=1, padding="VALID")


def global_pool(x):
    """mobilenet.global_pool: a VALID average pool over the whole map (1x1 output)."""
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None:
        return tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    return tf.nn.avg_pool2d(x, ksize=(height, width), strides=1, padding="VALID")


# -- the model --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Planned:
    """One row after the depth multiplier and output_stride: what the net runs."""

    row: Any
    name: str  # slim scope ('' for the pool)
    num_outputs: int | None
    stride: int
    rate: int


class MobileNet(SlimModel):
    """A slim `mobilenet.mobilenet` classifier over a conv_defs table.

    Subclasses (MobileNetV2, MobileNetV3) give the tables, the finegrain rule and the
    names; this class does the depth multiplier, output_stride (atrous), explicit
    padding, the `Logits` head (global pool, dropout, `Conv2d_1c_1x1`) and slim's end
    points.
    """

    head_scopes = ("Logits",)
    tables: Mapping[str, ConvDefs] = {}

    def __init__(self, num_classes: int | None = 1001, *, net: str, conv_defs,
                 depth_multiplier: float = 1.0, finegrain_classification_mode: bool = False,
                 min_depth: int = 8, divisible_by: int = 8, output_stride: int | None = None,
                 use_explicit_padding: bool = False, base_only: bool = False,
                 dropout_keep_prob: float = 0.8, weight_decay: float = 0.0,
                 batch_norm_decay: float = 0.997, batch_norm_epsilon: float = 0.001,
                 name: str | None = None, **kwargs):
        # MobileNetV2's `activation_fn` (slim's v2 overrides its table's default
        # activation; slim's v3 function has no such argument).
        activation_fn = kwargs.pop("activation_fn", None)
        self.slim_name = net
        if not isinstance(depth_multiplier, (int, float)) or depth_multiplier <= 0:
            raise ValueError(f"{net}: depth_multiplier must be > 0 (slim: 'multiplier is "
                             f"not greater than zero'), got {depth_multiplier!r}")
        if output_stride is not None and (
                not isinstance(output_stride, int) or output_stride <= 0
                or (output_stride > 1 and output_stride % 2)):
            raise ValueError(f"{net}: output_stride must be None, 1 or a multiple of 2, "
                             f"got {output_stride!r}")
        for key, value in (("min_depth", min_depth), ("divisible_by", divisible_by)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{net}: {key} must be a positive int, got {value!r}")
        if not 0.0 < dropout_keep_prob <= 1.0:
            raise ValueError(f"{net}: dropout_keep_prob must be in (0, 1], got "
                             f"{dropout_keep_prob!r}")
        defs, table = resolve_conv_defs(conv_defs, self.tables, net)
        for row in defs.spec:
            if getattr(row, "activation_fn", None) not in (None, DEFAULT):
                _check_activation(row.activation_fn, net)
        _check_activation(activation_fn or defs.activation_fn, net)
        if base_only:
            num_classes = 0
        super().__init__(num_classes=num_classes, name=name, **kwargs)
        self.conv_defs = table if table is not None else defs
        self.depth_multiplier = depth_multiplier
        self.finegrain_classification_mode = finegrain_classification_mode
        self.min_depth = min_depth
        self.divisible_by = divisible_by
        self.output_stride = output_stride
        self.use_explicit_padding = use_explicit_padding
        self.base_only = base_only
        self.dropout_keep_prob = dropout_keep_prob
        self.weight_decay = weight_decay
        self.batch_norm_decay = batch_norm_decay
        self.batch_norm_epsilon = batch_norm_epsilon
        self.activation_fn = activation_fn
        self.default_activation = activation_fn or defs.activation_fn

        self.plan = self._plan(self._finegrain(defs))
        batch_norm = {"decay": batch_norm_decay, "epsilon": batch_norm_epsilon,
                      "center": True, "scale": True}
        self.ops = []
        for planned in self.plan:
            self.ops.append(self._make_op(planned, batch_norm))
        if self.num_classes:
            self.logits = Stack([
                keras.layers.Dropout(1.0 - dropout_keep_prob, name="Dropout"),
                Conv2d(self.num_classes, 1, activation_fn=None, weight_decay=weight_decay,
                       kernel_initializer=WEIGHTS_INITIALIZER, name="Conv2d_1c_1x1"),
            ], name="Logits")

    # -- what subclasses decide -------------------------------------------------------

    def _finegrain(self, defs: ConvDefs) -> list[tuple[Any, bool]]:
        """`[(row, multiplier_exempt)]` after finegrain_classification_mode."""
        return [(row, False) for row in defs.spec]

    # -- construction -----------------------------------------------------------------

    def _plan(self, rows: list[tuple[Any, bool]]) -> list[_Planned]:
        """mobilenet_base's loop: depths, and strides turned into atrous rates once
        `output_stride` is reached."""
        plan = []
        counts: dict[str, int] = {}
        current_stride, rate = 1, 1
        for row, exempt in rows:
            stride = getattr(row, "stride", 1)
            if self.output_stride is not None and current_stride == self.output_stride:
                layer_stride, layer_rate = 1, rate
                rate *= stride
            else:
                layer_stride, layer_rate = stride, 1
                current_stride *= stride
            # slim gives the rate to every op whose kernel is not 1x1.
            if getattr(row, "kernel_size", None) == 1:
                layer_rate = 1
            outputs = None
            if hasattr(row, "num_outputs"):
                outputs = (int(row.num_outputs) if exempt else
                           depth(row.num_outputs, self.depth_multiplier, self.divisible_by,
                                 self.min_depth))
            base = {Conv: "Conv", ExpandedConv: "expanded_conv"}.get(type(row), "")
            name = ""
            if base:
                count = counts.get(base, 0)
                counts[base] = count + 1
                name = base if count == 0 else f"{base}_{count}"
            plan.append(_Planned(row, name, outputs, layer_stride, layer_rate))
        return plan

    def _activation(self, row) -> str | None:
        return self.default_activation if row.activation_fn == DEFAULT else row.activation_fn

    def _make_op(self, planned: _Planned, batch_norm: dict):
        row = planned.row
        if isinstance(row, Conv):
            return Conv2d(planned.num_outputs, row.kernel_size, stride=planned.stride,
                          rate=planned.rate,
                          padding="VALID" if self.use_explicit_padding else "SAME",
                          activation_fn=self._activation(row),
                          batch_norm=batch_norm if row.batch_norm else None,
                          weight_decay=self.weight_decay,
                          kernel_initializer=WEIGHTS_INITIALIZER, name=planned.name)
        if isinstance(row, ExpandedConv):
            return ExpandedConvBlock(row, planned.num_outputs, planned.stride, planned.rate,
                                     self._activation(row), self.use_explicit_padding,
                                     batch_norm, self.weight_decay, name=planned.name)
        return None  # ReduceTo1x1 has no weights

    # -- input checks -----------------------------------------------------------------

    def _pool_input_size(self, size: int) -> int:
        """Feature-map side reaching the first ReduceTo1x1 for an input side `size`
        (SAME-style ceil per stride; a fused expansion keeps its row's stride)."""
        for planned in self.plan:
            row = planned.row
            if isinstance(row, ReduceTo1x1):
                break
            fused = isinstance(row, ExpandedConv) and row.fused
            size = math.ceil(size / (row.stride if fused else planned.stride))
        return size

    @property
    def min_input_size(self) -> int:
        return 1

    def _min_non_square_size(self) -> int | None:
        """Smallest side for non-square inputs: ReduceTo1x1 then pools a fixed window."""
        pools = [p.row for p in self.plan if isinstance(p.row, ReduceTo1x1)]
        if not pools:
            return None
        need = pools[0].default_size
        size = 1
        while self._pool_input_size(size) < need:
            size += 1
        return size

    def check_input_shape(self, shape) -> None:
        super().check_input_shape(shape)
        shape = tuple(shape)
        height, width = shape[1], shape[2]
        if height is None or width is None or height == width:
            return
        need = self._min_non_square_size()
        if need is None:
            return
        window = next(p.row.default_size for p in self.plan
                      if isinstance(p.row, ReduceTo1x1))
        for axis, size in (("height", height), ("width", width)):
            if size < need:
                raise ValueError(
                    f"{self.slim_name} ({self.name}) needs non-square images of at least "
                    f"{need}x{need} (reduce_to_1x1 pools a fixed {window}x{window} window "
                    f"unless the feature map is square), got {axis} {size} in shape "
                    f"{shape}; use square images or larger ones")

    # -- forward ----------------------------------------------------------------------

    def forward(self, x, training=None):
        end_points = {}
        for index, (planned, op) in enumerate(zip(self.plan, self.ops), start=1):
            key = f"layer_{index}"
            row = planned.row
            if isinstance(row, Conv):
                if self.use_explicit_padding:
                    x = fixed_padding(x, row.kernel_size, planned.rate)
                x = op(x, training=training)
            elif isinstance(row, ExpandedConv):
                x, points = op(x, training=training, return_all=True)
                for point, value in points.items():
                    end_points[f"{key}/{point}"] = value
            else:
                x = reduce_to_1x1(x, row.default_size)
            end_points[key] = x
        if self.base_only:
            return x, end_points
        x = end_points["global_pool"] = global_pool(x)
        if not self.num_classes:
            return x, end_points
        x = self.logits(x, training=training)
        x = end_points["Logits"] = tf.squeeze(x, axis=[1, 2])
        end_points["Predictions"] = tf.nn.softmax(x)
        return x, end_points

    def get_config(self):
        conv_defs = (self.conv_defs if isinstance(self.conv_defs, str)
                     else self.conv_defs.to_config())
        return {**self._base_config(), "net": self.slim_name, "conv_defs": conv_defs,
                "depth_multiplier": self.depth_multiplier,
                "finegrain_classification_mode": self.finegrain_classification_mode,
                "min_depth": self.min_depth, "divisible_by": self.divisible_by,
                "output_stride": self.output_stride,
                "use_explicit_padding": self.use_explicit_padding,
                "base_only": self.base_only, "dropout_keep_prob": self.dropout_keep_prob,
                "weight_decay": self.weight_decay,
                "batch_norm_decay": self.batch_norm_decay,
                "batch_norm_epsilon": self.batch_norm_epsilon}
