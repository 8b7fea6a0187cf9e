"""`kslim predict` and `kslim export`: a net's predictions on image files, and a
SavedModel that serves them (research/slim's `export_inference_graph.py` + freeze_graph).

Both share one graph function, `image_preprocessor`: decode the encoded bytes
(`tf.io.decode_image`: JPEG, PNG, GIF, BMP), then the net's eval-mode preprocessing at
its image size. So the exported SavedModel and `kslim predict` give the same numbers.

The SavedModel (`export_saved_model`) is a plain `tf.Module`: its variables and
`tf.function`s only, loadable with `tf.saved_model.load` where kslim is not installed.
Signatures:
- `serving_default` (= `encoded_images`): `images`, a `[batch]` string tensor of encoded
  image files; decoding and preprocessing run inside.
- `float_images`: `inputs`, a `[batch, size, size, channels]` float32 batch already
  preprocessed (export_inference_graph's `input` placeholder).
Outputs: `logits`, `probabilities` (softmax), `classes` (top-1 id), `top_k_classes`,
`top_k_probabilities` and `top_k_names` (the label names, when known).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import numpy as np

__all__ = ["ExportConfig", "Prediction", "export", "export_saved_model", "image_preprocessor",
           "infer_num_classes", "load_model", "predict", "resolve_labels"]

_KERAS_SUFFIXES = (".weights.h5", ".keras")


def infer_num_classes(model_name: str, weights) -> int | None:
    """The class count of a slim checkpoint's classifier for `model_name` (read from the
    shape of its head's variables), or None when `weights` is not a slim checkpoint."""
    from kslim import compat, models

    if weights is None:
        return None
    weights = os.fspath(weights)
    if weights == "slim" or weights.startswith("slim:") or weights.endswith(_KERAS_SUFFIXES):
        return None
    spec = models.get_spec(model_name)
    heads = spec.head_scopes
    if not heads:
        return None
    variables = compat.list_checkpoint(weights)
    for name, shape, _ in variables:
        if name.startswith(heads[0] + "/") and name.rsplit("/", 1)[-1] in ("biases", "weights") \
                and shape:
            return int(shape[-1])
    return None


def load_model(model_name: str, weights=None, num_classes: int | None = None,
               image_size: int | None = None, channels: int | None = None,
               num_frames: int | None = None):
    """A built net with its weights; the class count comes from the checkpoint when not
    given; `num_frames` builds a video net for clips of that length. Returns
    `(model, image_size)`."""
    from kslim import models

    spec = models.get_spec(model_name)
    size = image_size or spec.image_size
    channels = channels or spec.model_class.input_channels
    if num_classes is None:
        num_classes = infer_num_classes(spec.name, weights)
    options: dict[str, Any] = {"input_shape": (size, size, channels), "weights": weights}
    if num_frames:
        options["input_shape"] = (num_frames, *options["input_shape"])
    if num_classes is not None:
        options["num_classes"] = num_classes
    model = models.create_model(spec.name, **options)
    return model, size


def resolve_labels(labels, num_classes: int) -> list[str] | None:
    """Class names for `num_classes` outputs.

    Args:
        labels: None (ImageNet names for 1000/1001 outputs, else none), "imagenet", a
            kslim dataset name (`digits`, `mnist`, `cifar10`, `flowers`), a `labels.txt`
            file (`id:name` lines) or a folder holding one.
        num_classes: the net's outputs.

    Returns:
        `num_classes` names (ids without a name are shown as numbers), or None.
    """
    from kslim import data
    from kslim.models import imagenet

    if labels is None:
        return list(imagenet.class_names(num_classes)) if num_classes in (1000, 1001) else None
    labels = os.fspath(labels)
    if labels == "imagenet":
        return list(imagenet.class_names(num_classes))
    if os.path.isdir(labels) or os.path.isfile(labels):
        folder, name = (labels, "labels.txt") if os.path.isdir(labels) else os.path.split(labels)
        mapping = data.read_label_file(folder or ".", name)
    elif labels in data.DATASETS and data.DATASETS[labels].default_labels:
        mapping = dict(enumerate(data.DATASETS[labels].default_labels))
    else:
        raise ValueError(f"--labels {labels!r} is not a labels.txt file, a folder with one, "
                         f"'imagenet' or a dataset with known names "
                         f"({', '.join(n for n, s in data.DATASETS.items() if s.default_labels)})")
    return [mapping.get(i, str(i)) for i in range(num_classes)]


