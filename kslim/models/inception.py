"""Inception v1, v2 and v3, as research/slim's `nets/inception_v1.py`,
`inception_v2.py`, `inception_v3.py` and `inception_utils.inception_arg_scope`.

- v1: Szegedy et al., "Going Deeper with Convolutions", 2014 (GoogLeNet, with batch
  norm as slim trains it).
- v2: Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by
  Reducing Internal Covariate Shift", 2015 (slim's "6a2" layout, a separable 7x7 stem).
- v3: Szegedy et al., "Rethinking the Inception Architecture for Computer Vision",
  2015, with the auxiliary head on Mixed_6e.

Every convolution is slim's `conv2d` under `inception_arg_scope`: batch norm with
decay 0.9997, epsilon 0.001 and no `gamma`, then relu; the classifiers are plain
1x1 convolutions with biases. The nets are tables of rows (`Conv`, `Pool`, `Mixed`)
whose names are slim's scopes and end points, quirks included (v1's
`Mixed_5b/Branch_2/Conv2d_0a_3x3`, v3's `Mixed_5c/Branch_1/Conv_1_0c_5x5` and the
3x3 convolutions v3 calls `Conv2d_1a_1x1`). The slim zoo checkpoints have 1001
classes (class 0 is the background), the registered default.
"""

from __future__ import annotations

import dataclasses
from typing import Union

import keras
import tensorflow as tf

from kslim.models._base import SlimModel
from kslim.models._layers import Conv2d, SeparableConv2d, Stack, out_size, pair
from kslim.models._registry import register_model

__all__ = ["InceptionV1", "InceptionV2", "InceptionV3", "inception_v1", "inception_v2",
           "inception_v3"]


# -- the architecture tables ----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Conv:
    """A slim.conv2d row: scope name, depth (before depth_multiplier), kernel, stride,
    padding, and the truncated-normal stddev of its weights (None: the net's default)."""

    name: str
    depth: int
    kernel: int | tuple[int, int]
    stride: int = 1
    padding: str = "SAME"
    stddev: float | None = None
    separable: bool = False  # slim.separable_conv2d when the net uses separable convs


@dataclasses.dataclass(frozen=True)
class Pool:
    """A slim.max_pool2d / avg_pool2d row (no variables)."""

    name: str
    kind: str  # "max" or "avg"
    kernel: int
    stride: int = 1
    padding: str = "SAME"


@dataclasses.dataclass(frozen=True)
class Fork:
    """Convolutions applied to the same input and concatenated (v3's Mixed_7b/7c);
    only as the last step of a branch."""

    convs: tuple[Conv, ...]


Step = Union[Conv, Pool, Fork]


@dataclasses.dataclass(frozen=True)
class Mixed:
    """An Inception block: branches `Branch_0..n` run on the same input, concatenated."""

    name: str
    branches: tuple[tuple[Step, ...], ...]


def _v1_mixed(name, b0, b1, b2, b3, b2_conv="Conv2d_0b_3x3"):
    """v1 block: 1x1 | 1x1-3x3 | 1x1-3x3 | maxpool-1x1."""
    return Mixed(name, (
        (Conv("Conv2d_0a_1x1", b0, 1),),
        (Conv("Conv2d_0a_1x1", b1[0], 1), Conv("Conv2d_0b_3x3", b1[1], 3)),
        (Conv("Conv2d_0a_1x1", b2[0], 1), Conv(b2_conv, b2[1], 3)),
        (Pool("MaxPool_0a_3x3", "max", 3), Conv("Conv2d_0b_1x1", b3, 1)),
    ))


INCEPTION_V1 = (
    Conv("Conv2d_1a_7x7", 64, 7, 2),
    Pool("MaxPool_2a_3x3", "max", 3, 2),
    Conv("Conv2d_2b_1x1", 64, 1),
    Conv("Conv2d_2c_3x3", 192, 3),
    Pool("MaxPool_3a_3x3", "max", 3, 2),
    _v1_mixed("Mixed_3b", 64, (96, 128), (16, 32), 32),
    _v1_mixed("Mixed_3c", 128, (128, 192), (32, 96), 64),
    Pool("MaxPool_4a_3x3", "max", 3, 2),
    _v1_mixed("Mixed_4b", 192, (96, 208), (16, 48), 64),
    _v1_mixed("Mixed_4c", 160, (112, 224), (24, 64), 64),
    _v1_mixed("Mixed_4d", 128, (128, 256), (24, 64), 64),
    _v1_mixed("Mixed_4e", 112, (144, 288), (32, 64), 64),
    _v1_mixed("Mixed_4f", 256, (160, 320), (32, 128), 128),
    Pool("MaxPool_5a_2x2", "max", 2, 2),
    # slim names this block's second Branch_2 conv Conv2d_0a_3x3 (kept for checkpoints).
    _v1_mixed("Mixed_5b", 256, (160, 320), (32, 128), 128, b2_conv="Conv2d_0a_3x3"),
    _v1_mixed("Mixed_5c", 384, (192, 384), (48, 128), 128),
)


