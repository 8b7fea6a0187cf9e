"""ResNet v1 and v2 (50/101/152/200), as research/slim's `nets/resnet_v1.py`,
`nets/resnet_v2.py` and `nets/resnet_utils.py`.

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", 2015 (v1), and
"Identity Mappings in Deep Residual Networks", 2016 (v2, full pre-activation).

Slim's layout, kept exactly:
- bottleneck units named `blockN/unit_M/bottleneck_v1` (`shortcut`, `conv1`, `conv2`,
  `conv3`) or `.../bottleneck_v2` (plus the `preact` batch norm);
- the stride of a block sits on its LAST unit (slim subsamples a block's output, the
  MSRA code its input; tf_slim 1.1.0 and research/slim agree on this);
- strided 3x3 convolutions use `conv2d_same` (explicit symmetric padding, then VALID),
  the identity shortcut of a strided unit is `subsample` (a 1x1 stride-s max pool);
- the root is a 7x7/2 `conv2d_same` convolution and a 3x3/2 max pool with SAME padding
  (resnet_arg_scope's `max_pool2d` padding); v2's root conv has biases and no batch
  norm, and v2 ends with the `postnorm` batch norm;
- `output_stride` replaces strides by atrous rates (`stack_blocks_dense`'s bookkeeping),
  and v1's `store_non_strided_activations` records each block's output before its
  subsampling.

BatchNorm follows `resnet_arg_scope`: decay 0.997, epsilon 1e-5 (TF's fused batch norm,
which slim uses, raises it to 1.001e-5), `scale=True`. The zoo checkpoints have 1000
classes for v1 (Caffe conversions) and 1001 for v2.

Differences from tf_slim 1.1.0, whose nets the tests compare with: research/slim (which
kslim follows) adds `spatial_squeeze` (default True: logits [B, C] instead of tf_slim's
[B, 1, 1, C]), the `global_pool` and `<scope>/spatial_squeeze` end points,
`store_non_strided_activations`, v1's `depth_multiplier`/`min_base_depth`/bounded
activations, and treats `num_classes=0` like None (features, no logits layer).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import keras
import tensorflow as tf

from kslim.models._base import SlimModel
from kslim.models._layers import BatchNorm, Conv2d
from kslim.models._registry import register_model

__all__ = [
    "Bottleneck",
    "ResNetV1",
    "ResNetV2",
    "UnitPlan",
    "plan_units",
    "subsample",
    "resnet_v1_50",
    "resnet_v1_101",
    "resnet_v1_152",
    "resnet_v1_200",
    "resnet_v2_50",
    "resnet_v2_101",
    "resnet_v2_152",
    "resnet_v2_200",
]

# Units per block (block1..block4) for each depth. Every net has bottleneck base depths
# 64, 128, 256, 512 (outputs 4x that) and block strides 2, 2, 2, 1.
UNITS = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}
BASE_DEPTHS = (64, 128, 256, 512)
BLOCK_STRIDES = (2, 2, 2, 1)
ROOT_STRIDE = 4  # conv1 (stride 2) and pool1 (stride 2)

# resnet_arg_scope's batch norm and the conv initializer (slim's
# variance_scaling_initializer(): factor 2, FAN_IN, truncated normal).
BATCH_NORM_DECAY = 0.997
BATCH_NORM_EPSILON = 1e-5
_CONV_INIT = {"class_name": "VarianceScaling",
              "config": {"scale": 2.0, "mode": "fan_in", "distribution": "truncated_normal"}}


def subsample(inputs, factor: int):
    """slim's `resnet_utils.subsample`: a 1x1 max pool with stride `factor`, i.e. every
    `factor`-th row and column starting at the first. Kept as the pool: on CPU it runs
    5-9x faster than the equal strided slice `x[:, ::f, ::f]` (8x56x56x256: 0.8 vs 7 ms)."""
    if factor == 1:
        return inputs
    return tf.nn.max_pool2d(inputs, 1, factor, "SAME")


@dataclasses.dataclass(frozen=True)
class UnitPlan:
    """One bottleneck unit as `stack_blocks_dense` runs it."""

    depth: int
    depth_bottleneck: int
    stride: int
    rate: int


def plan_units(blocks: Sequence[tuple[int, int, int]], output_stride: int | None = None,
               store_non_strided_activations: bool = False, include_root_block: bool = True,
               net: str = "resnet") -> list[tuple[list[UnitPlan], int]]:
    """slim's `stack_blocks_dense` stride/rate bookkeeping, done once at construction.

    Args:
        blocks: `(num_units, base_depth, stride)` per block; the stride sits on the last
            unit of the block.
        output_stride: None (nominal stride) or the requested input/output resolution
            ratio; once reached, the remaining strides become atrous rates.
        store_non_strided_activations: move each block's last-unit stride after the
            block's end point (the block output is recorded before subsampling).
        include_root_block: the root's stride of 4 counts towards `output_stride`.
        net: the net's name, for error messages.

    Returns:
        Per block, its units' `UnitPlan`s and the subsampling factor applied after the
        block's end point.

    Raises:
        ValueError: `output_stride` cannot be reached.
    """
    strides = [s for n, _, s in blocks for s in [1] * (n - 1) + [s]]
    root = ROOT_STRIDE if include_root_block else 1
    reachable = []
    current = root
    for stride in [1] + strides:
        current *= stride
        if current not in reachable:
            reachable.append(current)

    def unreachable(reason: str) -> ValueError:
        return ValueError(
            f"{net}: output_stride={output_stride} cannot be reached ({reason}); it must "
            f"be one of {', '.join(map(str, reachable))} or None")

    target = None
    if output_stride is not None:
        if isinstance(output_stride, bool) or not isinstance(output_stride, int) \
                or output_stride <= 0:
            raise ValueError(f"{net}: output_stride must be a positive int or None, "
                             f"got {output_stride!r}")
        if output_stride % root:
            raise unreachable(f"the root block already has stride {root}, so it must be "
                              f"a multiple of {root}")
        target = output_stride // root

    plan = []
    current, rate = 1, 1
    for num_units, base_depth, block_stride_spec in blocks:
        units = []
        block_stride = 1
        for index in range(num_units):
            stride = block_stride_spec if index == num_units - 1 else 1
            if store_non_strided_activations and index == num_units - 1:
                block_stride, stride = stride, 1
            if target is not None and current == target:
                units.append(UnitPlan(base_depth * 4, base_depth, 1, rate))
                rate *= stride
            else:
                units.append(UnitPlan(base_depth * 4, base_depth, stride, 1))
                current *= stride
                if target is not None and current > target:
                    raise unreachable("the strides of the units pass it")
        if target is not None and current == target:
            rate *= block_stride
            after = 1
        else:
            after = block_stride
            current *= block_stride
            if target is not None and current > target:
                raise unreachable("the strides of the units pass it")
        plan.append((units, after))
    if target is not None and current != target:
        raise unreachable(f"the net's total stride is {current * root}")
    return plan


class Bottleneck(keras.layers.Layer):
    """slim's bottleneck residual unit, scope `bottleneck_v1` or `bottleneck_v2`.

    v1 (BN after each conv): `relu(shortcut(x) + conv3(conv2(conv1(x))))`.
    v2 (full pre-activation): `preact = relu(BN(x))`, then
    `shortcut(preact) + conv3(conv2(conv1(preact)))` with biases (no BN) on `shortcut`
    and `conv3`. The shortcut is a 1x1 projection when the depth changes, otherwise
    `subsample(x, stride)`. `conv2` is a `conv2d_same` 3x3 conv with `stride` and `rate`.

    `call` returns `(output, {"shortcut"?, "conv1", "conv2", "conv3": tensor})`, the
    unit's output and the end points slim collects inside it.
    """

    def __init__(self, version: int, depth: int, depth_bottleneck: int, stride: int = 1,
                 rate: int = 1, batch_norm: dict | None = None,
                 preact_batch_norm: dict | None = None, activation_fn: str | None = "relu",
                 weight_decay: float = 0.0, use_bounded_activations: bool = False,
                 **kwargs):
        kwargs.setdefault("name", f"bottleneck_v{version}")
        super().__init__(**kwargs)
        self.version = version
        self.depth = depth
        self.stride = stride
        self.use_bounded_activations = use_bounded_activations
        self._batch_norm = batch_norm
        self._conv = dict(weight_decay=weight_decay, kernel_initializer=_CONV_INIT)
        self._activation_fn = activation_fn
        if version == 2:
            self.preact = BatchNorm(name="preact", **(preact_batch_norm or {}))
        # v2: conv3 is linear with biases (no normalizer); v1: conv3 has BN, no activation.
        self.conv1 = Conv2d(depth_bottleneck, 1, activation_fn=activation_fn,
                            batch_norm=batch_norm, name="conv1", **self._conv)
        self.conv2 = Conv2d(depth_bottleneck, 3, stride=stride, rate=rate,
                            padding="conv2d_same", activation_fn=activation_fn,
                            batch_norm=batch_norm, name="conv2", **self._conv)
        self.conv3 = Conv2d(depth, 1, activation_fn=None,
                            batch_norm=batch_norm if version == 1 else None, name="conv3",
                            **self._conv)
        self.shortcut = None

    def build(self, input_shape):
        # slim decides between projection and identity from the input depth.
        if input_shape[-1] != self.depth:
            activation = "relu6" if self.use_bounded_activations else None
            self.shortcut = Conv2d(
                self.depth, 1, stride=self.stride, activation_fn=activation,
                batch_norm=self._batch_norm if self.version == 1 else None,
                name="shortcut", **self._conv)

    def call(self, x, training=None):
        points = {}
        if self.version == 2:
            preact = tf.nn.relu(self.preact(x, training=training))
        else:
            preact = x
        if self.shortcut is not None:
            shortcut = points["shortcut"] = self.shortcut(preact, training=training)
        else:
            shortcut = subsample(x, self.stride)
        residual = points["conv1"] = self.conv1(preact, training=training)
        residual = points["conv2"] = self.conv2(residual, training=training)
        residual = points["conv3"] = self.conv3(residual, training=training)
        if self.version == 2:
            return shortcut + residual, points
        if self.use_bounded_activations:
            return tf.nn.relu6(shortcut + tf.clip_by_value(residual, -6.0, 6.0)), points
        return tf.nn.relu(shortcut + residual), points


class _Unit(keras.layers.Layer):
    """The `unit_N` variable scope around one bottleneck."""

    def __init__(self, bottleneck: Bottleneck, **kwargs):
        super().__init__(**kwargs)
        self.bottleneck = bottleneck

    def call(self, x, training=None):
        return self.bottleneck(x, training=training)


class _Block(keras.layers.Layer):
    """A `blockN` scope: its units in order. `call` returns the block output and the
    end points of its units, keyed `unit_M/bottleneck_vK[/conv]`."""

    def __init__(self, units: Sequence[Bottleneck], **kwargs):
        super().__init__(**kwargs)
        self.units = [_Unit(unit, name=f"unit_{i}") for i, unit in enumerate(units, start=1)]

    def call(self, x, training=None):
        points = {}
        for unit in self.units:
            x, unit_points = unit(x, training=training)
            prefix = f"{unit.name}/{unit.bottleneck.name}"
            for key, value in unit_points.items():
                points[f"{prefix}/{key}"] = value
            points[prefix] = x
        return x, points


class _ResNet(SlimModel):
    """What ResNet v1 and v2 share; see `ResNetV1` and `ResNetV2`."""

    version = 1
    head_scopes = ("logits",)

    def __init__(self, num_layers: int = 50, num_classes: int | None = 1000,
                 global_pool: bool = True, output_stride: int | None = None,
                 spatial_squeeze: bool = True, include_root_block: bool = True,
                 weight_decay: float = 0.0,
                 batch_norm_decay: float = BATCH_NORM_DECAY,
                 batch_norm_epsilon: float = BATCH_NORM_EPSILON,
                 batch_norm_scale: bool = True, use_batch_norm: bool = True,
                 activation_fn: str | None = "relu", name: str | None = None, **kwargs):
        slim_name = f"resnet_v{self.version}_{num_layers}"
        if num_layers not in UNITS:
            raise ValueError(f"resnet_v{self.version}: unknown num_layers {num_layers!r}; "
                             f"expected one of {sorted(UNITS)}")
        super().__init__(num_classes=num_classes, name=name or slim_name, **kwargs)
        self.slim_name = slim_name
        self.num_layers = num_layers
        self.global_pool = global_pool
        self.output_stride = output_stride
        self.spatial_squeeze = spatial_squeeze
        self.include_root_block = include_root_block
        self.weight_decay = weight_decay
        self.batch_norm_decay = batch_norm_decay
        self.batch_norm_epsilon = batch_norm_epsilon
        self.batch_norm_scale = batch_norm_scale
        self.use_batch_norm = use_batch_norm
        self.activation_fn = activation_fn

        plan = plan_units(
            list(zip(UNITS[num_layers], self._base_depths(), BLOCK_STRIDES)), output_stride,
            self._store_non_strided(), include_root_block, net=slim_name)
        norm = {"decay": batch_norm_decay, "epsilon": batch_norm_epsilon,
                "scale": batch_norm_scale}
        batch_norm = norm if use_batch_norm else None
        conv = dict(weight_decay=weight_decay, kernel_initializer=_CONV_INIT)
        if include_root_block:
            # v2's root conv has neither batch norm nor activation: the first unit's
            # preact does both (appendix of the v2 paper).
            self.conv1 = Conv2d(64, 7, stride=2, padding="conv2d_same", name="conv1",
                                activation_fn=activation_fn if self.version == 1 else None,
                                batch_norm=batch_norm if self.version == 1 else None, **conv)
        self.blocks = []
        self._subsample_after = []
        for index, (units, after) in enumerate(plan, start=1):
            self.blocks.append(_Block(
                [Bottleneck(self.version, unit.depth, unit.depth_bottleneck, unit.stride,
                            unit.rate, batch_norm=batch_norm, preact_batch_norm=norm,
                            activation_fn=activation_fn, weight_decay=weight_decay,
                            **self._unit_options())
                 for unit in units],
                name=f"block{index}"))
            self._subsample_after.append(after)
        if self.version == 2:
            self.postnorm = BatchNorm(name="postnorm", **norm)
        if self.num_classes:
            self.logits = Conv2d(self.num_classes, 1, activation_fn=None, name="logits",
                                 **conv)

    def _base_depths(self) -> Sequence[int]:
        return BASE_DEPTHS

    def _store_non_strided(self) -> bool:
        return False

    def _unit_options(self) -> dict:
        return {}

    @property
    def min_input_size(self) -> int:
        # conv2d_same and SAME pooling keep at least one pixel at every stride.
        return 1

    def forward(self, x, training=None):
        scope = self.name
        end_points = {}
        if self.include_root_block:
            x = end_points[f"{scope}/conv1"] = self.conv1(x, training=training)
            x = tf.nn.max_pool2d(x, 3, 2, "SAME")  # pool1: not an end point in slim
        for block, factor in zip(self.blocks, self._subsample_after):
            x, points = block(x, training=training)
            for key, value in points.items():
                end_points[f"{scope}/{block.name}/{key}"] = value
            end_points[f"{scope}/{block.name}"] = x
            x = subsample(x, factor)
        if self.version == 2:
            x = tf.nn.relu(self.postnorm(x, training=training))
        if self.global_pool:
            x = end_points["global_pool"] = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        if self.num_classes:
            x = end_points[f"{scope}/logits"] = self.logits(x, training=training)
            if self.spatial_squeeze:
                if x.shape[1] not in (1, None) or x.shape[2] not in (1, None):
                    raise ValueError(
                        f"{self.slim_name}: spatial_squeeze needs 1x1 logits but they are "
                        f"{x.shape[1]}x{x.shape[2]} for this input size; use "
                        "global_pool=True or spatial_squeeze=False")
                x = end_points[f"{scope}/spatial_squeeze"] = tf.squeeze(x, axis=[1, 2])
            end_points["predictions"] = tf.nn.softmax(x)
        return x, end_points

    def get_config(self):
        return {**self._base_config(), "num_layers": self.num_layers,
                "global_pool": self.global_pool, "output_stride": self.output_stride,
                "spatial_squeeze": self.spatial_squeeze,
                "include_root_block": self.include_root_block,
                "weight_decay": self.weight_decay,
                "batch_norm_decay": self.batch_norm_decay,
                "batch_norm_epsilon": self.batch_norm_epsilon,
                "batch_norm_scale": self.batch_norm_scale,
                "use_batch_norm": self.use_batch_norm, "activation_fn": self.activation_fn}


@keras.saving.register_keras_serializable(package="kslim")
class ResNetV1(_ResNet):
    """Slim's ResNet v1 (`resnet_v1_50`, `_101`, `_152`, `_200`).

    Args:
        num_layers: 50, 101, 152 or 200.
        num_classes: logits outputs; 0/None returns the features: block4's output,
            average-pooled to [B, 1, 1, 2048] when `global_pool`.
        global_pool: average the last block's output before the logits (any input size).
        output_stride: None, or 4, 8, 16, 32: the input/output resolution ratio, reached
            with atrous convolution in the later blocks (dense prediction).
        spatial_squeeze: logits [B, C] instead of [B, 1, 1, C].
        include_root_block: the 7x7/2 conv1 and pool1 (False: the input goes straight to
            block1).
        store_non_strided_activations: record each block's output at full resolution
            before subsampling it (the end points; 4x the cost of the last units).
        weight_decay: slim's L2 on every conv `weights` (resnet_arg_scope uses 1e-4;
            nets_factory's default is 0).
        batch_norm_decay, batch_norm_epsilon, batch_norm_scale, use_batch_norm,
        activation_fn: resnet_arg_scope's options.
        depth_multiplier, min_base_depth: bottleneck depths become
            `max(int(d * depth_multiplier), min_base_depth)` (conv1 stays 64).
        use_bounded_activations: relu6 and a [-6, 6] clip of the residual, for
            quantized inference (slim's `bottleneck(use_bounded_activations=True)`).
        name: the top-level scope (default the slim name, e.g. `resnet_v1_50`).

    Example:
        >>> model = kslim.models.create_model("resnet_v1_50", num_classes=1000)
        >>> logits = model(images, training=False)
    """

    version = 1

    def __init__(self, num_layers: int = 50, num_classes: int | None = 1000,
                 store_non_strided_activations: bool = False,
                 depth_multiplier: float = 1.0, min_base_depth: int = 8,
                 use_bounded_activations: bool = False, **kwargs):
        if depth_multiplier <= 0:
            raise ValueError(f"resnet_v1_{num_layers}: depth_multiplier must be positive, "
                             f"got {depth_multiplier!r}")
        # Set before the base constructor, which builds the blocks from them.
        self.store_non_strided_activations = store_non_strided_activations
        self.depth_multiplier = depth_multiplier
        self.min_base_depth = min_base_depth
        self.use_bounded_activations = use_bounded_activations
        super().__init__(num_layers=num_layers, num_classes=num_classes, **kwargs)

    def _base_depths(self) -> Sequence[int]:
        return [max(int(d * self.depth_multiplier), self.min_base_depth)
                for d in BASE_DEPTHS]

    def _store_non_strided(self) -> bool:
        return self.store_non_strided_activations

    def _unit_options(self) -> dict:
        return {"use_bounded_activations": self.use_bounded_activations}

    def get_config(self):
        return {**super().get_config(),
                "store_non_strided_activations": self.store_non_strided_activations,
                "depth_multiplier": self.depth_multiplier,
                "min_base_depth": self.min_base_depth,
                "use_bounded_activations": self.use_bounded_activations}


@keras.saving.register_keras_serializable(package="kslim")
class ResNetV2(_ResNet):
    """Slim's ResNet v2, full pre-activation (`resnet_v2_50`, `_101`, `_152`, `_200`).

    Takes `ResNetV1`'s arguments except `store_non_strided_activations`,
    `depth_multiplier`, `min_base_depth` and `use_bounded_activations` (research/slim's
    resnet_v2 has none of them). The root
    conv1 has biases and no batch norm; `postnorm` (BN + relu) follows block4, so the
    features (num_classes 0/None) are post-activation. The default 1001 classes are the
    zoo checkpoints' (label 0 = background).

    Example:
        >>> model = kslim.models.create_model("resnet_v2_50")   # 1001 classes
    """

    version = 2

    def __init__(self, num_layers: int = 50, num_classes: int | None = 1001, **kwargs):
        super().__init__(num_layers=num_layers, num_classes=num_classes, **kwargs)


_REGISTER = dict(image_size=224)
resnet_v1_50 = register_model("resnet_v1_50", ResNetV1, num_classes=1000,
                              preprocessing="resnet_v1_50", num_layers=50, **_REGISTER)
resnet_v1_101 = register_model("resnet_v1_101", ResNetV1, num_classes=1000,
                               preprocessing="resnet_v1_101", num_layers=101, **_REGISTER)
resnet_v1_152 = register_model("resnet_v1_152", ResNetV1, num_classes=1000,
                               preprocessing="resnet_v1_152", num_layers=152, **_REGISTER)
resnet_v1_200 = register_model("resnet_v1_200", ResNetV1, num_classes=1000,
                               preprocessing="resnet_v1_200", num_layers=200, **_REGISTER)
resnet_v2_50 = register_model("resnet_v2_50", ResNetV2, num_classes=1001,
                              preprocessing="resnet_v2_50", num_layers=50, **_REGISTER)
resnet_v2_101 = register_model("resnet_v2_101", ResNetV2, num_classes=1001,
                               preprocessing="resnet_v2_101", num_layers=101, **_REGISTER)
resnet_v2_152 = register_model("resnet_v2_152", ResNetV2, num_classes=1001,
                               preprocessing="resnet_v2_152", num_layers=152, **_REGISTER)
resnet_v2_200 = register_model("resnet_v2_200", ResNetV2, num_classes=1001,
                               preprocessing="resnet_v2_200", num_layers=200, **_REGISTER)