def image_preprocessor(preprocessing_name: str, image_size: int, channels: int):
    """`fn(encoded_bytes) -> float32 [size, size, channels]`: decode + eval preprocessing.

    A pure TensorFlow function (usable in `tf.data`, `tf.map_fn` and SavedModels).
    """
    import tensorflow as tf

    from kslim.preprocess import get_preprocessing

    preprocess = get_preprocessing(preprocessing_name, is_training=False)

    def fn(encoded):
        image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
        image.set_shape([None, None, channels])
        return tf.cast(preprocess(image, image_size, image_size), tf.float32)

    return fn


@dataclasses.dataclass
class Prediction:
    """One image's top-k: `classes` ids, `probabilities`, `names` (or ids as text)."""

    image: str
    classes: list[int]
    probabilities: list[float]
    names: list[str]

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")


def _image_files(paths: Sequence[str | os.PathLike]) -> list[str]:
    """`paths` with each folder replaced by its image files (sorted by name)."""
    files = []
    for path in map(os.fspath, paths):
        if not os.path.isdir(path):
            files.append(path)
            continue
        found = sorted(os.path.join(path, n) for n in os.listdir(path)
                       if n.lower().endswith(_IMAGE_SUFFIXES)
                       and os.path.isfile(os.path.join(path, n)))
        if not found:
            raise FileNotFoundError(f"{path!r} is a folder with no image files "
                                    f"({', '.join(_IMAGE_SUFFIXES)}) in it; give image files "
                                    "or a folder of images")
        files.extend(found)
    return files


def predict(images: Sequence[str | os.PathLike], model_name: str, weights=None, *,
            labels=None, top_k: int = 5, num_classes: int | None = None,
            image_size: int | None = None, preprocessing_name: str | None = None,
            batch_size: int = 32) -> list[Prediction]:
    """`kslim predict`: the top-k classes of each image file.

    Args:
        images: image files (JPEG, PNG, GIF, BMP), or folders of them.
        model_name: the net (a kslim model name).
        weights: slim checkpoint, `.weights.h5`/`.keras`, `"slim"`/`"slim:<tag>"`.
        labels: see `resolve_labels`.
        top_k: classes per image.
        num_classes: the classifier size (default: from the checkpoint).
        image_size: default the net's.
        preprocessing_name: default the net's (slim's map).
        batch_size: images per forward pass.

    Raises:
        FileNotFoundError: an image file is missing.
        ValueError: an image cannot be decoded (naming the file), or bad options.
    """
    import tensorflow as tf

    from kslim import models
    from kslim.models._video import require_image_net

    require_image_net(model_name, "predict")
    images = _image_files(images)
    model, size = load_model(model_name, weights, num_classes, image_size)
    channels = getattr(model, "_built_channels", None) or model.input_channels
    outputs = int(model.num_classes)
    if not outputs:
        raise ValueError(f"{model_name} was built without a classifier (num_classes=0)")
    names = resolve_labels(labels, outputs)
    prepare = image_preprocessor(preprocessing_name or models.get_spec(model_name).preprocessing,
                                 size, channels)
    prepare = tf.function(prepare, reduce_retracing=True)
    top_k = max(1, min(int(top_k), outputs))

    def logits_of(batch):
        return tf.cast(model(tf.stack(batch), training=False), tf.float32).numpy()

    return classify_files(images, prepare, logits_of, names, top_k, batch_size)