def _v2_mixed(name, b0, b1, b2, b3, pool="avg"):
    """v2 block: 1x1 | 1x1-3x3 | 1x1-3x3-3x3 | pool-1x1 (slim's per-conv stddevs)."""
    pool_name = "AvgPool_0a_3x3" if pool == "avg" else "MaxPool_0a_3x3"
    return Mixed(name, (
        (Conv("Conv2d_0a_1x1", b0, 1),),
        (Conv("Conv2d_0a_1x1", b1[0], 1, stddev=0.09), Conv("Conv2d_0b_3x3", b1[1], 3)),
        (Conv("Conv2d_0a_1x1", b2[0], 1, stddev=0.09), Conv("Conv2d_0b_3x3", b2[1], 3),
         Conv("Conv2d_0c_3x3", b2[1], 3)),
        (Pool(pool_name, pool, 3), Conv("Conv2d_0b_1x1", b3, 1, stddev=0.1)),
    ))


def _v2_reduction(name, b0, b1):
    """v2 grid reduction: 1x1-3x3/2 | 1x1-3x3-3x3/2 | maxpool/2 (all SAME)."""
    return Mixed(name, (
        (Conv("Conv2d_0a_1x1", b0[0], 1, stddev=0.09), Conv("Conv2d_1a_3x3", b0[1], 3, 2)),
        (Conv("Conv2d_0a_1x1", b1[0], 1, stddev=0.09), Conv("Conv2d_0b_3x3", b1[1], 3),
         Conv("Conv2d_1a_3x3", b1[1], 3, 2)),
        (Pool("MaxPool_1a_3x3", "max", 3, 2),),
    ))


INCEPTION_V2 = (
    Conv("Conv2d_1a_7x7", 64, 7, 2, stddev=1.0, separable=True),
    Pool("MaxPool_2a_3x3", "max", 3, 2),
    Conv("Conv2d_2b_1x1", 64, 1, stddev=0.1),
    Conv("Conv2d_2c_3x3", 192, 3),
    Pool("MaxPool_3a_3x3", "max", 3, 2),
    _v2_mixed("Mixed_3b", 64, (64, 64), (64, 96), 32),
    _v2_mixed("Mixed_3c", 64, (64, 96), (64, 96), 64),
    _v2_reduction("Mixed_4a", (128, 160), (64, 96)),
    _v2_mixed("Mixed_4b", 224, (64, 96), (96, 128), 128),
    _v2_mixed("Mixed_4c", 192, (96, 128), (96, 128), 128),
    _v2_mixed("Mixed_4d", 160, (128, 160), (128, 160), 96),
    _v2_mixed("Mixed_4e", 96, (128, 192), (160, 192), 96),
    _v2_reduction("Mixed_5a", (128, 192), (192, 256)),
    _v2_mixed("Mixed_5b", 352, (192, 320), (160, 224), 128),
    _v2_mixed("Mixed_5c", 352, (192, 320), (192, 224), 128, pool="max"),
)


