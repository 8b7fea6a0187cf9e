"""TensorFlow Lite export and a small runner (research/slim `nets/post_training_quantization.py`).

`to_tflite` converts a built net's eval-mode call with `tf.lite.TFLiteConverter`:
- float (default): float32 weights and arithmetic; outputs equal the Keras model's
  within float tolerance.
- `quantize="float16"`: float16 weights, float32 arithmetic.
- `quantize="dynamic"`: int8 weights, float activations (dynamic-range quantization).
- `quantize="int8"`: full-integer model, int8 input and output, calibrated on
  `representative_data` (slim's script: `TFLITE_BUILTINS_INT8`, int8 in/out,
  `--num_steps` calibration images through the net's eval preprocessing).

The file's input (`input`) is the net's preprocessed float batch, as the model takes
it (int8 models: quantized with the input's scale and zero point); its output
(`logits`) is the net's logits. A `kslim` metadata entry records the net, its
preprocessing, image size and class names, so `TFLiteRunner` (and
`kslim predict --tflite`) can take image files.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Iterable, Sequence

import numpy as np

from kslim.export._files import check_output, write_atomically

__all__ = ["QUANTIZE_MODES", "TFLiteRunner", "calibration_images", "convert_tflite",
           "read_metadata", "to_tflite"]

QUANTIZE_MODES = ("float16", "dynamic", "int8")
METADATA_NAME = "kslim"


def _input_shape(model, input_shape) -> tuple[int, int, int]:
    shape = input_shape or getattr(model, "_built_input_shape", None)
    if shape is None and getattr(model, "inputs", None):
        shape = tuple(model.inputs[0].shape[1:])
    if shape is None or len(shape) != 3 or None in tuple(shape):
        raise ValueError(f"{getattr(model, 'name', model)}: pass input_shape=(H, W, C); the "
                         "model was not built for a fixed image size")
    return tuple(int(s) for s in shape)


def _serving_module(model, input_shape, batch_size):
    """A tf.Module holding the model's variables and its eval-mode call, input `input`
    (slim's placeholder name), output `logits`."""
    import tensorflow as tf

    spec = tf.TensorSpec([batch_size, *input_shape], tf.float32, name="input")

    class Serving(tf.Module):
        def __init__(self):
            super().__init__(name="kslim_tflite")
            self.model_variables = [getattr(v, "value", v) for v in model.weights]

        @tf.function(input_signature=[spec])
        def serve(self, input):  # noqa: A002 (the signature's input name)
            return {"logits": tf.cast(model(input, training=False), tf.float32)}

    module = Serving()
    return module, module.serve.get_concrete_function()


def calibration_images(dataset_name: str, split_name: str, dataset_dir: str | None,
                       preprocessing_name: str, image_size: int, num_steps: int,
                       channels: int = 3) -> Iterable[np.ndarray]:
    """`num_steps` preprocessed images (`[1, H, W, C]` float32, eval preprocessing) of a
    split, in file order: the calibration set of slim's post-training quantization.

    Raises:
        ValueError: the split cannot be read (the message says which flag to give).
    """
    from kslim import data

    try:
        split = data.get_split(dataset_name, split_name, dataset_dir or None)
    except (ValueError, FileNotFoundError) as e:
        raise ValueError(f"--quantize=int8 calibrates on images of a split and cannot read "
                         f"{dataset_name}/{split_name}: {e}. Give --dataset_name, "
                         "--dataset_split_name and --dataset_dir (dataset 'digits' needs "
                         "no folder)") from None
    dataset = data.input_pipeline(split, 1, preprocessing_name, image_size=image_size,
                                  is_training=False,
                                  use_grayscale=channels == 1 and split.spec.channels == 3,
                                  num_epochs=1)
    images = [x.numpy() for x, _ in dataset.take(num_steps)]
    if images and images[0].shape[-1] == 1 and channels == 3:  # e.g. digits for an RGB net
        images = [np.repeat(x, 3, axis=-1) for x in images]
    if not images:
        raise ValueError(f"--quantize=int8: the split {dataset_name}/{split_name} has no "
                         "images to calibrate on")
    return images


def _batches(representative_data, num_steps: int, input_shape) -> list[np.ndarray]:
    """Calibration inputs as `[1, H, W, C]` float32 arrays (at most `num_steps`)."""
    import tensorflow as tf

    if isinstance(representative_data, tf.data.Dataset):
        representative_data = representative_data.as_numpy_iterator()
    out = []
    for item in representative_data:
        if isinstance(item, (tuple, list)):  # (images, labels) from a pipeline
            item = item[0]
        array = np.asarray(item, np.float32)
        if array.ndim == 3:
            array = array[None]
        for image in array:
            if tuple(image.shape) != tuple(input_shape):
                raise ValueError(f"calibration image of shape {image.shape}, the net takes "
                                 f"{tuple(input_shape)} (preprocessed, HWC)")
            out.append(image[None])
            if len(out) >= num_steps:
                return out
    return out


def convert_tflite(model, *, quantize: str | None = None, representative_data=None,
                   num_steps: int = 100, input_shape=None,
                   batch_size: int | None = None) -> bytes:
    """The `.tflite` flatbuffer of `model`'s eval-mode call (see the module docstring).

    Args:
        model: a built Keras model taking a float NHWC batch (every kslim image net).
        quantize: None (float32), "float16", "dynamic" or "int8".
        representative_data: for "int8": preprocessed images (an iterable or
            `tf.data.Dataset` of `[H, W, C]` or `[N, H, W, C]` arrays, or of
            `(images, labels)`); `calibration_images` reads them from a split.
        num_steps: calibration images used (slim's `--num_steps`).
        input_shape: (H, W, C) (default: the shape the model was built for).
        batch_size: fixed batch size (None: any; the runner resizes).

    Raises:
        ValueError: unknown `quantize`, int8 without calibration images, or a net or op
            TFLite cannot convert (the message names the model and the ops).
    """
    import tensorflow as tf

    if quantize not in (None, *QUANTIZE_MODES):
        raise ValueError(f"quantize={quantize!r}: choose float16, dynamic or int8 (or None "
                         "for a float32 model)")
    input_shape = _input_shape(model, input_shape)
    calibration = None
    if quantize == "int8":
        if representative_data is None:
            raise ValueError("--quantize=int8 (full-integer) needs calibration images: give "
                             "--dataset_name/--dataset_split_name/--dataset_dir (the net's "
                             "eval preprocessing is applied; 'digits' needs no folder), or "
                             "representative_data= in Python")
        calibration = _batches(representative_data, max(1, int(num_steps)), input_shape)
        if not calibration:
            raise ValueError("--quantize=int8: the calibration data holds no images")
    module, concrete = _serving_module(model, input_shape, batch_size)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.representative_dataset = lambda: ([image] for image in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        return converter.convert()
    except Exception as e:  # ConverterError and friends: say which model, keep the ops
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        ops = [line for line in lines if "op" in line.lower() and "not" in line.lower()]
        detail = "; ".join((ops or lines)[:4]) or type(e).__name__
        raise ValueError(f"TensorFlow Lite cannot convert {getattr(model, 'name', model)}"
                         f"{' (quantize=' + quantize + ')' if quantize else ''}: {detail}. "
                         "Export a SavedModel (--format=saved_model) instead, or change the "
                         "op") from None


def _with_metadata(content: bytes, metadata: dict) -> bytes:
    """`content` with a `kslim` metadata entry (JSON) added to the flatbuffer."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(metadata).encode("utf-8"), np.uint8)
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(tree.buffers) - 1
    tree.metadata = [m for m in (tree.metadata or []) if m.name not in
                     (METADATA_NAME, METADATA_NAME.encode())] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(tree))


def read_metadata(content: bytes) -> dict:
    """The `kslim` metadata of a `.tflite` flatbuffer ({} when it has none)."""
    from tensorflow.lite.python import schema_py_generated as schema

    root = schema.Model.GetRootAs(content, 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if entry.Name() in (METADATA_NAME, METADATA_NAME.encode()):
            data = root.Buffers(entry.Buffer()).DataAsNumpy()
            return json.loads(bytes(data).decode("utf-8"))
    return {}


def to_tflite(model, output_file: str | os.PathLike, *, quantize: str | None = None,
              representative_data=None, num_steps: int = 100, input_shape=None,
              batch_size: int | None = None, preprocessing_name: str | None = None,
              labels: Sequence[str] | None = None, overwrite: bool = False) -> str:
    """Writes `model` as a `.tflite` file (see `convert_tflite` for the options).

    Example:
        >>> model = kslim.models.create_model("mobilenet_v1", weights="slim")
        >>> kslim.export.to_tflite(model, "mobilenet_v1.tflite")
        >>> kslim.export.TFLiteRunner("mobilenet_v1.tflite").predict(["cat.jpg"])

    Args:
        model: a built kslim net (any built Keras model taking a float NHWC batch).
        output_file: the file to write; written beside it and renamed into place, so a
            failed export leaves nothing.
        preprocessing_name: recorded for the runner (default: the net's).
        labels: class names recorded for the runner (default: none; ImageNet names are
            used for 1000/1001 classes).
        overwrite: replace an existing file.

    Returns:
        The path written.
    """
    path = check_output(output_file, overwrite)
    content = convert_tflite(model, quantize=quantize, representative_data=representative_data,
                             num_steps=num_steps, input_shape=input_shape,
                             batch_size=batch_size)
    shape = _input_shape(model, input_shape)
    if preprocessing_name is None and hasattr(model, "slim_name"):
        from kslim import models

        try:
            preprocessing_name = models.get_spec(model.slim_name).preprocessing
        except ValueError:
            preprocessing_name = None
    metadata = {"model_name": getattr(model, "slim_name", None),
                "preprocessing": preprocessing_name, "image_size": shape[0],
                "channels": shape[2], "num_classes": int(getattr(model, "num_classes", 0) or 0),
                "labels": list(labels) if labels else None, "quantize": quantize,
                "output": "logits"}
    return write_atomically(path, _with_metadata(content, metadata))


# -- running ---------------------------------------------------------------------------------


def _interpreter(model_content: bytes, num_threads: int | None, backend: str):
    """(interpreter, backend name): LiteRT (`ai-edge-litert`, `pip install kslim[tflite]`)
    when installed, else TensorFlow's own `tf.lite.Interpreter` (deprecated by TF in
    favour of LiteRT, still shipped in TF 2.21)."""
    if backend not in ("auto", "litert", "tensorflow"):
        raise ValueError(f"backend={backend!r}: choose auto, litert or tensorflow")
    if backend in ("auto", "litert"):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            if backend == "litert":
                raise ValueError("backend='litert' needs the LiteRT interpreter: pip install "
                                 "'kslim[tflite]' (ai-edge-litert)") from None
        else:
            return Interpreter(model_content=model_content, num_threads=num_threads), "litert"
    import tensorflow as tf

    if not hasattr(tf.lite, "Interpreter"):
        raise ValueError("this TensorFlow has no tf.lite.Interpreter: pip install "
                         "'kslim[tflite]' (ai-edge-litert) to run .tflite files")
    with warnings.catch_warnings():  # TF's deprecation notice points to LiteRT: see above
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_content=model_content,
                                   num_threads=num_threads), "tensorflow"


class TFLiteRunner:
    """Runs a `.tflite` file written by `to_tflite` on float batches or image files.

    int8 models take and give int8 tensors: the runner quantizes the float input with
    the input's scale and zero point and dequantizes the output, so every model is
    called the same way. The XNNPACK CPU delegate is used by the interpreter by default.

    Example:
        >>> runner = kslim.export.TFLiteRunner("net.tflite", num_threads=2)
        >>> logits = runner(images)             # preprocessed float32 [N, H, W, C]
        >>> runner.predict(["cat.jpg"], top_k=5)

    Args:
        path: the `.tflite` file.
        num_threads: interpreter threads (None: the interpreter's default).
        backend: "auto" (LiteRT when installed, else TensorFlow's interpreter),
            "litert" or "tensorflow".
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None,
                 backend: str = "auto"):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"TFLite file {self.path!r} does not exist")
        with open(self.path, "rb") as f:
            content = f.read()
        try:
            self.metadata = read_metadata(content)
            self.interpreter, self.backend = _interpreter(content, num_threads, backend)
        except ValueError:
            raise
        except Exception as e:
            raise ValueError(f"{self.path!r} is not a TFLite model that loads: "
                             f"{str(e).strip().splitlines()[0] if str(e).strip() else e}"
                             ) from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(H, W, C) of one input image."""
        return tuple(int(s) for s in self._input["shape"][1:])

    @property
    def input_dtype(self):
        return self._input["dtype"]

    @property
    def quantized(self) -> bool:
        """True for full-integer (int8 input and output) models."""
        return np.dtype(self._input["dtype"]) == np.int8

    def _resize(self, batch: int) -> None:
        if batch == self._batch:
            return
        fixed = int(self._input["shape_signature"][0])
        if fixed not in (-1, batch):
            raise ValueError(f"{self.path} was exported for batches of {fixed}, got {batch}")
        self.interpreter.resize_tensor_input(self._input["index"],
                                             [batch, *self.input_shape])
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = batch

    def __call__(self, images) -> np.ndarray:
        """Logits (float32 `[N, classes]`) of a preprocessed float batch `[N, H, W, C]`."""
        images = np.asarray(images, np.float32)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.input_shape:
            raise ValueError(f"{self.path} takes float batches of shape (N, "
                             f"{', '.join(map(str, self.input_shape))}), got {images.shape}")
        self._resize(images.shape[0])
        if self.quantized:
            scale, zero = self._input["quantization"]
            images = np.clip(np.round(images / scale + zero), -128, 127).astype(np.int8)
        self.interpreter.set_tensor(self._input["index"], images)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self._output["index"])
        if np.dtype(out.dtype) == np.int8:
            scale, zero = self._output["quantization"]
            return (out.astype(np.float32) - zero) * scale
        return np.asarray(out, np.float32)

    def predict(self, images: Sequence[str | os.PathLike], top_k: int = 5, labels=None,
                preprocessing_name: str | None = None, batch_size: int = 32) -> list:
        """Top-k classes of image files (or folders of them), through the net's eval
        preprocessing (recorded in the file, or `preprocessing_name`).

        Returns:
            A `kslim.training.Prediction` per image.
        """
        import tensorflow as tf

        from kslim.training._infer import (_image_files, classify_files, image_preprocessor,
                                           resolve_labels)

        images = _image_files(images)  # folders: their image files, as `kslim predict`
        size, _, channels = self.input_shape
        name = preprocessing_name or self.metadata.get("preprocessing")
        if not name:
            raise ValueError(f"{self.path} records no preprocessing: pass "
                             "preprocessing_name= (--preprocessing_name)")
        prepare = tf.function(image_preprocessor(name, size, channels), reduce_retracing=True)
        outputs = int(self._output["shape"][-1])
        names = resolve_labels(labels, outputs) if labels is not None else \
            self.metadata.get("labels") or resolve_labels(None, outputs)
        top_k = max(1, min(int(top_k), outputs))
        return classify_files(images, prepare, lambda batch: self(np.stack(batch)), names,
                              top_k, batch_size)

    def describe(self) -> dict[str, Any]:
        """What the file holds: input shape and type, quantization, backend, metadata."""
        return {"path": self.path, "backend": self.backend, "input_shape": self.input_shape,
                "input_dtype": np.dtype(self.input_dtype).name, "quantized": self.quantized,
                **self.metadata}
