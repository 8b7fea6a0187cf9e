"""`show`: a PNG grid of a split's images, each captioned with its label.

Answers slim's walkthrough question "how do I look at the images in a dataset" without
matplotlib: images are laid out with numpy, captions drawn with the small bitmap font
below (3x5 pixels, upper case, digits, common punctuation), and the PNG is written with
`tf.io.encode_png`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kslim.data._split import Split

__all__ = ["show", "make_grid"]

# Glyphs as five rows of three pixels ('#' = ink); lower case is drawn as upper case.
_GLYPHS = {
    "A": ".#. #.# ### #.# #.#", "B": "##. #.# ##. #.# ##.", "C": ".## #.. #.. #.. .##",
    "D": "##. #.# #.# #.# ##.", "E": "### #.. ##. #.. ###", "F": "### #.. ##. #.. #..",
    "G": ".## #.. #.# #.# .##", "H": "#.# #.# ### #.# #.#", "I": "### .#. .#. .#. ###",
    "J": "..# ..# ..# #.# .#.", "K": "#.# #.# ##. #.# #.#", "L": "#.. #.. #.. #.. ###",
    "M": "#.# ### ### #.# #.#", "N": "##. #.# #.# #.# #.#", "O": ".#. #.# #.# #.# .#.",
    "P": "##. #.# ##. #.. #..", "Q": ".#. #.# #.# ##. .##", "R": "##. #.# ##. #.# #.#",
    "S": ".## #.. .#. ..# ##.", "T": "### .#. .#. .#. .#.", "U": "#.# #.# #.# #.# ###",
    "V": "#.# #.# #.# #.# .#.", "W": "#.# #.# ### ### #.#", "X": "#.# #.# .#. #.# #.#",
    "Y": "#.# #.# .#. .#. .#.", "Z": "### ..# .#. #.. ###",
    "0": "### #.# #.# #.# ###", "1": ".#. ##. .#. .#. ###", "2": "##. ..# .#. #.. ###",
    "3": "##. ..# .#. ..# ##.", "4": "#.# #.# ### ..# ..#", "5": "### #.. ##. ..# ##.",
    "6": ".## #.. ### #.# ###", "7": "### ..# .#. .#. .#.", "8": "### #.# ### #.# ###",
    "9": "### #.# ### ..# ##.",
    " ": "... ... ... ... ...", ".": "... ... ... ... .#.", ",": "... ... ... .#. #..",
    ":": "... .#. ... .#. ...", "-": "... ... ### ... ...", "_": "... ... ... ... ###",
    "'": ".#. .#. ... ... ...", '"': "#.# #.# ... ... ...", "(": "..# .#. .#. .#. ..#",
    ")": "#.. .#. .#. .#. #..", "/": "..# ..# .#. #.. #..", "&": ".#. #.# .#. #.# .##",
    "+": "... .#. ### .#. ...", "?": "##. ..# .#. ... .#.", "!": ".#. .#. .#. ... .#.",
    "=": "... ### ... ### ...", "*": "... #.# .#. #.# ...", "#": "#.# ### #.# ### #.#",
}  # fmt: skip

_SCALE = 2  # font pixels per glyph pixel
_ADVANCE = 4 * _SCALE  # glyph width plus one column of spacing
_CAPTION_HEIGHT = 5 * _SCALE + 6
_CELL = 112  # largest image side in a cell
_PAD = 8
_BACKGROUND = 32
_INK = 235


def _glyph(char: str) -> np.ndarray:
    rows = _GLYPHS.get(char.upper(), _GLYPHS["?"]).split()
    bitmap = np.array([[c == "#" for c in row] for row in rows], dtype=bool)
    return np.kron(bitmap, np.ones((_SCALE, _SCALE), dtype=bool))


def _draw_text(canvas: np.ndarray, text: str, top: int, left: int, max_width: int) -> None:
    max_chars = max(1, max_width // _ADVANCE)
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "."
    for i, char in enumerate(text):
        glyph = _glyph(char)
        y, x = top, left + i * _ADVANCE
        canvas[y : y + glyph.shape[0], x : x + glyph.shape[1]][glyph] = _INK


def _fit(image: np.ndarray) -> np.ndarray:
    """RGB uint8 with the longer side at most `_CELL`: small images grow by an integer factor."""
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= _CELL // 2:
        factor = _CELL // longest
        return np.kron(image, np.ones((factor, factor, 1), dtype=image.dtype))
    if longest > _CELL:
        size = (max(1, round(height * _CELL / longest)), max(1, round(width * _CELL / longest)))
        image = tf.image.resize(image, size, antialias=True)
        return np.clip(np.rint(image.numpy()), 0, 255).astype(np.uint8)
    return image


def make_grid(
    images, captions: list[str], columns: int | None = None
) -> np.ndarray:
    """Lays out uint8 images `[H, W, C]` with a caption under each, as one RGB array.

    Args:
        images: sequence of uint8 images (1 or 3 channels, any sizes).
        captions: one text per image.
        columns: images per row (default: about square).

    Returns:
        uint8 `[height, width, 3]`.
    """
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    if not len(images):
        raise ValueError("no images to show")
    columns = columns or int(np.ceil(np.sqrt(len(images))))
    rows = int(np.ceil(len(images) / columns))
    cell_w = _CELL + 2 * _PAD
    cell_h = _CELL + 2 * _PAD + _CAPTION_HEIGHT
    canvas = np.full((rows * cell_h, columns * cell_w, 3), _BACKGROUND, np.uint8)
    for n, (image, caption) in enumerate(zip(images, captions)):
        image = _fit(np.asarray(image, np.uint8))
        top = (n // columns) * cell_h + _PAD
        left = (n % columns) * cell_w + _PAD
        y = top + (_CELL - image.shape[0]) // 2
        x = left + (_CELL - image.shape[1]) // 2
        canvas[y : y + image.shape[0], x : x + image.shape[1]] = image
        _draw_text(canvas, caption, top + _CELL + 4, left, cell_w - _PAD)
    return canvas


def _draw_boxes(image: np.ndarray, bboxes: np.ndarray) -> np.ndarray:
    """The image with its relative (ymin, xmin, ymax, xmax) boxes outlined in yellow."""
    image = _fit(np.asarray(image, np.uint8))  # drawn at display size: one-pixel lines stay thin
    drawn = tf.image.draw_bounding_boxes(
        tf.cast(image[None], tf.float32), np.asarray(bboxes, np.float32)[None], np.array([[255.0, 230.0, 0.0, 255.0]])
    )
    return np.clip(drawn[0].numpy(), 0, 255).astype(np.uint8)


def show(
    split: Split,
    output: str = "grid.png",
    num: int = 16,
    columns: int | None = None,
    shuffle: bool = False,
    seed: int | None = None,
) -> list[str]:
    """Writes a PNG grid of the first `num` images of a split, captioned `id:name`.

    Detection splits (`pascalvoc_*`, `shapes`) show each image with its boxes drawn and
    its objects' class names as the caption.

    Args:
        split: from `get_split`.
        output: PNG path to write.
        num: images to show.
        columns: images per row (default: about square).
        shuffle: take a random sample instead of the first images.
        seed: seed of that sample.

    Returns:
        The captions, in grid order (left to right, top to bottom).

    Example:
        >>> kslim.data.show(kslim.data.get_split("digits", "train"), "digits.png")
    """
    dataset = split.dataset()
    if shuffle:
        dataset = dataset.shuffle(min(split.num_samples, 4096), seed=seed)
    images, captions = [], []
    names = split.labels_to_names or {}
    for item in dataset.take(num).as_numpy_iterator():
        if split.spec.detection:  # (image, shape, labels, bboxes, ...): boxes drawn, names listed
            image, _, labels, bboxes = item[:4]
            images.append(_draw_boxes(image, bboxes))
            captions.append(",".join(names.get(int(v), str(int(v))) for v in labels) or "-")
            continue
        image, label = item
        images.append(image)
        name = names.get(int(label))
        captions.append(f"{int(label)}:{name}" if name is not None else str(int(label)))
    grid = make_grid(images, captions, columns)
    tf.io.write_file(output, tf.io.encode_png(grid))
    return captions
