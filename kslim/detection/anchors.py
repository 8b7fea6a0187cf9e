"""SSD default boxes (anchors), as SSD-Tensorflow's `nets/ssd_vgg_300.py`
(`ssd_anchor_one_layer`, `ssd_anchors_all_layers`).

Anchors are numpy data computed once per image size, never per step. Per layer they
are the 4-tuple `(y, x, h, w)`: centres `y, x` of shape `[H, W, 1]` and sizes `h, w`
of shape `[A]`, relative to the image, which broadcast to `[H, W, A]`. Flattened
(`flat_anchors`), the N anchors are ordered layer, then y, then x, then anchor, the
order of the model outputs, the encoded targets and the losses.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["flat_anchors", "layer_sizes", "ssd_anchor_one_layer", "ssd_anchors"]


def ssd_anchor_one_layer(img_shape, feat_shape, sizes, ratios, step, offset: float = 0.5,
                         dtype=np.float32):
    """The anchors of one feature layer, bit-exact with SSD-Tensorflow.

    Centres follow SSD-Caffe's step rule, `(i + offset) * step / image size` (not
    `(i + offset) / H`), so they are not clipped to the image (SSD-300's 3x3 layer,
    step 100, has centres 0.167 ... 0.833; its 5x5 layer, step 64, reaches 1.013).
    Sizes per location are `[s_min, sqrt(s_min * s_max), then s_min / sqrt(r) high
    and s_min * sqrt(r) wide for each ratio r]`, Caffe's PriorBox order with flip.

    Args:
        img_shape: (height, width) of the image in pixels.
        feat_shape: (H, W) or (H, W, A) of the layer (A is ignored).
        sizes: (s_min,) or (s_min, s_max) in pixels.
        ratios: aspect ratios (width / height) after the square ones.
        step: the layer's stride in pixels.
        offset: grid offset (0.5: cell centres).
        dtype: numpy float type of the result.

    Returns:
        (y, x, h, w): `[H, W, 1]`, `[H, W, 1]`, `[A]`, `[A]` arrays.
    """
    img_h, img_w = int(img_shape[0]), int(img_shape[1])
    height, width = int(feat_shape[0]), int(feat_shape[1])
    step, offset = _number(step), float(offset)
    # The original's arithmetic, kept in this order and dtype for bit-exact anchors.
    y, x = np.mgrid[0:height, 0:width]
    y = (y.astype(dtype) + offset) * step / img_h
    x = (x.astype(dtype) + offset) * step / img_w
    y, x = np.expand_dims(y, -1), np.expand_dims(x, -1)

    sizes = [float(s) for s in sizes]
    ratios = [_number(r) for r in ratios]
    count = len(sizes) + len(ratios)
    h = np.zeros((count,), dtype=dtype)
    w = np.zeros((count,), dtype=dtype)
    h[0], w[0] = sizes[0] / img_h, sizes[0] / img_w
    first = 1
    if len(sizes) > 1:
        h[1] = math.sqrt(sizes[0] * sizes[1]) / img_h
        w[1] = math.sqrt(sizes[0] * sizes[1]) / img_w
        first = 2
    for i, r in enumerate(ratios):
        h[first + i] = sizes[0] / img_h / math.sqrt(r)
        w[first + i] = sizes[0] / img_w * math.sqrt(r)
    return y, x, h, w


def ssd_anchors(img_shape, feat_shapes, sizes, ratios, steps, offset: float = 0.5,
                dtype=np.float32) -> list[tuple[np.ndarray, ...]]:
    """Every layer's anchors: SSD-Tensorflow's `ssd_anchors_all_layers`.

    Args:
        img_shape: (height, width) of the network input in pixels.
        feat_shapes: per layer (H, W) or (H, W, A) (`model.feature_shapes`).
        sizes, ratios, steps: per layer, as in the SSD parameter tables.
        offset: grid offset.

    Returns:
        A list of `(y, x, h, w)` tuples, one per layer (see `ssd_anchor_one_layer`).

    Raises:
        ValueError: when the per-layer lists differ in length, or a feature shape's
            A disagrees with `len(sizes) + len(ratios)`.
    """
    lengths = {"feat_shapes": len(feat_shapes), "sizes": len(sizes),
               "ratios": len(ratios), "steps": len(steps)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"ssd_anchors: one entry per feature layer is needed in each "
                         f"list, got lengths {lengths}")
    layers = []
    for i, shape in enumerate(feat_shapes):
        if len(shape) not in (2, 3):
            raise ValueError(f"ssd_anchors: feature shape {i} must be (H, W) or (H, W, A), "
                             f"got {tuple(shape)}")
        count = len(sizes[i]) + len(ratios[i])
        if len(shape) == 3 and int(shape[2]) != count:
            raise ValueError(f"ssd_anchors: feature layer {i} has {shape[2]} anchors per "
                             f"location but sizes {tuple(sizes[i])} and ratios "
                             f"{tuple(ratios[i])} give {count}")
        layers.append(ssd_anchor_one_layer(img_shape, shape, sizes[i], ratios[i], steps[i],
                                           offset=offset, dtype=dtype))
    return layers


def layer_sizes(anchors) -> list[int]:
    """Anchors per layer, `H * W * A` each (the SSD-512 loss's `layer_sizes`)."""
    return [int(y.shape[0] * y.shape[1] * h.shape[0]) for y, _, h, _ in anchors]


def flat_anchors(anchors) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`(yref, xref, href, wref)`, each `[N]`: the anchors broadcast to `[H, W, A]` per
    layer, flattened and concatenated in the output order (layer, y, x, anchor)."""
    parts: list[list[np.ndarray]] = [[], [], [], []]
    for y, x, h, w in anchors:
        shape = (y.shape[0], y.shape[1], h.shape[0])
        for part, value in zip(parts, (y, x, h, w)):
            part.append(np.broadcast_to(value, shape).reshape(-1))
    return tuple(np.concatenate(part) for part in parts)  # type: ignore[return-value]


def _number(value):
    """An int stays an int (the original's steps and ratios are Python numbers)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return float(value)