def classify_files(images: Sequence[str], prepare, logits_of, names, top_k: int,
                   batch_size: int) -> list[Prediction]:
    """The loop of `kslim predict`, for Keras models and `.tflite` files alike: reads
    the image files in batches, preprocesses each with `prepare(encoded) -> image`,
    and turns `logits_of(list of images) -> [batch, classes]` into the `top_k`
    classes with their softmax probabilities and `names`.

    Raises:
        FileNotFoundError: an image file is missing.
        ValueError: an image cannot be decoded (naming the file).
    """
    import tensorflow as tf

    results = []
    for start in range(0, len(images), batch_size):
        paths = [os.fspath(p) for p in images[start:start + batch_size]]
        batch = []
        for path in paths:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"image file {path!r} does not exist")
            with open(path, "rb") as f:
                encoded = f.read()
            try:
                batch.append(prepare(tf.constant(encoded)))
            except (tf.errors.InvalidArgumentError, ValueError) as e:
                detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ValueError(f"cannot decode image {path!r}: not a JPEG, PNG, GIF or BMP "
                                 f"file, or damaged ({detail})") from None
        logits = np.asarray(logits_of(batch), np.float64)
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
        for path, row in zip(paths, probabilities):
            order = np.argsort(-row, kind="stable")[:top_k]
            results.append(Prediction(
                path, [int(i) for i in order], [float(row[i]) for i in order],
                [names[i] if names else str(int(i)) for i in order]))
    return results


def export_saved_model(model, output_dir: str | os.PathLike, *, preprocessing_name: str,
                       image_size: int, labels: Sequence[str] | None = None,
                       top_k: int = 5, batch_size: int | None = None,
                       num_frames: int | None = None) -> str:
    """Writes `model` as a SavedModel with image-bytes and float-batch signatures.

    Args:
        model: a built kslim model (inference mode is used).
        output_dir: the SavedModel folder (created; must not exist or be empty).
        preprocessing_name: the eval preprocessing run inside `serving_default`.
        image_size: the net's input size.
        labels: class names embedded as `top_k_names` (default: the ids as text).
        top_k: classes in the `top_k_*` outputs.
        batch_size: fixed batch size of the signatures (None: any).
        num_frames: a video net's clip length: then the one signature,
            `serving_default` (= `float_clips`), takes `inputs`, float32 clips
            `[batch, num_frames, size, size, channels]` (there is no clip decoder).

    Returns:
        The folder written.
    """
    import tensorflow as tf

    output_dir = os.fspath(output_dir)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"export folder {output_dir!r} is a file; the SavedModel is a folder: "
                         "give a new folder (--output_dir)")
    if os.path.isdir(output_dir) and os.listdir(output_dir):
        raise ValueError(f"export folder {output_dir!r} is not empty; give a new folder")
    channels = getattr(model, "_built_channels", None) or model.input_channels
    outputs = int(model.num_classes)
    if not outputs:
        raise ValueError("cannot export a net without a classifier (num_classes=0)")
    k = max(1, min(int(top_k), outputs))
    names = list(labels) if labels else [str(i) for i in range(outputs)]
    if len(names) != outputs:
        raise ValueError(f"{len(names)} label names for {outputs} classes")
    prepare = image_preprocessor(preprocessing_name, image_size, channels)

    class Serving(tf.Module):
        def __init__(self):
            super().__init__(name="kslim_serving")
            # The tf.Variables the functions read (Keras variables hold them as .value).
            self.model_variables = [v.value for v in model.weights]
            self.class_names = tf.constant(names)

        def _outputs(self, inputs):
            logits = tf.cast(model(inputs, training=False), tf.float32)
            probabilities = tf.nn.softmax(logits)
            top = tf.math.top_k(probabilities, k=k)
            return {"logits": logits, "probabilities": probabilities,
                    "classes": tf.argmax(logits, axis=-1, output_type=tf.int32),
                    "top_k_classes": top.indices, "top_k_probabilities": top.values,
                    "top_k_names": tf.gather(self.class_names, top.indices)}

        @tf.function(input_signature=[tf.TensorSpec([batch_size], tf.string, name="images")])
        def encoded_images(self, images):
            inputs = tf.map_fn(prepare, images, fn_output_signature=tf.TensorSpec(
                [image_size, image_size, channels], tf.float32))
            return self._outputs(inputs)

        @tf.function(input_signature=[tf.TensorSpec(
            [batch_size, image_size, image_size, channels], tf.float32, name="inputs")])
        def float_images(self, inputs):
            return self._outputs(inputs)

    if num_frames:
        class Clips(Serving):
            encoded_images = float_images = None

            @tf.function(input_signature=[tf.TensorSpec(
                [batch_size, num_frames, image_size, image_size, channels], tf.float32,
                name="inputs")])
            def float_clips(self, inputs):
                return self._outputs(inputs)

        module = Clips()
        clips = module.float_clips.get_concrete_function()
        tf.saved_model.save(module, output_dir, signatures={
            "serving_default": clips, "float_clips": clips})
        return output_dir
    module = Serving()
    encoded = module.encoded_images.get_concrete_function()
    floats = module.float_images.get_concrete_function()
    tf.saved_model.save(module, output_dir, signatures={
        "serving_default": encoded, "encoded_images": encoded, "float_images": floats})
    return output_dir


