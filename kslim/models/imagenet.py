"""ImageNet (ILSVRC-2012-CLS) class names for the zoo nets' outputs, 1000 or 1001 of them.

The label order is slim's (research/slim `datasets/imagenet.py`): the 1000 synsets of
`imagenet_lsvrc_2015_synsets.txt` in sorted order, named by WordNet; 1001-class
checkpoints put a `background` class at index 0 and shift every synset by one. The
names ship in `imagenet_labels.txt` beside this file (`synset<TAB>names`, one a line).

    from kslim.models.imagenet import decode_predictions
    logits = kslim.models.inception_v3(weights="slim")(images)     # [N, 1001]
    decode_predictions(logits, top=3)[0]
    # [('n02123045', 'tabby, tabby cat', 9.1), ('n02124075', 'Egyptian cat', 7.8), ...]
"""

from __future__ import annotations

import functools
import os

import numpy as np

__all__ = ["BACKGROUND", "class_names", "decode_predictions", "synsets"]

# What slim calls label 0 of the 1001-class label set.
BACKGROUND = "background"
_LABELS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet_labels.txt")


@functools.lru_cache(maxsize=1)
def _table() -> tuple[tuple[str, ...], tuple[str, ...]]:
    with open(_LABELS_FILE, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t", 1) for line in f if line.strip()]
    if len(rows) != 1000 or any(len(row) != 2 for row in rows):
        raise RuntimeError(f"{_LABELS_FILE} is damaged: expected 1000 'synset<TAB>names' "
                           "lines; reinstall kslim")
    return tuple(r[0] for r in rows), tuple(r[1] for r in rows)


def synsets() -> tuple[str, ...]:
    """The 1000 ILSVRC-2012 synset ids (`n01440764`, ...) in slim's label order."""
    return _table()[0]


def class_names(num_classes: int = 1001) -> tuple[str, ...]:
    """Human-readable names for class ids: 1000 names, or 1001 with `background` first.

    Raises:
        ValueError: `num_classes` is neither 1000 nor 1001.
    """
    names = _table()[1]
    if num_classes == 1000:
        return names
    if num_classes == 1001:
        return (BACKGROUND, *names)
    raise ValueError(f"ImageNet has 1000 classes (1001 with slim's background class 0); "
                     f"got num_classes={num_classes!r}")


def decode_predictions(preds, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The `top` classes of each row of a batch of ImageNet logits or probabilities.

    Works like `keras.applications.imagenet_utils.decode_predictions`, for both label
    sets slim's checkpoints use: 1000 outputs (VGG, ResNet v1) or 1001 outputs whose
    column 0 is the background class (every other zoo net).

    Args:
        preds: array-like `[batch, 1000]` or `[batch, 1001]` (numpy or a tensor).
        top: how many classes per row, highest score first.

    Returns:
        For each row, a list of `(synset, name, score)`; the background class of a
        1001-class output is `("background", "background", score)`.

    Raises:
        ValueError: `preds` is not 2-D with 1000 or 1001 columns, or `top` < 1.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[-1] not in (1000, 1001):
        raise ValueError(f"decode_predictions expects a batch of ImageNet outputs, shape "
                         f"[batch, 1000] or [batch, 1001]; got shape {tuple(preds.shape)}")
    if not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"top must be a positive int, got {top!r}")
    num_classes = preds.shape[-1]
    names = class_names(num_classes)
    ids = synsets() if num_classes == 1000 else (BACKGROUND, *synsets())
    top = min(int(top), num_classes)
    # Stable sort on the negated scores: ties keep the lower class id first.
    order = np.argsort(-preds, axis=-1, kind="stable")[:, :top]
    return [[(ids[i], names[i], float(row[i])) for i in indices]
            for row, indices in zip(preds, order)]
