"""`kslim detect` and `kslim export` for the SSD nets: boxes on image files, and a
SavedModel that serves them.

Both run one graph function per image, `image_detector`: decode the encoded bytes
(JPEG, PNG, GIF, BMP), SSD-Tensorflow's eval preprocessing (`ssd_vgg`, warp resize to
the net's input, which also gives `bbox_img`), the net, softmax, `decode`,
`detected_bboxes` per class, the classes merged by score (`model.detect`), and the
boxes mapped back to the original image in pixels. So `kslim detect` and the exported
SavedModel give the same boxes.

The SavedModel is a plain `tf.Module` (its variables and functions, loadable with
`tf.saved_model.load` without kslim). Signature `serving_default`: `images`, a
`[batch]` string tensor of encoded image files -> `boxes` `[batch, K, 4]` (ymin, xmin,
ymax, xmax in pixels of each original image), `boxes_relative` (the same in 0..1),
`classes` `[batch, K]` int64, `class_names`, `scores` `[batch, K]`, `num_detections`
`[batch]`; K = `max_detections`, zero past `num_detections`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np

__all__ = ["Detection", "ImageDetections", "detect_images", "draw_detections",
           "export_detection", "export_detection_saved_model", "infer_detection_classes",
           "load_detector"]


def infer_detection_classes(model_name: str, weights) -> int | None:
    """The class count of an SSD checkpoint (from its first `conv_cls` head: outputs /
    anchors per location), or None when `weights` is not a slim checkpoint."""
    from kslim import compat, models

    if weights is None:
        return None
    weights = os.fspath(weights)
    if weights.endswith((".weights.h5", ".keras")) or weights.startswith("slim"):
        return None
    spec = models.get_spec(model_name)
    model_class = spec.model_class
    head = spec.head_scopes[0]  # <scope>/<first layer>_box/conv_cls
    anchors = len(model_class.params.anchor_sizes[0]) + len(model_class.params.anchor_ratios[0])
    for name, shape, _ in compat.list_checkpoint(weights):
        if name == f"{head}/biases" and shape:
            if shape[-1] % anchors:
                raise ValueError(f"{weights}: {name} has {shape[-1]} outputs, not a multiple "
                                 f"of the {anchors} anchors per location of {spec.name}; is "
                                 "it a checkpoint of another SSD net?")
            return int(shape[-1]) // anchors
    return None


def load_detector(model_name: str, weights=None, num_classes: int | None = None,
                  image_size: int | None = None):
    """A built SSD net with its weights; the class count comes from the checkpoint
    when not given. Returns `(model, image_size)`."""
    from kslim import models

    spec = models.get_spec(model_name)
    size = image_size or spec.image_size
    if num_classes is None:
        num_classes = infer_detection_classes(spec.name, weights) or spec.num_classes
    model = models.create_model(spec.name, num_classes=num_classes, weights=weights,
                                input_shape=(size, size, 3))
    return model, size


def image_detector(model, image_size: int, preprocessing_name: str = "ssd_vgg", *,
                   select_threshold: float = 0.5, nms_threshold: float = 0.45,
                   top_k: int = 400, keep_top_k: int = 200, max_detections: int = 100):
    """`fn(encoded_bytes) -> {"boxes" [K, 4] pixels, "boxes_relative", "classes",
    "scores", "num_detections"}`: one image, decoded and detected in TF ops."""
    import tensorflow as tf

    from kslim.preprocess import get_preprocessing

    preprocess = get_preprocessing(preprocessing_name, is_training=False)
    size = (int(image_size), int(image_size))

    def fn(encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        hw = tf.shape(image)[:2]
        inputs, _, _, bbox_img = preprocess(image, tf.zeros([0], tf.int64),
                                            tf.zeros([0, 4], tf.float32), out_shape=size,
                                            resize="warp_resize")
        found = model.detect(tf.cast(inputs, tf.float32)[None], select_threshold=select_threshold,
                             nms_threshold=nms_threshold, top_k=top_k, keep_top_k=keep_top_k,
                             max_detections=max_detections, bbox_img=bbox_img)
        relative = tf.clip_by_value(found["boxes"][0], 0.0, 1.0)
        scale = tf.cast(tf.concat([hw, hw], 0), tf.float32)
        keep = tf.cast(found["scores"][0] > 0.0, tf.float32)[:, None]
        return {"boxes": relative * scale * keep, "boxes_relative": relative * keep,
                "classes": tf.cast(found["classes"][0], tf.int64),
                "scores": found["scores"][0],
                "num_detections": tf.cast(found["num_detections"][0], tf.int32)}

    return fn


@dataclasses.dataclass
class Detection:
    """One box: class id and name, score, pixel box (ymin, xmin, ymax, xmax)."""

    class_id: int
    name: str
    score: float
    box: tuple[float, float, float, float]


@dataclasses.dataclass
class ImageDetections:
    """The boxes found in one image file, best first; `drawn` is the PNG written."""

    image: str
    height: int
    width: int
    detections: list[Detection]
    drawn: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# One colour per class id (RGB), cycled.
_PALETTE = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48],
                     [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60],
                     [250, 190, 212], [0, 128, 128], [170, 110, 40], [128, 0, 0]],
                    np.float32)


def draw_detections(image: np.ndarray, detections: Sequence[Detection],
                    thickness: int = 2) -> np.ndarray:
    """A copy of the uint8 `[H, W, 3]` image with each box drawn as a frame of
    `thickness` pixels, coloured by class."""
    out = np.array(image, np.uint8, copy=True)
    height, width = out.shape[:2]
    for d in detections:
        ymin, xmin, ymax, xmax = (int(round(v)) for v in d.box)
        ymin, ymax = sorted((min(max(ymin, 0), height - 1), min(max(ymax, 0), height - 1)))
        xmin, xmax = sorted((min(max(xmin, 0), width - 1), min(max(xmax, 0), width - 1)))
        colour = _PALETTE[d.class_id % len(_PALETTE)].astype(np.uint8)
        t = thickness
        out[ymin:min(ymin + t, ymax + 1), xmin:xmax + 1] = colour
        out[max(ymax - t + 1, ymin):ymax + 1, xmin:xmax + 1] = colour
        out[ymin:ymax + 1, xmin:min(xmin + t, xmax + 1)] = colour
        out[ymin:ymax + 1, max(xmax - t + 1, xmin):xmax + 1] = colour
    return out


def _class_names(labels, num_classes: int) -> list[str]:
    from kslim import data
    from kslim.training._infer import resolve_labels

    if labels is None:
        for name in ("pascalvoc_2007", "shapes"):  # the detection sets' names by size
            spec = data.DATASETS.get(name)
            if spec and spec.default_labels and len(spec.default_labels) == num_classes:
                return list(spec.default_labels)
        return [str(i) for i in range(num_classes)]
    return resolve_labels(labels, num_classes) or [str(i) for i in range(num_classes)]


def detect_images(images: Sequence[str | os.PathLike], model_name: str, weights=None, *,
                  num_classes: int | None = None, image_size: int | None = None,
                  labels=None, select_threshold: float = 0.5, nms_threshold: float = 0.45,
                  top_k: int = 400, keep_top_k: int = 200, max_detections: int = 100,
                  output_dir: str | os.PathLike | None = None) -> list[ImageDetections]:
    """`kslim detect`: the boxes an SSD net finds in image files.

    Args:
        images: image files (JPEG, PNG, GIF, BMP).
        model_name: an SSD net (`ssd_300_vgg`, `ssd_512_vgg`, `ssd_demo`).
        weights: slim checkpoint (prefix or folder) or `.weights.h5`/`.keras`.
        num_classes: default: from the checkpoint's heads.
        image_size: network input size (default the net's).
        labels: class names: a dataset name (`pascalvoc_2007`, `shapes`), a labels.txt
            or a folder with one (default: VOC names for 21 classes).
        select_threshold: minimum class probability of a box (0.5, SSD-Tensorflow's
            notebook).
        nms_threshold, top_k, keep_top_k: per-class selection and NMS.
        max_detections: boxes per image at most.
        output_dir: when given, writes `<image name>.png` there with the boxes drawn.

    Raises:
        FileNotFoundError: an image file is missing.
        ValueError: an image cannot be decoded (naming the file), or bad options.
    """
    import tensorflow as tf

    from kslim import models

    if not 0.0 <= select_threshold < 1.0:
        raise ValueError(f"select_threshold must be in [0, 1), got {select_threshold}")
    model, size = load_detector(model_name, weights, num_classes, image_size)
    names = _class_names(labels, int(model.num_classes))
    detector = tf.function(image_detector(
        model, size, models.get_spec(model_name).preprocessing,
        select_threshold=select_threshold, nms_threshold=nms_threshold, top_k=top_k,
        keep_top_k=keep_top_k, max_detections=max_detections), reduce_retracing=True)
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
    results = []
    for path in map(os.fspath, images):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image file {path!r} does not exist")
        with open(path, "rb") as f:
            encoded = f.read()
        try:
            image = tf.io.decode_image(encoded, channels=3, expand_animations=False).numpy()
            found = detector(tf.constant(encoded))
        except (tf.errors.InvalidArgumentError, ValueError) as e:
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"cannot decode image {path!r}: not a JPEG, PNG, GIF or BMP "
                             f"file, or damaged ({detail})") from None
        count = int(found["num_detections"])
        detections = [Detection(int(c), names[int(c)] if int(c) < len(names) else str(int(c)),
                                float(s), tuple(float(v) for v in b))
                      for c, s, b in zip(found["classes"].numpy()[:count],
                                         found["scores"].numpy()[:count],
                                         found["boxes"].numpy()[:count])]
        result = ImageDetections(path, int(image.shape[0]), int(image.shape[1]), detections)
        if output_dir is not None:
            stem = os.path.splitext(os.path.basename(path))[0]
            result.drawn = os.path.join(os.fspath(output_dir), f"{stem}.png")
            tf.io.write_file(result.drawn, tf.io.encode_png(draw_detections(image, detections)))
        results.append(result)
    return results


def export_detection_saved_model(model, output_dir: str | os.PathLike, *, image_size: int,
                                 preprocessing_name: str = "ssd_vgg",
                                 labels: Sequence[str] | None = None,
                                 select_threshold: float = 0.5, nms_threshold: float = 0.45,
                                 top_k: int = 400, keep_top_k: int = 200,
                                 max_detections: int = 100,
                                 batch_size: int | None = None) -> str:
    """Writes an SSD net as a SavedModel serving encoded images (see the module doc).

    Returns:
        The folder written.
    """
    import tensorflow as tf

    output_dir = os.fspath(output_dir)
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        raise ValueError(f"export folder {output_dir!r} is not empty; give a new folder")
    names = list(labels) if labels else [str(i) for i in range(int(model.num_classes))]
    if len(names) != int(model.num_classes):
        raise ValueError(f"{len(names)} label names for {model.num_classes} classes")
    detect_one = image_detector(model, image_size, preprocessing_name,
                                select_threshold=select_threshold,
                                nms_threshold=nms_threshold, top_k=top_k,
                                keep_top_k=keep_top_k, max_detections=max_detections)
    k = int(max_detections)
    signature = {"boxes": tf.TensorSpec([k, 4], tf.float32),
                 "boxes_relative": tf.TensorSpec([k, 4], tf.float32),
                 "classes": tf.TensorSpec([k], tf.int64),
                 "scores": tf.TensorSpec([k], tf.float32),
                 "num_detections": tf.TensorSpec([], tf.int32)}

    class Serving(tf.Module):
        def __init__(self):
            super().__init__(name="kslim_ssd_serving")
            self.model_variables = [v.value for v in model.weights]
            self.names = tf.constant(names)

        @tf.function(input_signature=[tf.TensorSpec([batch_size], tf.string, name="images")])
        def encoded_images(self, images):
            out = tf.map_fn(detect_one, images, fn_output_signature=signature)
            out["class_names"] = tf.gather(self.names, out["classes"])
            return out

    module = Serving()
    encoded = module.encoded_images.get_concrete_function()
    tf.saved_model.save(module, output_dir,
                        signatures={"serving_default": encoded, "encoded_images": encoded})
    return output_dir


def export_detection(config, output: str) -> str:
    """`kslim export` for an SSD net (`ExportConfig`): a SavedModel serving encoded
    images -> boxes, classes, scores."""
    from kslim import models

    if config.format != "saved_model":
        raise ValueError(f"--format={config.format}: the SSD nets export as a SavedModel "
                         "only (--format=saved_model)")
    if config.use_grayscale:
        raise ValueError("--use_grayscale: the SSD nets take RGB images")
    model, size = load_detector(config.model_name, config.weights, config.num_classes,
                                config.image_size)
    labels = config.labels or (config.dataset_dir or None)
    if labels is None and config.dataset_name not in ("imagenet", ""):
        labels = config.dataset_name
    names = _class_names(labels, int(model.num_classes))
    preprocessing = config.preprocessing_name or models.get_spec(config.model_name).preprocessing
    return export_detection_saved_model(model, output, image_size=size,
                                        preprocessing_name=preprocessing, labels=names,
                                        batch_size=config.batch_size)