def _flag(default, help: str, **metadata):
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


@dataclasses.dataclass
class ExportConfig:
    """`export_inference_graph.py`'s flags (names and defaults as slim's) plus kslim's."""

    model_name: str = _flag("inception_v3", "net to export")
    is_training: bool = _flag(False, "export the training graph: not supported (False)")
    image_size: int | None = _flag(None, "input size (default: the net's)")
    batch_size: int | None = _flag(None, "fixed batch size (default: any)")
    dataset_name: str = _flag("imagenet", "dataset whose class count the net has (when "
                              "neither --num_classes nor a checkpoint tells)")
    labels_offset: int = _flag(0, "classes dropped from the dataset's count (1: 1000 of "
                               "ImageNet's 1001)")
    output_file: str = _flag("", "the file to write (--format=tflite, frozen_graph) or the "
                             "SavedModel folder (same as --output_dir)")
    dataset_dir: str = _flag("", "dataset folder (its labels.txt names the classes)")
    quantize: str | None = _flag(None, "TFLite post-training quantization: float16, dynamic "
                                 "(int8 weights) or int8 (full-integer, calibrated); "
                                 "slim's boolean --quantize graph is not supported",
                                 const="true")
    is_video_model: bool = _flag(False, "a video net (i3d, s3dg): the SavedModel takes "
                                 "float clips [batch, num_frames, size, size, 3]")
    num_frames: int | None = _flag(None, "--is_video_model: frames per clip (default: the "
                                   "net's, 64)")
    write_text_graphdef: bool = _flag(False, "--format=frozen_graph: write a text GraphDef")
    use_grayscale: bool = _flag(False, "one input channel")
    # -- kslim ----------------------------------------------------------------------------
    format: str = _flag("saved_model", "(kslim) saved_model, tflite or frozen_graph (the "
                        "GraphDef with the weights frozen in)")
    overwrite: bool = _flag(False, "(kslim) replace an existing --output_file")
    dataset_split_name: str = _flag("train", "(kslim) --quantize=int8: the split whose "
                                    "images calibrate the ranges (post_training_quantization)")
    num_steps: int = _flag(1000, "(kslim) --quantize=int8: calibration images")
    use_moving_average: bool = _flag(True, "(kslim) read the checkpoint's "
                                     "ExponentialMovingAverage shadows where it has them "
                                     "(post_training_quantization's --enable_ema)")
    output_dir: str | None = _flag(None, "(kslim) the SavedModel folder to write")
    weights: str | None = _flag(None, "(kslim) weights: slim checkpoint (prefix or "
                                "folder), .weights.h5/.keras, slim or slim:<tag>")
    num_classes: int | None = _flag(None, "(kslim) classifier size (default: from the "
                                    "checkpoint, else the dataset's)")
    preprocessing_name: str | None = _flag(None, "(kslim) preprocessing inside the image "
                                           "signature (default: model_name's)")
    labels: str | None = _flag(None, "(kslim) class names: labels.txt, a folder, "
                               "'imagenet' or a dataset name")
    top_k: int = _flag(5, "(kslim) classes in the top_k outputs")


