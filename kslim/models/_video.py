"""What research/slim's video nets share: the layers of `nets/i3d_utils.py`
(`conv3d_spatiotemporal`, `inception_block_v1_3d`, `center_initializer`,
`reduced_kernel_size_3d`), `nets/s3dg.py`'s `self_gating`, and the 5-D input checks
of a video `SlimModel`.

Clips are NDHWC, `[batch, frames, height, width, channels]`, as slim's default
`data_format`. Every layer is slim.conv3d under `i3d_arg_scope`/`s3dg_arg_scope`:
weights `trunc_normal(0.01)`, batch norm (decay 0.999, epsilon 0.001, no `gamma`, not
fused: the moving variance is updated with the biased batch variance), relu.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from kslim.models._base import SlimModel
from kslim.models._layers import Conv3d, Stack, triple

__all__ = ["CenterInitializer", "InceptionBlock3d", "MaxPool3d", "SelfGating",
           "SpatioTemporalConv", "VideoModel", "reduced_kernel_size_3d", "require_image_net"]


def _truncated_normal(stddev: float) -> dict:
    return {"class_name": "TruncatedNormal", "config": {"mean": 0.0, "stddev": stddev}}


@keras.saving.register_keras_serializable(package="kslim")
class CenterInitializer(keras.initializers.Initializer):
    """i3d_utils' `center_initializer`: a temporal `[t, 1, 1, c, c]` kernel that is the
    identity at its centre frame, so a separable conv starts as the spatial conv alone
    (the S3D paper's condition for training the separable nets from scratch)."""

    def __call__(self, shape, dtype=None):
        shape = tuple(int(s) for s in shape)
        if len(shape) != 5:
            raise ValueError(f"center initializer: the kernel must be 5-D, got {shape}")
        if shape[3] != shape[4]:
            raise ValueError(f"center initializer: input and output channels must be "
                             f"equal, got kernel shape {shape}")
        if shape[1] != 1 or shape[2] != 1:
            raise ValueError(f"center initializer: spatial kernel sizes must be 1, got "
                             f"kernel shape {shape}")
        if shape[0] % 2 == 0:
            raise ValueError(f"center initializer: the temporal kernel size must be odd, "
                             f"got kernel shape {shape}")
        value = np.zeros(shape, np.float32)
        value[shape[0] // 2, 0, 0] = np.eye(shape[3], dtype=np.float32)
        return tf.constant(value, dtype=dtype or "float32")


def reduced_kernel_size_3d(shape, kernel: Sequence[int]) -> tuple[int, int, int]:
    """i3d_utils' `reduced_kernel_size_3d`: `min(map, kernel)` per (time, height,
    width) axis of the static shape.

    Slim keeps the whole kernel on every axis as soon as one is unknown (a model built
    for any frame count); kslim reduces each known axis, which gives slim's numbers
    wherever slim's graph runs and also runs small frames with an unknown clip length.
    """
    return tuple(int(k) if s is None else min(int(s), int(k))  # type: ignore[return-value]
                 for s, k in zip(shape[1:4], kernel))


class MaxPool3d(keras.layers.Layer):
    """slim.max_pool3d (NDHWC; SAME under the video nets' arg scope)."""

    def __init__(self, kernel, stride=1, padding: str = "SAME", **kwargs):
        super().__init__(**kwargs)
        self.kernel = triple(kernel)
        self.stride = triple(stride)
        self.padding = padding.upper()

    def call(self, x, training=None):
        return tf.nn.max_pool3d(x, (1, *self.kernel, 1), (1, *self.stride, 1), self.padding)

    def get_config(self):
        return {**super().get_config(), "kernel": self.kernel, "stride": self.stride,
                "padding": self.padding}


class SelfGating(keras.layers.Layer):
    """s3dg's `self_gating`, the `self_gating` scope of a gated conv: the clip averaged
    over all frames and positions, a 1x1x1 conv without biases (`transformer_W`), a
    sigmoid, and the input scaled channel-wise by it.

    slim pools with an `avg_pool3d` window `[t, w, h]` (width and height swapped),
    which is the whole map for the square frames it supports and fails for any other;
    the mean over all positions is the same numbers there and defined everywhere.
    """

    def __init__(self, channels: int, weight_decay: float | None = None,
                 name: str = "self_gating", **kwargs):
        super().__init__(name=name, **kwargs)
        self.channels = int(channels)
        self.weight_decay = weight_decay
        self.transformer = Conv3d(channels, 1, activation_fn=None, use_bias=False,
                                  weight_decay=weight_decay,
                                  kernel_initializer=_truncated_normal(0.01),
                                  name="transformer_W")

    def call(self, x, training=None):
        average = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        return tf.sigmoid(self.transformer(average, training=training)) * x

    def get_config(self):
        return {**super().get_config(), "channels": self.channels,
                "weight_decay": self.weight_decay}


class SpatioTemporalConv(Conv3d):
    """One conv scope of the video nets: i3d_utils' `conv3d_spatiotemporal`, then
    s3dg's `self_gating` where the net gates it.

    With `separable` and a temporal kernel `t > 1` it is two convs: `[1, k, k]` with
    batch norm and relu in the scope itself, then `[t, 1, 1]` with biases (no batch
    norm) and relu in `<scope>/temporal`, initialized as the identity (slim's
    `center_initializer`). Otherwise one `[t, k, k]` conv with batch norm and relu.

    Args:
        num_outputs: output channels.
        kernel_size: (t, kh, kw).
        stride: int or (st, sh, sw).
        separable: slim's `separable` (`i3d_arg_scope(separable_conv3d)`, s3dg: True).
        gating: add the `self_gating` scope (s3dg from `gating_startat` on).
        batch_norm: the batch-norm params of the spatial conv.
        weight_decay: slim's L2 on every `weights` here (the arg scope regularizes the
            temporal conv and `transformer_W` too).
        name: the slim scope.
    """

    def __init__(self, num_outputs: int, kernel_size, stride=1, separable: bool = False,
                 gating: bool = False, batch_norm: dict | None = None,
                 weight_decay: float | None = None, **kwargs):
        kernel = triple(kernel_size)
        strides = triple(stride)
        split = separable and kernel[0] != 1
        kwargs.setdefault("kernel_initializer", _truncated_normal(0.01))
        super().__init__(num_outputs, (1, *kernel[1:]) if split else kernel,
                         (1, *strides[1:]) if split else strides,
                         batch_norm=batch_norm, weight_decay=weight_decay, **kwargs)
        self.full_kernel = kernel
        self.full_stride = strides
        self.separable = separable
        self.gating = gating
        self.temporal = None
        if split:
            self.temporal = Conv3d(num_outputs, (kernel[0], 1, 1), (strides[0], 1, 1),
                                   weight_decay=weight_decay,
                                   kernel_initializer=CenterInitializer(), name="temporal")
        self.self_gating = SelfGating(num_outputs, weight_decay) if gating else None

    def call(self, x, training=None):
        x = super().call(x, training=training)
        if self.temporal is not None:
            x = self.temporal(x, training=training)
        if self.self_gating is not None:
            x = self.self_gating(x, training=training)
        return x

    def get_config(self):
        config = super().get_config()
        config.update(kernel_size=self.full_kernel, stride=self.full_stride,
                      separable=self.separable, gating=self.gating)
        return config


class InceptionBlock3d(keras.layers.Layer):
    """i3d_utils' `inception_block_v1_3d`, a `Mixed_*` scope: `Branch_0` 1x1x1 |
    `Branch_1` 1x1x1 then `[t, 3, 3]` | `Branch_2` the same | `Branch_3` a 3x3x3 max
    pool then 1x1x1, concatenated on channels. With gating, the last conv of each
    branch is gated.

    Args:
        depths: (b0, b1a, b1b, b2a, b2b, b3), slim's `num_outputs_*` after `depth()`.
        temporal_kernel_size: `t` of the 3x3 convs (1: 2-D convs as `[1, 3, 3]`).
        conv: `fn(num_outputs, kernel, gating, name) -> SpatioTemporalConv`, the net's
            arg scope.
        gating: s3dg's self-gating on.
    """

    def __init__(self, depths: Sequence[int], temporal_kernel_size: int, conv,
                 gating: bool = False, **kwargs):
        super().__init__(**kwargs)
        b0, b1a, b1b, b2a, b2b, b3 = depths
        t = temporal_kernel_size
        self.branches = [
            Stack([conv(b0, 1, gating, "Conv2d_0a_1x1")], name="Branch_0"),
            Stack([conv(b1a, 1, False, "Conv2d_0a_1x1"),
                   conv(b1b, (t, 3, 3), gating, "Conv2d_0b_3x3")], name="Branch_1"),
            Stack([conv(b2a, 1, False, "Conv2d_0a_1x1"),
                   conv(b2b, (t, 3, 3), gating, "Conv2d_0b_3x3")], name="Branch_2"),
            Stack([MaxPool3d(3, 1, name="MaxPool_0a_3x3"),
                   conv(b3, 1, gating, "Conv2d_0b_1x1")], name="Branch_3"),
        ]

    def call(self, x, training=None):
        return tf.concat([branch(x, training=training) for branch in self.branches], axis=-1)


class VideoModel(SlimModel):
    """A `SlimModel` that takes 5-D NDHWC clips: `input_shape` is
    `(frames, height, width, channels)`.

    Subclasses set `min_frames` and `min_input_size` and may bound the frame size
    from above (`max_input_size`, e.g. where `spatial_squeeze` needs a 1x1 map).
    """

    min_frames: int = 1

    @property
    def max_input_size(self) -> int | None:
        """Largest height/width the net accepts (None: no bound)."""
        return None

    def _size_hint(self) -> str:
        return ""

    def check_input_shape(self, shape) -> None:
        """Raises a ValueError naming the net, the clip layout it needs and the shape."""
        shape = tuple(shape)
        what = f"{self.slim_name} ({self.name})"
        if len(shape) != 5:
            hint = (": a 4-D NHWC image batch is not a clip; add the frames axis "
                    "(images[:, None] is a batch of one-frame clips)") if len(shape) == 4 else ""
            raise ValueError(f"{what} is a video net: it takes 5-D NDHWC clips "
                             f"[batch, frames, height, width, channels], got shape "
                             f"{shape}{hint}")
        channels = getattr(self, "_built_channels", None)
        if shape[-1] is not None and channels is not None and shape[-1] != channels:
            raise ValueError(f"{what} was built for {channels} input channels (NDHWC), "
                             f"got {shape[-1]} in shape {shape}")
        frames = shape[1]
        if frames is not None and frames < self.min_frames:
            raise ValueError(f"{what} needs clips of at least {self.min_frames} "
                             f"frame(s), got {frames} in shape {shape} (NDHWC)")
        need, most = self.min_input_size, self.max_input_size
        for axis, size in (("height", shape[2]), ("width", shape[3])):
            if size is not None and size < need:
                raise ValueError(f"{what} needs frames of at least {need}x{need}, got "
                                 f"{axis} {size} in shape {shape} (NDHWC)")
            if size is not None and most is not None and size > most:
                hint = self._size_hint()
                raise ValueError(f"{what} takes frames of at most {most}x{most} here, got "
                                 f"{axis} {size} in shape {shape} (NDHWC)"
                                 + (f"; {hint}" if hint else ""))


def require_image_net(model_name: str, command: str) -> None:
    """Stops `kslim train/eval/predict` on a video net with the reason: they read
    slim's image datasets and image files, and slim has no video dataset."""
    from kslim.models._registry import get_spec

    spec = get_spec(model_name)
    if spec.num_frames:
        raise ValueError(
            f"kslim {command}: {spec.name} is a video net (5-D NDHWC clips [batch, frames, "
            f"height, width, 3]) and kslim {command} reads slim's image datasets and image "
            "files; slim has no video dataset. Build a tf.data pipeline of clips and use "
            f"model.fit/model.predict on kslim.models.create_model({spec.name!r}), or "
            "`kslim export --is_video_model --num_frames N` to serve it")
