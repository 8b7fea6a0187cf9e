"""S3D-G, the gated separable 3-D Inception net, as research/slim's `nets/s3dg.py`
(`s3dg_base`, `s3dg`, `s3dg_arg_scope`), also the base of I3D (kslim/models/i3d.py).

Xie, Sun, Huang, Tu & Murphy, "Rethinking Spatiotemporal Feature Learning: Speed-
Accuracy Trade-offs in Video Classification", 2017 (https://arxiv.org/abs/1712.04851).

Inception v1 inflated to 3-D and named as Inception v1 (`InceptionV1/Mixed_4b/...`, so
image checkpoints convert), taking NDHWC clips `[batch, frames, height, width, 3]`.
From `temporal_conv_startat` on, the 3x3 convs get a temporal kernel of 3 (split into a
spatial `[1, 3, 3]` and a `.../temporal` `[3, 1, 1]` conv: separable); from
`gating_startat` on, each block's branch outputs are self-gated
(`.../self_gating/transformer_W`). The head averages `[2, 7, 7]` windows (smaller for
small clips), applies a 1x1x1 conv and averages the logits over time. Slim has no
zoo checkpoint for these nets; `weights=` takes any slim checkpoint of them.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from kslim.models._layers import Conv3d, Stack
from kslim.models._registry import register_model
from kslim.models._video import (InceptionBlock3d, MaxPool3d, SpatioTemporalConv,
                                 VideoModel, reduced_kernel_size_3d)

__all__ = ["S3DG", "s3dg"]


# -- the architecture table ----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Conv:
    """A conv end point: depth (before `depth()`), spatial kernel, stride, and whether
    slim checks `temporal_conv_startat`/`gating_startat` here."""

    name: str
    depth: int
    kernel: int
    stride: int = 1
    switch: bool = False


@dataclasses.dataclass(frozen=True)
class Pool:
    """A slim.max_pool3d end point: (t, h, w) kernel and stride."""

    name: str
    kernel: tuple[int, int, int]
    stride: tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class Mixed:
    """An `inception_block_v1_3d` end point: its six `num_outputs_*` (b0, b1a, b1b,
    b2a, b2b, b3); slim checks the start points before each block."""

    name: str
    depths: tuple[int, int, int, int, int, int]
    switch: bool = True


S3DG_BASE = (
    Conv("Conv2d_1a_7x7", 64, 7, stride=2),  # temporal kernel: first_temporal_kernel_size
    Pool("MaxPool_2a_3x3", (1, 3, 3), (1, 2, 2)),
    Conv("Conv2d_2b_1x1", 64, 1),
    Conv("Conv2d_2c_3x3", 192, 3, switch=True),
    Pool("MaxPool_3a_3x3", (1, 3, 3), (1, 2, 2)),
    Mixed("Mixed_3b", (64, 96, 128, 16, 32, 32)),
    Mixed("Mixed_3c", (128, 128, 192, 32, 96, 64)),
    Pool("MaxPool_4a_3x3", (3, 3, 3), (2, 2, 2)),
    Mixed("Mixed_4b", (192, 96, 208, 16, 48, 64)),
    Mixed("Mixed_4c", (160, 112, 224, 24, 64, 64)),
    Mixed("Mixed_4d", (128, 128, 256, 24, 64, 64)),
    Mixed("Mixed_4e", (112, 144, 288, 32, 64, 64)),
    Mixed("Mixed_4f", (256, 160, 320, 32, 128, 128)),
    Pool("MaxPool_5a_2x2", (2, 2, 2), (2, 2, 2)),
    Mixed("Mixed_5b", (256, 160, 320, 32, 128, 128)),
    Mixed("Mixed_5c", (384, 192, 384, 48, 128, 128)),
)
END_POINTS = tuple(row.name for row in S3DG_BASE)
# The head's average pool before the 1x1x1 logits conv: (time, height, width).
POOL_KERNEL = (2, 7, 7)



def head_pool(x):
    """The head's `AvgPool_0a_7x7`: a VALID average pool of `POOL_KERNEL` reduced to
    the map (slim's `reduced_kernel_size_3d`). With a clip length unknown until run
    time the temporal window is chosen then: 2 frames, or 1 when one is left."""
    t, h, w = reduced_kernel_size_3d(x.shape, POOL_KERNEL)
    ones = (1, 1, 1, 1, 1)
    if x.shape[1] is not None:
        return tf.nn.avg_pool3d(x, (1, t, h, w, 1), ones, "VALID")
    x = tf.nn.avg_pool3d(x, (1, 1, h, w, 1), ones, "VALID")
    return tf.cond(tf.shape(x)[1] >= t,
                   lambda: tf.nn.avg_pool3d(x, (1, t, 1, 1, 1), ones, "VALID"), lambda: x)


# -- the model ------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="kslim")
class S3DG(VideoModel):
    """Slim's `s3dg` (and, through `I3D` in kslim/models/i3d.py, `i3d`).

    Args:
        num_classes: classifier outputs; 0/None returns the features the logits conv
            reads: the head's average pool averaged over time, `[batch, 1024]` (with
            `spatial_squeeze`) or `[batch, h, w, 1024]`.
        first_temporal_kernel_size: temporal kernel of Conv2d_1a_7x7: 1, 3, 5 or 7.
        temporal_conv_startat: the first end point (Conv2d_2c_3x3 or a Mixed_*) whose
            3x3 convs get a temporal kernel of 3; a name slim never checks (None, a
            pool) keeps every conv 2-D (`[1, k, k]`), as slim's code does.
        gating_startat: the first end point (the same ones) with self-gating; None
            for none.
        final_endpoint: the last end point of the base (`END_POINTS`); the head is
            applied to it, as slim's `s3dg`.
        min_depth, depth_multiplier: slim's `depth(d) = max(int(d * multiplier),
            min_depth)` for every conv.
        dropout_keep_prob: the head's dropout keep probability in training.
        spatial_squeeze: squeeze the logits to `[batch, classes]` (needs a 1x1 map
            after the head's pool: frames of at most 224x224 at Mixed_5c).
        separable: conv3d_spatiotemporal's `separable`: split the temporal convs
            (s3dg_arg_scope sets True; i3d takes it as `separable_conv3d`).
        weight_decay: slim's L2 (`wd * sum(w**2) / 2`) on every conv3d `weights`
            (the arg scopes' default is 1e-7; the train driver passes its flag).
        batch_norm_decay, batch_norm_epsilon: the arg scope's batch norm (0.999,
            0.001; no `gamma`).
        data_format: 'NDHWC' only (kslim runs channels-last).
        name: the top-level scope (slim's `InceptionV1`).

    Example:
        >>> model = kslim.models.create_model("s3dg", num_classes=400)  # 64x224x224
        >>> logits = model(clips, training=False)   # clips: [batch, 64, 224, 224, 3]
    """

    slim_name = "s3dg"
    head_scopes = ("Logits",)

    def __init__(self, num_classes: int | None = 1000, first_temporal_kernel_size: int = 3,
                 temporal_conv_startat: str | None = "Conv2d_2c_3x3",
                 gating_startat: str | None = "Conv2d_2c_3x3",
                 final_endpoint: str = "Mixed_5c", min_depth: int = 16,
                 depth_multiplier: float = 1.0, dropout_keep_prob: float = 0.8,
                 spatial_squeeze: bool = True, separable: bool = True,
                 weight_decay: float = 0.0, batch_norm_decay: float = 0.999,
                 batch_norm_epsilon: float = 0.001, data_format: str = "NDHWC",
                 name: str | None = "InceptionV1", **kwargs):
        super().__init__(num_classes=num_classes, name=name or "InceptionV1", **kwargs)
        what = self.slim_name
        if first_temporal_kernel_size not in (1, 3, 5, 7):
            raise ValueError(f"{what}: first_temporal_kernel_size can only be 1, 3, 5 or "
                             f"7, got {first_temporal_kernel_size!r}")
        if final_endpoint not in END_POINTS:
            raise ValueError(f"{what}: unknown final_endpoint {final_endpoint!r}; "
                             f"expected one of {', '.join(END_POINTS)}")
        if depth_multiplier <= 0:
            raise ValueError(f"{what}: depth_multiplier must be greater than zero, got "
                             f"{depth_multiplier!r}")
        if not 0.0 < dropout_keep_prob <= 1.0:
            raise ValueError(f"{what}: dropout_keep_prob must be in (0, 1], got "
                             f"{dropout_keep_prob!r}")
        if data_format != "NDHWC":
            raise ValueError(f"{what}: data_format must be 'NDHWC' (kslim models are "
                             f"channels-last; transpose NCDHW clips with "
                             f"tf.transpose(clips, [0, 2, 3, 4, 1])), got {data_format!r}")
        self.first_temporal_kernel_size = first_temporal_kernel_size
        self.temporal_conv_startat = temporal_conv_startat
        self.gating_startat = gating_startat
        self.final_endpoint = final_endpoint
        self.min_depth = min_depth
        self.depth_multiplier = depth_multiplier
        self.dropout_keep_prob = dropout_keep_prob
        self.spatial_squeeze = spatial_squeeze
        self.separable = bool(separable)
        self.weight_decay = weight_decay
        self.batch_norm_decay = batch_norm_decay
        self.batch_norm_epsilon = batch_norm_epsilon
        self.data_format = data_format
        self.rows = S3DG_BASE[:END_POINTS.index(final_endpoint) + 1]
        self.base = self._build_base()
        if self.num_classes:
            self.logits = Stack([
                keras.layers.Dropout(1.0 - dropout_keep_prob, name="Dropout_0b"),
                Conv3d(self.num_classes, 1, activation_fn=None, weight_decay=weight_decay,
                       name="Conv2d_0c_1x1"),
            ], name="Logits")

    # -- construction -------------------------------------------------------------

    def _depth(self, depth: int) -> int:
        # slim: depth = lambda d: max(int(d * depth_multiplier), min_depth)
        return max(int(depth * self.depth_multiplier), self.min_depth)

    def _conv(self, num_outputs: int, kernel, gating: bool, name: str, stride=1,
              separable: bool | None = None) -> SpatioTemporalConv:
        """A conv3d_spatiotemporal under the arg scope (batch norm, relu, L2)."""
        batch_norm = {"decay": self.batch_norm_decay, "epsilon": self.batch_norm_epsilon}
        return SpatioTemporalConv(
            num_outputs, kernel, stride,
            separable=self.separable if separable is None else separable, gating=gating,
            batch_norm=batch_norm, weight_decay=self.weight_decay, name=name)

    def _build_base(self) -> list:
        """The base's layers, following s3dg_base: `t` (the 3x3 convs' temporal kernel)
        and gating switch on at their start points and stay on."""
        layers, t, gating = [], 1, False
        for row in self.rows:
            if getattr(row, "switch", False):
                t = 3 if row.name == self.temporal_conv_startat else t
                gating = gating or row.name == self.gating_startat
            if isinstance(row, Pool):
                layers.append(MaxPool3d(row.kernel, row.stride, name=row.name))
            elif isinstance(row, Mixed):
                depths = [self._depth(d) for d in row.depths]
                layers.append(InceptionBlock3d(depths, t, self._conv, gating, name=row.name))
            elif row.stride != 1:  # the stem: never separable, never gated
                layers.append(self._conv(
                    self._depth(row.depth), (self.first_temporal_kernel_size, 7, 7), False,
                    row.name, stride=row.stride, separable=False))
            else:
                kernel = (t if row.switch else 1, row.kernel, row.kernel)
                layers.append(self._conv(self._depth(row.depth), kernel,
                                         gating and row.switch, row.name))
        return layers

    # -- sizes ----------------------------------------------------------------------

    @property
    def _spatial_stride(self) -> int:
        """Height/width stride from the input to the final end point."""
        stride = 1
        for row in self.rows:
            if isinstance(row, Pool):
                stride *= row.stride[1]
            elif isinstance(row, Conv):
                stride *= row.stride
        return stride

    @property
    def max_input_size(self) -> int | None:
        # The head's pool leaves a 1x1 map while the final map is at most 7x7.
        return POOL_KERNEL[1] * self._spatial_stride if self.spatial_squeeze else None

    def _size_hint(self) -> str:
        return "spatial_squeeze=False accepts larger frames"

    # -- forward --------------------------------------------------------------------

    def forward(self, x, training=None):
        end_points = {}
        for row, layer in zip(self.rows, self.base):
            x = end_points[row.name] = layer(x, training=training)
        # The Logits scope: average pool, dropout, 1x1x1 conv, mean over time.
        x = head_pool(x)
        if not self.num_classes:
            return self._squeeze(tf.reduce_mean(x, axis=1)), end_points
        logits = tf.reduce_mean(self.logits(x, training=training), axis=1)
        logits = end_points["Logits"] = self._squeeze(logits)
        end_points["Predictions"] = tf.nn.softmax(logits)
        return logits, end_points

    def _squeeze(self, x):
        """slim's SpatialSqueeze (`check_input_shape` has bounded the frame size)."""
        return tf.squeeze(x, axis=[1, 2]) if self.spatial_squeeze else x

    def get_config(self):
        return {**self._base_config(),
                "first_temporal_kernel_size": self.first_temporal_kernel_size,
                "temporal_conv_startat": self.temporal_conv_startat,
                "gating_startat": self.gating_startat,
                "final_endpoint": self.final_endpoint, "min_depth": self.min_depth,
                "depth_multiplier": self.depth_multiplier,
                "dropout_keep_prob": self.dropout_keep_prob,
                "spatial_squeeze": self.spatial_squeeze, "separable": self.separable,
                "weight_decay": self.weight_decay,
                "batch_norm_decay": self.batch_norm_decay,
                "batch_norm_epsilon": self.batch_norm_epsilon,
                "data_format": self.data_format}


s3dg = register_model("s3dg", S3DG, image_size=224, num_classes=1000,
                      preprocessing="inception", num_frames=64, scope="InceptionV1")