def export(config: ExportConfig | None = None, **flags: Any) -> str:
    """`kslim export`: writes the SavedModel (or, with `format`, a `.tflite` file or a
    frozen GraphDef: `kslim.export`); returns the folder or file written."""
    from kslim import data, models

    if config is None:
        config = ExportConfig(**flags)
    elif flags:
        config = dataclasses.replace(config, **flags)
    from kslim.export._command import check_format, export_file

    output = config.output_dir or config.output_file
    if not output:
        raise ValueError("give the SavedModel folder to write: --output_dir (or slim's "
                         "--output_file)")
    for flag, message in (("is_training", "a training-mode export"),):
        if getattr(config, flag):
            raise ValueError(f"--{flag}: {message} is not supported by kslim")
    frames = _clip_frames(config, models.get_spec(config.model_name))
    check_format(config)
    if hasattr(models.get_spec(config.model_name).model_class, "anchors"):  # SSD nets
        from kslim.detection._export import export_detection

        return export_detection(config, output)
    num_classes = config.num_classes or infer_num_classes(config.model_name, config.weights)
    if num_classes is None and not (config.weights or "").startswith("slim"):
        spec = data.DATASETS.get(config.dataset_name)
        if spec is None or spec.num_classes is None:
            raise ValueError(f"cannot tell the class count from --dataset_name "
                             f"{config.dataset_name!r}; give --num_classes")
        num_classes = spec.num_classes - config.labels_offset
    channels = 1 if config.use_grayscale else None
    model, size = load_model(config.model_name, config.weights, num_classes,
                             config.image_size, channels, num_frames=frames)
    labels = config.labels
    if labels is None and config.dataset_dir:
        labels = config.dataset_dir
    if labels is None and config.dataset_name in data.DATASETS and \
            data.DATASETS[config.dataset_name].default_labels and \
            len(data.DATASETS[config.dataset_name].default_labels) == model.num_classes:
        labels = config.dataset_name
    names = resolve_labels(labels, int(model.num_classes))
    preprocessing = config.preprocessing_name or \
        models.get_spec(config.model_name).preprocessing
    if config.use_moving_average and config.weights and not config.weights.startswith(
            "slim") and not config.weights.endswith(_KERAS_SUFFIXES):
        from kslim import compat  # zoo weights choose their shadows themselves

        compat.restore(model, config.weights, use_moving_average=True)
    if config.format != "saved_model":
        return export_file(config, model, image_size=size, preprocessing_name=preprocessing,
                           labels=names)
    return export_saved_model(model, output, preprocessing_name=preprocessing, image_size=size,
                              labels=names, top_k=config.top_k, batch_size=config.batch_size,
                              num_frames=frames)


def _clip_frames(config: ExportConfig, spec) -> int | None:
    """The clip length of a video net's export (None for an image net), with
    --is_video_model and --num_frames checked against the net."""
    if not spec.num_frames:
        if config.is_video_model or config.num_frames:
            raise ValueError(f"--is_video_model/--num_frames: {spec.name} is an image net "
                             "(4-D NHWC batches); the video nets are i3d and s3dg")
        return None
    if not config.is_video_model:
        raise ValueError(f"{spec.name} is a video net (5-D NDHWC clips): add "
                         "--is_video_model and --num_frames N, as export_inference_graph")
    if config.num_frames is not None and config.num_frames < 1:
        raise ValueError(f"--num_frames must be at least 1, got {config.num_frames}")
    if config.format == "tflite":
        raise ValueError(f"--is_video_model: --format={config.format} is not supported for "
                         "the video nets; write a SavedModel or a frozen_graph")
    return config.num_frames or spec.num_frames
