"""`kslim eval`: research/slim's `eval_image_classifier.py` (and `evaluation_loop`).

Streams a split once through the net in inference mode and reports slim's two metrics:
- `eval/Accuracy`: `streaming_accuracy(argmax(logits), labels)`;
- `eval/Recall_5`: `streaming_recall_at_k(logits, labels, 5)`, i.e. `in_top_k` (a label
  tied with the 5th score counts as in the top 5, as TF's `in_top_k`).

Both are the fraction of examples over the whole split (or `max_num_batches` batches),
written as TensorBoard scalars at the checkpoint's global step into `eval_dir` and
printed, the last line being `eval/Accuracy=<float> eval/Recall_5=<float>`.

`wait_for_checkpoints=True` is slim's `evaluation_loop`: evaluate each new checkpoint
that appears in `checkpoint_path` (a train_dir), waiting at least `eval_interval_secs`
between evaluations, until `timeout` seconds pass with no new checkpoint or
`max_number_of_evaluations` are done (`tf.train.checkpoints_iterator`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import tempfile
from typing import Any, Iterator

__all__ = ["EvalConfig", "EvalResult", "evaluate", "evaluate_model", "format_result"]

log = logging.getLogger("kslim")


def _flag(default, help: str, **metadata):
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


_KSLIM = "(kslim) "


@dataclasses.dataclass
class EvalConfig:
    """The flags of `eval_image_classifier.py` (names and defaults as slim's), plus
    slim's `evaluation_loop` arguments and kslim's own (help starting with "(kslim)")."""

    batch_size: int = _flag(100, "examples per batch")
    max_num_batches: int | None = _flag(None, "batches to evaluate (default: the whole "
                                        "split once)")
    master: str = _flag("", "not used: TF1 session master")
    checkpoint_path: str = _flag(os.path.join(tempfile.gettempdir(), "tfmodel"),
                                 "checkpoint, or folder whose newest checkpoint is "
                                 "evaluated (a train_dir)")
    eval_dir: str = _flag(os.path.join(tempfile.gettempdir(), "tfmodel"),
                          "directory where the results are written (TensorBoard)")
    num_preprocessing_threads: int = _flag(4, "parallel decode and preprocessing calls")
    dataset_name: str = _flag("imagenet", "dataset to evaluate on (kslim.data)")
    dataset_split_name: str = _flag("test", "split to evaluate")
    dataset_dir: str | None = _flag(None, "folder of the TFRecords (optional for digits)")
    labels_offset: int = _flag(0, "subtracted from every label (1 evaluates a 1000-class "
                               "net on 1001-class ImageNet records)")
    model_name: str = _flag("inception_v3", "net to evaluate (kslim.models.list_models())")
    preprocessing_name: str | None = _flag(None, "preprocessing (default: model_name's)")
    moving_average_decay: float | None = _flag(None, "evaluate the moving averages "
                                               "(<name>/ExponentialMovingAverage) when set")
    eval_image_size: int | None = _flag(None, "image size (default: the net's)")
    quantize: bool = _flag(False, "quantized eval graph: not supported (False)")
    use_grayscale: bool = _flag(False, "convert images to one channel")
    # -- slim's evaluation_loop -----------------------------------------------------------
    wait_for_checkpoints: bool = _flag(False, _KSLIM + "evaluate each new checkpoint in "
                                       "checkpoint_path as it appears (evaluation_loop)")
    eval_interval_secs: float = _flag(60, "evaluation_loop: minimum seconds between "
                                      "evaluations")
    timeout: float | None = _flag(None, "evaluation_loop: stop after this many seconds "
                                  "without a new checkpoint (default: wait forever)")
    max_number_of_evaluations: int | None = _flag(None, "evaluation_loop: stop after this "
                                                  "many evaluations")
    # -- SSD (eval_ssd_network.py; detection nets only) ------------------------------------
    select_threshold: float = _flag(0.01, "SSD: class score below which a box is dropped")
    select_top_k: int = _flag(400, "SSD: boxes per class kept before NMS")
    keep_top_k: int = _flag(200, "SSD: boxes per class kept after NMS")
    nms_threshold: float = _flag(0.45, "SSD: IoU of the non-maximum suppression")
    matching_threshold: float = _flag(0.5, "SSD: IoU a detection needs to match a ground "
                                      "truth box")
    eval_resize: int = _flag(4, "SSD: eval resize mode: 1 none, 2 central_crop, 3 "
                             "pad_and_resize, 4 warp_resize (SSD-Tensorflow's Resize)",
                             choices=(1, 2, 3, 4))
    difficult_rule: str = _flag("ssd_tf", _KSLIM + "SSD: difficult objects as "
                                "SSD-Tensorflow's metrics (ssd_tf) or the VOC devkit (voc)",
                                choices=("ssd_tf", "voc"))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "EvalConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown eval flag(s): {', '.join(unknown)}")
        return cls(**values)

    def validate(self) -> None:
        if self.batch_size <= 0:
            raise ValueError(f"--batch_size must be positive, got {self.batch_size}")
        if self.max_num_batches is not None and self.max_num_batches <= 0:
            raise ValueError(f"--max_num_batches must be positive, got {self.max_num_batches}")
        if self.quantize:
            raise ValueError("--quantize: quantized evaluation (TF1 contrib_quantize) is not "
                             "supported by kslim")
        if self.labels_offset < 0:
            raise ValueError(f"--labels_offset must be >= 0, got {self.labels_offset}")


@dataclasses.dataclass
class EvalResult:
    """One evaluation.

    Attributes:
        accuracy: `eval/Accuracy`.
        recall_5: `eval/Recall_5`.
        num_examples: examples evaluated.
        checkpoint: the checkpoint evaluated (None for an in-memory model).
        global_step: the checkpoint's global step (0 when it has none).
    """

    accuracy: float
    recall_5: float
    num_examples: int
    checkpoint: str | None = None
    global_step: int = 0

    @property
    def metrics(self) -> dict[str, float]:
        return {"eval/Accuracy": self.accuracy, "eval/Recall_5": self.recall_5}


def format_result(result: EvalResult) -> str:
    """The line scripts parse: `eval/Accuracy=<float> eval/Recall_5=<float>`."""
    return f"eval/Accuracy={result.accuracy!r} eval/Recall_5={result.recall_5!r}"


def evaluate_model(model, dataset, max_num_batches: int | None = None) -> EvalResult:
    """slim's Accuracy and Recall@5 of `model` (inference mode) over `dataset`.

    Args:
        model: a Keras model returning logits.
        dataset: batches of `(images, int labels)`.
        max_num_batches: stop after this many batches.
    """
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def counts(images, labels):
        logits = tf.cast(model(images, training=False), tf.float32)
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        k = min(5, int(logits.shape[-1]))
        predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
        correct = tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.int64))
        top_k = tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, k), tf.int64))
        return correct, top_k, tf.size(labels, out_type=tf.int64)

    correct = top_k = total = 0
    for index, (images, labels) in enumerate(dataset):
        if max_num_batches is not None and index >= max_num_batches:
            break
        c, t, n = counts(images, labels)
        correct, top_k, total = correct + int(c), top_k + int(t), total + int(n)
    if total == 0:
        raise ValueError("the evaluation dataset is empty: no example was evaluated")
    return EvalResult(correct / total, top_k / total, total)


def _checkpoints(config: EvalConfig) -> Iterator[str]:
    import tensorflow as tf

    from kslim import compat

    if not config.wait_for_checkpoints:
        yield compat.checkpoint_prefix(config.checkpoint_path)
        return
    folder = config.checkpoint_path
    if not os.path.isdir(folder):
        raise ValueError(f"--wait_for_checkpoints needs --checkpoint_path to be a folder "
                         f"(a train_dir), got {folder!r}")
    print(f"Waiting for checkpoints in {folder}"
          + (f" (timeout {config.timeout:g} s)" if config.timeout else ""), flush=True)
    yield from tf.train.checkpoints_iterator(folder, min_interval_secs=config.eval_interval_secs,
                                             timeout=config.timeout)


def evaluate(config: EvalConfig | None = None, stream=None, **flags: Any) -> list[EvalResult]:
    """Runs slim's `eval_image_classifier.py`: once, or as `evaluation_loop`.

    Args:
        config: an `EvalConfig`, or the flags as keywords.
        stream: where the result lines go (default stdout).

    Returns:
        The `EvalResult` of every checkpoint evaluated, in order.

    Raises:
        ValueError: a bad flag, dataset or checkpoint (the message names it).
    """
    import tensorflow as tf

    from kslim import compat, data, models
    from kslim.training._callbacks import write_scalar

    if config is None:
        config = EvalConfig.from_dict(flags)
    elif flags:
        config = dataclasses.replace(config, **flags)
    config.validate()
    from kslim.models._video import require_image_net

    require_image_net(config.model_name, "eval")  # slim has no video dataset
    stream = stream or sys.stdout
    spec = models.get_spec(config.model_name)
    if hasattr(spec.model_class, "anchors"):  # SSD nets: per-class AP, kslim.detection
        from kslim.detection._train import evaluate_detection

        return evaluate_detection(config, stream)
    split = data.get_split(config.dataset_name, config.dataset_split_name, config.dataset_dir)
    image_size = config.eval_image_size or spec.image_size
    channels = 1 if config.use_grayscale else split.spec.channels
    num_classes = split.num_classes - config.labels_offset
    model = models.create_model(spec.name, num_classes=num_classes,
                                input_shape=(image_size, image_size, channels))
    dataset = data.input_pipeline(
        split, config.batch_size, config.preprocessing_name or spec.preprocessing,
        image_size=image_size, is_training=False, labels_offset=config.labels_offset,
        num_parallel=config.num_preprocessing_threads, use_grayscale=config.use_grayscale)
    writer = tf.summary.create_file_writer(config.eval_dir)
    results = []
    for checkpoint in _checkpoints(config):
        compat.restore(model, checkpoint, strict=True,
                       use_moving_average=bool(config.moving_average_decay))
        reader = tf.train.load_checkpoint(checkpoint)
        step = (int(reader.get_tensor("global_step"))
                if reader.has_tensor("global_step") else 0)
        try:
            result = evaluate_model(model, dataset, config.max_num_batches)
        except tf.errors.DataLossError as e:  # a split too big for the up-front check
            from kslim.data._records import data_loss_message

            raise ValueError(data_loss_message(split.files, e)) from None
        result.checkpoint, result.global_step = checkpoint, step
        with writer.as_default(step=step):
            for name, value in result.metrics.items():
                write_scalar(name, value, step)
        writer.flush()
        print(f"{checkpoint} (global step {step}, {result.num_examples} examples of "
              f"{split.name}/{split.split_name}):", file=stream, flush=True)
        print(format_result(result), file=stream, flush=True)
        results.append(result)
        if config.max_number_of_evaluations and len(results) >= config.max_number_of_evaluations:
            break
    writer.close()
    return results