def _v3_35x35(name, pool_depth, b1=("Conv2d_0a_1x1", "Conv2d_0b_5x5")):
    """v3 35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""
    return Mixed(name, (
        (Conv("Conv2d_0a_1x1", 64, 1),),
        (Conv(b1[0], 48, 1), Conv(b1[1], 64, 5)),
        (Conv("Conv2d_0a_1x1", 64, 1), Conv("Conv2d_0b_3x3", 96, 3),
         Conv("Conv2d_0c_3x3", 96, 3)),
        (Pool("AvgPool_0a_3x3", "avg", 3), Conv("Conv2d_0b_1x1", pool_depth, 1)),
    ))


def _v3_17x17(name, mid):
    """v3 17x17 block with factorized 7x7s: 1x1 | 1x1-1x7-7x1 | 1x1-(7x1-1x7)x2 | avgpool-1x1."""
    return Mixed(name, (
        (Conv("Conv2d_0a_1x1", 192, 1),),
        (Conv("Conv2d_0a_1x1", mid, 1), Conv("Conv2d_0b_1x7", mid, (1, 7)),
         Conv("Conv2d_0c_7x1", 192, (7, 1))),
        (Conv("Conv2d_0a_1x1", mid, 1), Conv("Conv2d_0b_7x1", mid, (7, 1)),
         Conv("Conv2d_0c_1x7", mid, (1, 7)), Conv("Conv2d_0d_7x1", mid, (7, 1)),
         Conv("Conv2d_0e_1x7", 192, (1, 7))),
        (Pool("AvgPool_0a_3x3", "avg", 3), Conv("Conv2d_0b_1x1", 192, 1)),
    ))


def _v3_8x8(name, b1_3x1):
    """v3 8x8 block with split 1x3/3x1 outputs."""
    return Mixed(name, (
        (Conv("Conv2d_0a_1x1", 320, 1),),
        (Conv("Conv2d_0a_1x1", 384, 1),
         Fork((Conv("Conv2d_0b_1x3", 384, (1, 3)), Conv(b1_3x1, 384, (3, 1))))),
        (Conv("Conv2d_0a_1x1", 448, 1), Conv("Conv2d_0b_3x3", 384, 3),
         Fork((Conv("Conv2d_0c_1x3", 384, (1, 3)), Conv("Conv2d_0d_3x1", 384, (3, 1))))),
        (Pool("AvgPool_0a_3x3", "avg", 3), Conv("Conv2d_0b_1x1", 192, 1)),
    ))


INCEPTION_V3 = (
    Conv("Conv2d_1a_3x3", 32, 3, 2, "VALID"),
    Conv("Conv2d_2a_3x3", 32, 3, 1, "VALID"),
    Conv("Conv2d_2b_3x3", 64, 3),
    Pool("MaxPool_3a_3x3", "max", 3, 2, "VALID"),
    Conv("Conv2d_3b_1x1", 80, 1, 1, "VALID"),
    Conv("Conv2d_4a_3x3", 192, 3, 1, "VALID"),
    Pool("MaxPool_5a_3x3", "max", 3, 2, "VALID"),
    _v3_35x35("Mixed_5b", 32),
    # slim's Mixed_5c names its 5x5 branch Conv2d_0b_1x1 / Conv_1_0c_5x5.
    _v3_35x35("Mixed_5c", 64, b1=("Conv2d_0b_1x1", "Conv_1_0c_5x5")),
    _v3_35x35("Mixed_5d", 64),
    Mixed("Mixed_6a", (
        # slim names these 3x3 stride-2 convolutions Conv2d_1a_1x1.
        (Conv("Conv2d_1a_1x1", 384, 3, 2, "VALID"),),
        (Conv("Conv2d_0a_1x1", 64, 1), Conv("Conv2d_0b_3x3", 96, 3),
         Conv("Conv2d_1a_1x1", 96, 3, 2, "VALID")),
        (Pool("MaxPool_1a_3x3", "max", 3, 2, "VALID"),),
    )),
    _v3_17x17("Mixed_6b", 128),
    _v3_17x17("Mixed_6c", 160),
    _v3_17x17("Mixed_6d", 160),
    _v3_17x17("Mixed_6e", 192),
    Mixed("Mixed_7a", (
        (Conv("Conv2d_0a_1x1", 192, 1), Conv("Conv2d_1a_3x3", 320, 3, 2, "VALID")),
        (Conv("Conv2d_0a_1x1", 192, 1), Conv("Conv2d_0b_1x7", 192, (1, 7)),
         Conv("Conv2d_0c_7x1", 192, (7, 1)), Conv("Conv2d_1a_3x3", 192, 3, 2, "VALID")),
        (Pool("MaxPool_1a_3x3", "max", 3, 2, "VALID"),),
    )),
    _v3_8x8("Mixed_7b", "Conv2d_0b_3x1"),
    _v3_8x8("Mixed_7c", "Conv2d_0c_3x1"),
)

# Rows before the first Inception block (research/slim's `include_root_block`).
_ROOT_ROWS = 5

# inception_arg_scope: conv weights variance_scaling_initializer() (factor 2, fan in,
# truncated normal), the explicit `trunc_normal(stddev)` where a net asks for it.
_VARIANCE_SCALING = {"class_name": "VarianceScaling",
                     "config": {"scale": 2.0, "mode": "fan_in",
                                "distribution": "truncated_normal"}}


def _truncated_normal(stddev: float) -> dict:
    return {"class_name": "TruncatedNormal", "config": {"mean": 0.0, "stddev": stddev}}


# -- size arithmetic --------------------------------------------------------------

def _walk(rows, size: int) -> dict[str, int] | None:
    """`{end point: height}` of each row for an input of height `size` (None if a
    VALID op does not fit). Every branch of a block ends at the same size, so the
    first one is followed."""
    sizes = {}
    for row in rows:
        steps = row.branches[0] if isinstance(row, Mixed) else (row,)
        for step in steps:
            if isinstance(step, Fork):
                continue  # stride-1 SAME convolutions
            size = out_size(size, pair(step.kernel)[0], step.stride, step.padding)
            if size < 1:
                return None
        sizes[row.name] = size
    return sizes


def _reduced_kernel(shape, kernel: int) -> tuple[int, int]:
    """slim's `_reduced_kernel_size_for_small_input`: `min(map, kernel)` per axis from
    the static shape, the full kernel where the shape is unknown."""
    h, w = shape[1], shape[2]
    return (kernel if h is None else min(h, kernel), kernel if w is None else min(w, kernel))


# -- layers -----------------------------------------------------------------------

class PoolLayer(keras.layers.Layer):
    """slim.max_pool2d / avg_pool2d (TF semantics: SAME average pools exclude the
    padding from the count)."""

    def __init__(self, kind: str, kernel, stride=1, padding: str = "SAME", **kwargs):
        super().__init__(**kwargs)
        if kind not in ("max", "avg"):
            raise ValueError(f"pool kind must be 'max' or 'avg', got {kind!r}")
        self.kind = kind
        self.kernel = pair(kernel)
        self.stride = stride
        self.padding = padding.upper()

    def call(self, x, training=None):
        pool = tf.nn.max_pool2d if self.kind == "max" else tf.nn.avg_pool2d
        return pool(x, self.kernel, self.stride, self.padding)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "kernel": self.kernel,
                "stride": self.stride, "padding": self.padding}


class Branch(keras.layers.Layer):
    """One `Branch_i` scope: layers in order, the last `fork` of them applied to the
    same input and concatenated (v3's 1x3/3x1 splits)."""

    def __init__(self, layers, fork: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.steps = list(layers)
        self.fork = fork

    def call(self, x, training=None):
        sequential = self.steps[:len(self.steps) - self.fork]
        for layer in sequential:
            x = layer(x, training=training)
        if self.fork:
            x = tf.concat([layer(x, training=training)
                           for layer in self.steps[len(sequential):]], axis=3)
        return x


class Block(keras.layers.Layer):
    """A `Mixed_*` scope: its branches on the same input, concatenated on channels."""

    def __init__(self, branches, **kwargs):
        super().__init__(**kwargs)
        self.branches = list(branches)

    def call(self, x, training=None):
        return tf.concat([branch(x, training=training) for branch in self.branches],
                         axis=3)


# -- the models -------------------------------------------------------------------

class _Inception(SlimModel):
    """What Inception v1-v3 share: the table-driven base, slim's arg scope, the head.

    Subclasses set the class attributes below and call `_build_base` from `__init__`.
    """

    architecture: tuple = ()
    default_stddev: float | None = None  # base conv init (None: variance scaling)
    pool_kernel = 7  # the Logits average pool
    reduce_pool_kernel = True  # min(map, pool_kernel) as slim's small-input rule
    pool_end_point = "AvgPool_1a"
    dropout_name = "Dropout_1b"
    logits_name = "Conv2d_1c_1x1"
    prelogits_end_point: str | None = "PreLogits"
    head_scopes = ("Logits",)

    def __init__(self, num_classes: int | None = 1001, dropout_keep_prob: float = 0.8,
                 spatial_squeeze: bool = True, global_pool: bool = False,
                 weight_decay: float = 0.0, use_batch_norm: bool = True,
                 batch_norm_decay: float = 0.9997, batch_norm_epsilon: float = 0.001,
                 batch_norm_scale: bool = False, name: str | None = None, **kwargs):
        super().__init__(num_classes=num_classes, name=name, **kwargs)
        if not 0.0 < dropout_keep_prob <= 1.0:
            raise ValueError(f"{self.slim_name}: dropout_keep_prob must be in (0, 1], "
                             f"got {dropout_keep_prob!r}")
        self.dropout_keep_prob = dropout_keep_prob
        self.spatial_squeeze = spatial_squeeze
        self.global_pool = global_pool
        self.weight_decay = weight_decay
        self.use_batch_norm = use_batch_norm
        self.batch_norm_decay = batch_norm_decay
        self.batch_norm_epsilon = batch_norm_epsilon
        self.batch_norm_scale = batch_norm_scale
        self._min_size: int | None = None

    # -- construction -----------------------------------------------------------

    def _depth(self, depth: int) -> int:
        return depth

    def _conv(self, row: Conv, **overrides) -> keras.layers.Layer:
        """A slim.conv2d under inception_arg_scope for a table row."""
        stddev = row.stddev if row.stddev is not None else self.default_stddev
        init = _VARIANCE_SCALING if stddev is None else _truncated_normal(stddev)
        batch_norm = None
        if self.use_batch_norm:
            batch_norm = {"decay": self.batch_norm_decay, "epsilon": self.batch_norm_epsilon,
                          "scale": self.batch_norm_scale}
        options = dict(stride=row.stride, padding=row.padding, batch_norm=batch_norm,
                       weight_decay=self.weight_decay, kernel_initializer=init, name=row.name)
        options.update(overrides)
        return Conv2d(self._depth(row.depth), row.kernel, **options)

    def _layer(self, step: Conv | Pool) -> keras.layers.Layer:
        if isinstance(step, Pool):
            return PoolLayer(step.kind, step.kernel, step.stride, step.padding, name=step.name)
        return self._conv(step)

    def _build_base(self, rows) -> None:
        self.rows = tuple(rows)
        self.base = []
        for row in self.rows:
            if not isinstance(row, Mixed):
                self.base.append(self._layer(row))
                continue
            branches = []
            for index, steps in enumerate(row.branches):
                layers, fork = [], 0
                for position, step in enumerate(steps):
                    if isinstance(step, Fork):
                        if position != len(steps) - 1:
                            raise ValueError(f"{row.name}: a Fork must end its branch")
                        layers.extend(self._conv(conv) for conv in step.convs)
                        fork = len(step.convs)
                    else:
                        layers.append(self._layer(step))
                branches.append(Branch(layers, fork, name=f"Branch_{index}"))
            self.base.append(Block(branches, name=row.name))
        if self.num_classes:
            self.logits = Stack([
                keras.layers.Dropout(1.0 - self.dropout_keep_prob, name=self.dropout_name),
                Conv2d(self.num_classes, 1, activation_fn=None, weight_decay=self.weight_decay,
                       kernel_initializer=_VARIANCE_SCALING, name=self.logits_name),
            ], name="Logits")

    # -- sizes --------------------------------------------------------------------

    def _accepts(self, size: int) -> bool:
        sizes = _walk(self.rows, size)
        if sizes is None:
            return False
        final = sizes[self.rows[-1].name]
        return self.global_pool or self.reduce_pool_kernel or final >= self.pool_kernel

    @property
    def min_input_size(self) -> int:
        if self._min_size is None:
            self._min_size = next(s for s in range(1, 4096) if self._accepts(s))
        return self._min_size

    def _size_hint(self) -> str:
        return ""

    def check_input_shape(self, shape) -> None:
        try:
            super().check_input_shape(shape)
        except ValueError as error:
            hint = self._size_hint()
            if hint and "at least" in str(error):
                raise ValueError(f"{error}; {hint}") from None
            raise

    # -- forward ------------------------------------------------------------------

    def _squeeze(self, x, what: str):
        """slim's SpatialSqueeze, with a clear error where slim's tf.squeeze fails."""
        if not self.spatial_squeeze:
            return x
        h, w = x.shape[1], x.shape[2]
        if (h is not None and h != 1) or (w is not None and w != 1):
            raise ValueError(
                f"{self.slim_name}: spatial_squeeze needs {what} to be 1x1 but it is "
                f"{h}x{w} for this input size; use the default image size, "
                "global_pool=True or spatial_squeeze=False")
        return tf.squeeze(x, axis=[1, 2])

    def _aux_head(self, end_points, training):
        """The auxiliary classifier (v3), or None."""
        return None

    def forward(self, x, training=None):
        end_points = {}
        for row, layer in zip(self.rows, self.base):
            x = end_points[row.name] = layer(x, training=training)
        aux = self._aux_head(end_points, training)
        if aux is not None:
            end_points["AuxLogits"] = aux
        if self.global_pool:
            x = end_points["global_pool"] = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        else:
            kernel = (_reduced_kernel(x.shape, self.pool_kernel) if self.reduce_pool_kernel
                      else (self.pool_kernel, self.pool_kernel))
            x = tf.nn.avg_pool2d(x, kernel, 1, "VALID")
            end_points[self.pool_end_point] = x
        if not self.num_classes:
            return x, end_points
        prelogits, logits = self.logits(x, training=training, return_all=True)
        if self.prelogits_end_point:
            end_points[self.prelogits_end_point] = prelogits
        logits = end_points["Logits"] = self._squeeze(logits, "the logits")
        end_points["Predictions"] = tf.nn.softmax(logits)
        return logits, end_points

    def _common_config(self) -> dict:
        return {**self._base_config(), "dropout_keep_prob": self.dropout_keep_prob,
                "spatial_squeeze": self.spatial_squeeze, "global_pool": self.global_pool,
                "weight_decay": self.weight_decay, "use_batch_norm": self.use_batch_norm,
                "batch_norm_decay": self.batch_norm_decay,
                "batch_norm_epsilon": self.batch_norm_epsilon,
                "batch_norm_scale": self.batch_norm_scale}


_COMMON_ARGS = """
        num_classes: classifier outputs (the zoo checkpoints: 1001, class 0 the
            background); 0/None returns the pooled features before dropout, as slim.
        dropout_keep_prob: the Logits dropout's keep probability in training.
        spatial_squeeze: squeeze the 1x1 logits to [batch, classes].
        global_pool: average the last block over all positions (any input size)
            instead of slim's fixed-window average pool.
        weight_decay: slim's L2 (`wd * sum(w**2) / 2`) on every conv2d `weights`;
            inception_arg_scope's default is 4e-5 (the train driver passes it).
        use_batch_norm, batch_norm_decay, batch_norm_epsilon, batch_norm_scale:
            inception_arg_scope's batch-norm settings (on, 0.9997, 0.001, no gamma);
            use_batch_norm=False gives every conv biases instead.
        name: the top-level scope."""


@keras.saving.register_keras_serializable(package="kslim")
class InceptionV1(_Inception):
    """Slim's `inception_v1` (GoogLeNet with batch norm).

    Args:{common}
        include_root_block: False drops the stem (Conv2d_1a_7x7 .. MaxPool_3a_3x3),
            as research/slim's `inception_v1_base(include_root_block=False)`.

    Example:
        >>> model = kslim.models.create_model("inception_v1")  # 1001 classes, 224x224
        >>> logits = model(images, training=False)
    """

    slim_name = "inception_v1"
    architecture = INCEPTION_V1
    default_stddev = 0.01  # inception_v1_base's trunc_normal(0.01) arg scope
    pool_kernel = 7
    reduce_pool_kernel = False  # v1's AvgPool_0a_7x7 is a fixed 7x7 VALID window
    pool_end_point = "AvgPool_0a_7x7"
    dropout_name = "Dropout_0b"
    logits_name = "Conv2d_0c_1x1"
    prelogits_end_point = None

    def __init__(self, num_classes: int | None = 1001, dropout_keep_prob: float = 0.8,
                 spatial_squeeze: bool = True, global_pool: bool = False,
                 include_root_block: bool = True, weight_decay: float = 0.0,
                 name: str | None = "InceptionV1", **kwargs):
        super().__init__(num_classes=num_classes, dropout_keep_prob=dropout_keep_prob,
                         spatial_squeeze=spatial_squeeze, global_pool=global_pool,
                         weight_decay=weight_decay, name=name or "InceptionV1", **kwargs)
        self.include_root_block = include_root_block
        self._build_base(self.architecture[0 if include_root_block else _ROOT_ROWS:])

    def _size_hint(self) -> str:
        return "" if self.global_pool else "global_pool=True accepts any size"

    def get_config(self):
        return {**self._common_config(), "include_root_block": self.include_root_block}


InceptionV1.__doc__ = InceptionV1.__doc__.replace("{common}", _COMMON_ARGS)


class _Thinned(_Inception):
    """v2/v3: `depth_multiplier` and `min_depth` thin every convolution."""

    def _set_depth(self, min_depth: int, depth_multiplier: float) -> None:
        if depth_multiplier <= 0:
            raise ValueError(f"{self.slim_name}: depth_multiplier must be greater than "
                             f"zero, got {depth_multiplier!r}")
        self.min_depth = min_depth
        self.depth_multiplier = depth_multiplier

    def _depth(self, depth: int) -> int:
        # slim: depth = lambda d: max(int(d * depth_multiplier), min_depth)
        return max(int(depth * self.depth_multiplier), self.min_depth)


@keras.saving.register_keras_serializable(package="kslim")
class InceptionV2(_Thinned):
    """Slim's `inception_v2`.

    Args:{common}
        min_depth: the smallest depth of any convolution when thinning.
        depth_multiplier: multiplies every convolution's depth (> 0).
        use_separable_conv: Conv2d_1a_7x7 as slim.separable_conv2d (depthwise
            multiplier `min(int(depth(64) / 3), 8)`, biases, no batch norm, as slim);
            False makes it a plain conv2d with batch norm.
        data_format: 'NHWC' only (kslim runs channels-last).
        include_root_block: False drops the stem (Conv2d_1a_7x7 .. MaxPool_3a_3x3).

    Example:
        >>> model = kslim.models.create_model("inception_v2", depth_multiplier=0.5)
    """

    slim_name = "inception_v2"
    architecture = INCEPTION_V2
    pool_kernel = 7

    def __init__(self, num_classes: int | None = 1001, dropout_keep_prob: float = 0.8,
                 min_depth: int = 16, depth_multiplier: float = 1.0,
                 spatial_squeeze: bool = True, global_pool: bool = False,
                 use_separable_conv: bool = True, data_format: str = "NHWC",
                 include_root_block: bool = True, weight_decay: float = 0.0,
                 name: str | None = "InceptionV2", **kwargs):
        super().__init__(num_classes=num_classes, dropout_keep_prob=dropout_keep_prob,
                         spatial_squeeze=spatial_squeeze, global_pool=global_pool,
                         weight_decay=weight_decay, name=name or "InceptionV2", **kwargs)
        if data_format == "NCHW":
            raise ValueError(
                "inception_v2: data_format='NCHW' is not supported; kslim models are "
                "channels-last: pass NHWC images (tf.transpose(images, [0, 2, 3, 1])) "
                "with data_format='NHWC'")
        if data_format != "NHWC":
            raise ValueError(f"inception_v2: data_format must be 'NHWC', got {data_format!r}")
        self._set_depth(min_depth, depth_multiplier)
        self.use_separable_conv = use_separable_conv
        self.data_format = data_format
        self.include_root_block = include_root_block
        self._build_base(self.architecture[0 if include_root_block else _ROOT_ROWS:])

    def _conv(self, row: Conv, **overrides):
        if not (row.separable and self.use_separable_conv):
            return super()._conv(row, **overrides)
        # slim.separable_conv2d is outside inception_arg_scope's conv2d scope: relu and
        # biases, no batch norm, no weight decay.
        depth = self._depth(row.depth)
        return SeparableConv2d(depth, row.kernel, depth_multiplier=min(depth // 3, 8),
                               stride=row.stride, padding=row.padding,
                               kernel_initializer=_truncated_normal(row.stddev), name=row.name)

    def get_config(self):
        return {**self._common_config(), "min_depth": self.min_depth,
                "depth_multiplier": self.depth_multiplier,
                "use_separable_conv": self.use_separable_conv,
                "data_format": self.data_format,
                "include_root_block": self.include_root_block}


InceptionV2.__doc__ = InceptionV2.__doc__.replace("{common}", _COMMON_ARGS)


@keras.saving.register_keras_serializable(package="kslim")
class InceptionV3(_Thinned):
    """Slim's `inception_v3`, with the auxiliary classifier on Mixed_6e.

    In training mode `model(x, training=True)` returns `{"logits", "aux_logits"}` and
    `compute_loss` adds 0.4 x the auxiliary loss, as train_image_classifier.py.
    The auxiliary head's second conv is `Conv2d_2a_{k}x{k}`, `k = min(map, 5)` for the
    size the model is built for (slim's small-input rule), so its name and shape
    follow the build size; in inference on a smaller image the head is skipped.

    Args:{common}
        min_depth: the smallest depth of any convolution when thinning.
        depth_multiplier: multiplies every convolution's depth (> 0).
        create_aux_logits: build the AuxLogits head (needs a classifier).

    Example:
        >>> model = kslim.models.create_model("inception_v3")  # 1001 classes, 299x299
        >>> out = model(images, training=True)  # {"logits", "aux_logits"}
    """

    slim_name = "inception_v3"
    architecture = INCEPTION_V3
    pool_kernel = 8
    head_scopes = ("Logits", "AuxLogits")
    aux_output = "AuxLogits"

    def __init__(self, num_classes: int | None = 1001, dropout_keep_prob: float = 0.8,
                 min_depth: int = 16, depth_multiplier: float = 1.0,
                 spatial_squeeze: bool = True, create_aux_logits: bool = True,
                 global_pool: bool = False, weight_decay: float = 0.0,
                 name: str | None = "InceptionV3", **kwargs):
        super().__init__(num_classes=num_classes, dropout_keep_prob=dropout_keep_prob,
                         spatial_squeeze=spatial_squeeze, global_pool=global_pool,
                         weight_decay=weight_decay, name=name or "InceptionV3", **kwargs)
        self._set_depth(min_depth, depth_multiplier)
        self.create_aux_logits = create_aux_logits
        self._build_base(self.architecture)
        self.aux_logits = None  # built for the input size in build()
        self._aux_kernel = None

    @property
    def _has_aux(self) -> bool:
        return bool(self.create_aux_logits and self.num_classes)

    def _aux_map_size(self, height, width):
        """The AuxLogits map after its 5x5/3 VALID pool, per axis (None: unknown)."""
        sizes = []
        for size in (height, width):
            if size is None:
                sizes.append(None)
                continue
            walked = _walk(self.rows, size)
            mixed_6e = None if walked is None else walked["Mixed_6e"]
            pooled = 0 if mixed_6e is None else out_size(mixed_6e, 5, 3, "VALID")
            sizes.append(pooled or None)
        return tuple(sizes)

    def build(self, input_shape):
        if self._has_aux:
            h, w = self._aux_map_size(input_shape[1], input_shape[2])
            kh, kw = _reduced_kernel((None, h, w), 5)
            self._aux_kernel = (kh, kw)
            self.aux_logits = Stack([
                PoolLayer("avg", 5, 3, "VALID", name="AvgPool_1a_5x5"),
                self._conv(Conv("Conv2d_1b_1x1", 128, 1)),
                self._conv(Conv(f"Conv2d_2a_{kh}x{kw}", 768, (kh, kw), padding="VALID",
                                stddev=0.01)),
                Conv2d(self.num_classes, 1, activation_fn=None,
                       weight_decay=self.weight_decay,
                       kernel_initializer=_truncated_normal(0.001), name="Conv2d_2b_1x1"),
            ], name="AuxLogits")

    def build_from_config(self, config):
        shape = (config or {}).get("input_shape")
        if shape:
            self.build_for(tuple(shape)[1:])

    def _accepts(self, size: int) -> bool:
        if not super()._accepts(size):
            return False
        if self._has_aux:  # slim's AuxLogits pools Mixed_6e with a 5x5 VALID window
            return _walk(self.rows, size)["Mixed_6e"] >= 5
        return True

    def _size_hint(self) -> str:
        return "create_aux_logits=False accepts 75x75" if self._has_aux else ""

    def _aux_head(self, end_points, training):
        if not self._has_aux:
            return None
        mixed_6e = end_points["Mixed_6e"]
        h, w = mixed_6e.shape[1], mixed_6e.shape[2]
        pooled = tuple(None if s is None else out_size(s, 5, 3, "VALID") or None
                       for s in (h, w))
        if any(p is not None and p < k for p, k in zip(pooled, self._aux_kernel)):
            if not training:
                return None  # the logits do not need it
            kh, kw = self._aux_kernel
            raise ValueError(
                f"inception_v3 ({self.name}): the AuxLogits head was built for a map of "
                f"at least {kh}x{kw} (Conv2d_2a_{kh}x{kw}), but this input gives "
                f"{pooled[0]}x{pooled[1]}; build the model for this image size "
                "(create_model(..., input_shape=(H, W, 3))) or use create_aux_logits=False")
        return self._squeeze(self.aux_logits(mixed_6e, training=training), "the aux logits")

    def forward(self, x, training=None):
        if self._has_aux and self.aux_logits is None:  # endpoints() before any build
            self.build(tuple(x.shape))
        return super().forward(x, training=training)

    def get_config(self):
        return {**self._common_config(), "min_depth": self.min_depth,
                "depth_multiplier": self.depth_multiplier,
                "create_aux_logits": self.create_aux_logits}


InceptionV3.__doc__ = InceptionV3.__doc__.replace("{common}", _COMMON_ARGS)


inception_v1 = register_model("inception_v1", InceptionV1, image_size=224, num_classes=1001,
                              preprocessing="inception_v1", scope="InceptionV1")
inception_v2 = register_model("inception_v2", InceptionV2, image_size=224, num_classes=1001,
                              preprocessing="inception_v2", scope="InceptionV2")
inception_v3 = register_model("inception_v3", InceptionV3, image_size=299, num_classes=1001,
                              preprocessing="inception_v3", scope="InceptionV3")
