"""I3D, the inflated 3-D Inception v1, as research/slim's `nets/i3d.py` (`i3d_base`,
`i3d`, `i3d_arg_scope`).

Carreira & Zisserman, "Quo Vadis, Action Recognition? A New Model and the Kinetics
Dataset", 2017 (https://arxiv.org/abs/1705.07750).

Slim builds I3D as `s3dg_base` with a 7x7x7 first conv, full 3x3x3 convs from
Conv2d_2c_3x3 on and no self-gating, so this is `S3DG` (kslim/models/s3dg.py) with those
settings fixed; the variable names are Inception v1's (`InceptionV1/Mixed_4b/...`)
with 5-D kernels.
"""

from __future__ import annotations

import keras

from kslim.models._registry import register_model
from kslim.models.s3dg import S3DG

__all__ = ["I3D", "i3d"]

# What i3d_base passes to s3dg_base (not options of slim's i3d).
I3D_FIXED = {"first_temporal_kernel_size": 7, "temporal_conv_startat": "Conv2d_2c_3x3",
             "gating_startat": None}


@keras.saving.register_keras_serializable(package="kslim")
class I3D(S3DG):
    """Slim's `i3d`.

    Args:
        num_classes: classifier outputs; 0/None returns the pooled features
            (`[batch, 1024]`), see `S3DG`.
        dropout_keep_prob: the head's dropout keep probability in training.
        spatial_squeeze: squeeze the logits to `[batch, classes]`.
        final_endpoint, min_depth, depth_multiplier: `s3dg_base`'s, which slim's
            `i3d_base` fixes to Mixed_5c, 16 and 1.0 (the defaults here).
        separable_conv3d: i3d_arg_scope's option: separable spatial + temporal convs.
        weight_decay, batch_norm_decay, batch_norm_epsilon: i3d_arg_scope's (L2 on
            every conv `weights`; 0.999, 0.001).
        data_format: 'NDHWC' only.
        name: the top-level scope (slim's `InceptionV1`).

    Example:
        >>> model = kslim.models.create_model("i3d", num_classes=400)  # 64x224x224 clips
        >>> logits = model(clips, training=False)
    """

    slim_name = "i3d"

    def __init__(self, num_classes: int | None = 1000, dropout_keep_prob: float = 0.8,
                 spatial_squeeze: bool = True, final_endpoint: str = "Mixed_5c",
                 min_depth: int = 16, depth_multiplier: float = 1.0,
                 separable_conv3d: bool = False, weight_decay: float = 0.0,
                 batch_norm_decay: float = 0.999, batch_norm_epsilon: float = 0.001,
                 data_format: str = "NDHWC", name: str | None = "InceptionV1", **kwargs):
        for key in (*I3D_FIXED, "separable"):
            if key in kwargs:
                fixed = I3D_FIXED.get(key, "separable_conv3d")
                raise ValueError(f"i3d: {key} is fixed by slim's i3d_base ({fixed!r}); "
                                 "use separable_conv3d, or the s3dg net to choose it")
        super().__init__(num_classes=num_classes, final_endpoint=final_endpoint,
                         min_depth=min_depth, depth_multiplier=depth_multiplier,
                         dropout_keep_prob=dropout_keep_prob, spatial_squeeze=spatial_squeeze,
                         separable=separable_conv3d, weight_decay=weight_decay,
                         batch_norm_decay=batch_norm_decay,
                         batch_norm_epsilon=batch_norm_epsilon, data_format=data_format,
                         name=name, **I3D_FIXED, **kwargs)

    def get_config(self):
        config = super().get_config()
        for key in I3D_FIXED:
            config.pop(key)
        config["separable_conv3d"] = config.pop("separable")
        return config


i3d = register_model("i3d", I3D, image_size=224, num_classes=1000,
                     preprocessing="inception", num_frames=64,
                     scope="InceptionV1")
