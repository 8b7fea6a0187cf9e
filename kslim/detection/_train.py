"""Detection training and evaluation: SSD-Tensorflow's `train_ssd_network.py` and
`eval_ssd_network.py` on kslim's drivers.

`kslim train` and `kslim eval` run the classification drivers (`kslim.training`) for
every net; for an SSD net (a model class with `anchors`) they hand four things to this
module, and keep the rest (optimizers, schedules, trainable scopes, MirroredStrategy,
resume, slim-format checkpoints, summaries):

- the input pipeline: records -> decode -> `ssd_vgg` preprocessing (random crop,
  flip, colour) -> `kslim.detection.encode` with the model's anchors, inside `tf.data`
  (SSD-Tensorflow encodes in its input graph too), batches of
  `(images, {"labels", "localisations", "scores"})`, the flat targets the model's loss
  takes;
- the loss options (`--match_threshold`, `--negative_ratio`, `--loss_alpha`);
- the warm start with `--checkpoint_model_scope` (`name.replace(model_name, scope)`:
  `ssd_300_vgg/conv1/conv1_1/weights` <- `vgg_16/conv1/conv1_1/weights`), reporting
  which layers loaded and which start fresh;
- the evaluation: eval preprocessing (`--eval_resize`), the ground truth zero-padded per
  batch (`tf.train.batch(dynamic_pad=True)`), decode + `detected_bboxes` +
  `VOCMetric`, per-class AP lines and a last line
  `AP_VOC07/mAP=<float> AP_VOC12/mAP=<float>`.

Unlike SSD-Tensorflow, everything runs NHWC (its training hard-coded NCHW, which fails
on CPU: its issues #226, #268).
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import tensorflow as tf

__all__ = ["DetectionEvalResult", "DetectionTask", "RESIZE_MODES", "check_detection_split",
           "describe_warm_start", "detection_dataset", "detection_num_classes",
           "detection_step", "evaluate_detection", "evaluate_detection_model",
           "format_detection_result", "ssd_compile_options"]

# eval_ssd_network.py's --eval_resize values (SSD-Tensorflow's `Resize` enum).
RESIZE_MODES = {1: "none", 2: "central_crop", 3: "pad_and_resize", 4: "warp_resize"}


def check_detection_split(split, model_name: str) -> None:
    """A clear error when a detection net is given a classification dataset."""
    if not getattr(split.spec, "detection", False):
        raise ValueError(f"{model_name} is a detector: it needs a detection dataset "
                         f"(pascalvoc_2007, pascalvoc_2012, shapes or one in their layout), "
                         f"got {split.name!r}, a classification dataset")


def detection_num_classes(split) -> int:
    """The net's class count for a detection split: its classes plus background (0).

    SSD-Tensorflow's datasets count 20 VOC classes and its nets 21; a split whose
    names already hold class 0 (background) is taken as it is.
    """
    names = split.labels_to_names or {}
    count = split.num_classes
    return count if 0 in names else count + 1


def _prior_scaling(model) -> tuple[float, ...]:
    return tuple(float(v) for v in model.params.prior_scaling)


def detection_dataset(split, batch_size: int, model, *, is_training: bool,
                      image_size: int | tuple[int, int] | None = None,
                      preprocessing_name: str = "ssd_vgg", resize: str = "warp_resize",
                      shuffle: bool | None = None, seed: int | None = None,
                      input_context=None, num_epochs: int | None = None,
                      num_parallel: int = tf.data.AUTOTUNE, cycle_length: int = 4,
                      drop_remainder: bool | None = None) -> tf.data.Dataset:
    """Batches for an SSD net from a detection split (SSD-Tensorflow's layout).

    Args:
        split: a detection split from `kslim.data.get_split` (`pascalvoc_2007`,
            `pascalvoc_2012`, the embedded `shapes`; a `DetectionSplit`, whose `decode`
            checks every record and names the file and record of a bad one).
        batch_size: examples per batch (per replica under a strategy).
        model: the SSD net; its `anchors()` (at its input size) and `prior_scaling`
            encode the targets.
        is_training: training preprocessing and encoded targets; else eval
            preprocessing and the padded ground truth.
        image_size: network input size (default: the model's).
        preprocessing_name: for `kslim.preprocess.get_preprocessing`.
        resize: eval resize mode ("none", "central_crop", "pad_and_resize",
            "warp_resize").
        shuffle, seed, input_context, num_epochs, num_parallel, cycle_length,
        drop_remainder: as `kslim.data.input_pipeline`.

    Returns:
        Training: `(images [B, H, W, 3], {"labels" [B, N] int64, "localisations"
        [B, N, 4], "scores" [B, N]})`. Eval: `(images, {"labels" [B, G] int64,
        "bboxes" [B, G, 4], "difficults" [B, G] int64, "bbox_img" [B, 4]})`, the
        ground truth zero-padded to the batch's largest G (label 0 = padding).
    """
    from kslim.preprocess import get_preprocessing

    if image_size is None:
        image_size = tuple(model._built_input_shape[:2])
    elif isinstance(image_size, int):
        image_size = (image_size, image_size)
    out_shape = tuple(int(s) for s in image_size)
    preprocess = get_preprocessing(preprocessing_name, is_training=is_training)
    shuffle = is_training if shuffle is None else shuffle
    drop_remainder = is_training if drop_remainder is None else drop_remainder
    if num_epochs is None and not is_training:
        num_epochs = 1
    deterministic = seed is not None or not shuffle
    records = split.records(shuffle_files=shuffle, seed=seed, input_context=input_context,
                            cycle_length=cycle_length if shuffle else 1,
                            deterministic=deterministic)
    if shuffle:
        records = records.shuffle(min(split.num_samples, max(1024, 16 * batch_size)),
                                  seed=seed, reshuffle_each_iteration=True)
    if num_epochs != 1:
        records = records.repeat(num_epochs)

    if is_training:
        anchors = model.anchors()
        num_classes = int(model.num_classes)
        scaling = _prior_scaling(model)

        def prepare(path, index, serialized, element_seed=None):
            from kslim.detection import encode

            image, _, labels, bboxes, _, _ = split.decode(path, index, serialized)
            kwargs = {} if element_seed is None else {"seed": element_seed}
            image, labels, bboxes = preprocess(image, labels, bboxes, out_shape=out_shape,
                                               **kwargs)[:3]
            t_labels, t_locs, t_scores = encode(labels, bboxes, anchors, num_classes,
                                                prior_scaling=scaling)
            return (tf.cast(image, tf.float32),
                    {"labels": t_labels, "localisations": t_locs, "scores": t_scores})

        if seed is not None:  # a per-example stateless seed: repeatable augmentation
            seeds = tf.data.Dataset.random(seed=seed).batch(2, drop_remainder=True)
            examples = tf.data.Dataset.zip(records, seeds).map(
                lambda record, s: prepare(*record, s), num_parallel_calls=num_parallel,
                deterministic=deterministic)
        else:
            examples = records.map(prepare, num_parallel_calls=num_parallel,
                                   deterministic=deterministic)
        batches = examples.batch(batch_size, drop_remainder=drop_remainder)
        return batches.prefetch(tf.data.AUTOTUNE)

    def prepare_eval(path, index, serialized):
        image, _, labels, bboxes, difficults, _ = split.decode(path, index, serialized)
        image, labels, bboxes, bbox_img = preprocess(image, labels, bboxes,
                                                     out_shape=out_shape, resize=resize)
        return (tf.cast(image, tf.float32),
                {"labels": labels, "bboxes": bboxes, "difficults": difficults,
                 "bbox_img": bbox_img})

    examples = records.map(prepare_eval, num_parallel_calls=num_parallel,
                           deterministic=True)
    batches = examples.padded_batch(batch_size, drop_remainder=drop_remainder)
    return batches.prefetch(tf.data.AUTOTUNE)


# -- training ------------------------------------------------------------------------------

class DetectionTask:
    """What `kslim.training.train` does differently for an SSD net (see the module doc).

    Args:
        config: the `TrainConfig`.
        split: the training split.
        spec: the net's `ModelSpec`.
        image_size: the network input size.
    """

    def __init__(self, config, split, spec, image_size: int):
        check_detection_split(split, spec.name)
        if config.labels_offset:
            raise ValueError("--labels_offset is for classification records; detection "
                             "labels are used as they are (0 = background)")
        if config.use_grayscale:
            raise ValueError("--use_grayscale: the SSD nets take RGB images")
        if not 0 < config.match_threshold < 1:
            raise ValueError(f"--match_threshold must be in (0, 1), got "
                             f"{config.match_threshold}")
        if config.negative_ratio < 0:
            raise ValueError(f"--negative_ratio must be >= 0, got {config.negative_ratio}")
        self.config = config
        self.split = split
        self.spec = spec
        self.image_size = int(image_size)
        self.num_classes = detection_num_classes(split)
        self.model = None

    def dataset_fn(self, global_batch: int):
        """`fn(input_context) -> dataset` for `distribute_dataset`."""
        config = self.config

        def dataset_fn(input_context):
            batch = input_context.get_per_replica_batch_size(global_batch)
            return detection_dataset(
                self.split, batch, self.model, is_training=True,
                image_size=self.image_size,
                preprocessing_name=config.preprocessing_name or self.spec.preprocessing,
                seed=config.seed, input_context=input_context,
                cycle_length=config.num_readers,
                num_parallel=config.num_preprocessing_threads)

        return dataset_fn

    def compile_options(self, model) -> dict:
        """`model.compile` keywords: the model's SSD loss with the train flags."""
        self.model = model
        return ssd_compile_options(model, self.config.match_threshold,
                                   self.config.negative_ratio, self.config.loss_alpha)

    def element_spec(self, model):
        """The per-replica batch spec (images, flat targets)."""
        n = sum(int(np.prod(s[:3])) for s in model.feature_shapes)
        size = self.image_size
        return (tf.TensorSpec((None, size, size, 3), tf.float32),
                {"labels": tf.TensorSpec((None, n), tf.int64),
                 "localisations": tf.TensorSpec((None, n, 4), tf.float32),
                 "scores": tf.TensorSpec((None, n), tf.float32)})


def ssd_compile_options(model, match_threshold: float = 0.5, negative_ratio: float = 3.0,
                        alpha: float = 1.0) -> dict:
    """`model.compile` keywords for an SSD net trained as `train_ssd_network.py`.

    The net computes its own loss from the flat targets (`compute_loss`, the SSD loss
    of its variant); this sets the three loss flags on it (the options the net also
    takes when built). No compiled loss or metric: the loss terms are its logs.
    """
    model.match_threshold = float(match_threshold)
    model.negative_ratio = float(negative_ratio)
    model.loss_alpha = float(alpha)
    return {}


def _layer_of(name: str, scope: str) -> str:
    """`ssd_300_vgg/conv1/conv1_1/weights` -> `conv1/conv1_1` (the slim layer)."""
    rest = name[len(scope) + 1:] if scope and name.startswith(scope + "/") else name
    return rest.rsplit("/", 1)[0]


def describe_warm_start(report, own: str, scope: str) -> str:
    """The warm start, by layer: what loaded from the checkpoint, what starts fresh."""
    loaded, fresh = [], []
    for name in report.loaded:
        layer = _layer_of(name, own)
        if layer not in loaded:
            loaded.append(layer)
    for name in [*report.excluded, *report.missing, *report.mismatched]:
        layer = _layer_of(name, own)
        if layer not in fresh and layer not in loaded:
            fresh.append(layer)
    lines = [f"Fine-tuning from {report.checkpoint} ({own} <- {scope}): loaded "
             f"{len(loaded)} layers ({len(report.loaded)} variables): {', '.join(loaded)}",
             f"  starting fresh: {len(fresh)} layers "
             f"({len(report.excluded) + len(report.missing) + len(report.mismatched)} "
             f"variables): {', '.join(fresh) or '-'}"]
    if report.unused:
        lines.append(f"  unused in the checkpoint: {len(report.unused)} variables "
                     f"({', '.join(sorted({n.rsplit('/', 1)[0] for n in report.unused}))})")
    return "\n".join(lines)


# -- evaluation ----------------------------------------------------------------------------

@dataclasses.dataclass
class DetectionEvalResult:
    """One detection evaluation.

    Attributes:
        metrics: `VOCMetric.result()`: `AP_VOC07/<c>`, `AP_VOC12/<c>` and the two mAPs.
        num_examples: images evaluated.
        class_names: `{class id: name}` where known.
        checkpoint: the checkpoint evaluated (None for an in-memory model).
        global_step: the checkpoint's global step.
    """

    metrics: dict
    num_examples: int
    class_names: dict = dataclasses.field(default_factory=dict)
    checkpoint: str | None = None
    global_step: int = 0

    @property
    def map_voc07(self) -> float:
        return float(self.metrics["AP_VOC07/mAP"])

    @property
    def map_voc12(self) -> float:
        return float(self.metrics["AP_VOC12/mAP"])


def format_detection_result(result: DetectionEvalResult) -> str:
    """Per-class AP lines, then the line scripts parse:
    `AP_VOC07/mAP=<float> AP_VOC12/mAP=<float>`."""
    lines = []
    classes = sorted(int(k.split("/")[1]) for k in result.metrics
                     if k.startswith("AP_VOC07/") and not k.endswith("/mAP"))
    for c in classes:
        name = result.class_names.get(c, str(c))
        lines.append(f"  {c:>3} {name:<14} AP_VOC07={result.metrics[f'AP_VOC07/{c}']:.4f} "
                     f"AP_VOC12={result.metrics[f'AP_VOC12/{c}']:.4f}")
    lines.append(f"AP_VOC07/mAP={result.map_voc07!r} AP_VOC12/mAP={result.map_voc12!r}")
    return "\n".join(lines)


def detection_step(model, *, select_threshold: float = 0.01, nms_threshold: float = 0.45,
                   top_k: int = 400, keep_top_k: int = 200):
    """A `tf.function` `images -> detected_bboxes(...)` dict, relative boxes in the
    network frame (eval_ssd_network.py's graph after the net)."""
    from kslim.detection import decode, detected_bboxes

    anchors = model.anchors()
    scaling = _prior_scaling(model)

    @tf.function(reduce_retracing=True)
    def step(images):
        out = model(images, training=False)
        probabilities = tf.nn.softmax(tf.cast(out["logits"], tf.float32))
        boxes = decode(tf.cast(out["localisations"], tf.float32), anchors,
                       prior_scaling=scaling)
        return detected_bboxes(probabilities, boxes, select_threshold=select_threshold,
                               nms_threshold=nms_threshold, top_k=top_k,
                               keep_top_k=keep_top_k)

    return step


def evaluate_detection_model(model, dataset, *, max_num_batches: int | None = None,
                             select_threshold: float = 0.01, nms_threshold: float = 0.45,
                             top_k: int = 400, keep_top_k: int = 200,
                             matching_threshold: float = 0.5, rule: str = "ssd_tf",
                             class_names: dict | None = None) -> DetectionEvalResult:
    """VOC APs of an SSD net over eval batches from `detection_dataset`.

    Raises:
        ValueError: an empty dataset.
    """
    from kslim.detection import VOCMetric

    metric = VOCMetric(int(model.num_classes), matching_threshold=matching_threshold,
                       rule=rule)
    step = detection_step(model, select_threshold=select_threshold,
                          nms_threshold=nms_threshold, top_k=top_k, keep_top_k=keep_top_k)
    for index, (images, truth) in enumerate(dataset):
        if max_num_batches is not None and index >= max_num_batches:
            break
        detections = step(images)
        metric.update({int(c): (s.numpy(), b.numpy()) for c, (s, b) in detections.items()},
                      truth["labels"].numpy(), truth["bboxes"].numpy(),
                      truth["difficults"].numpy())
    if metric.num_images == 0:
        raise ValueError("the evaluation dataset is empty: no image was evaluated")
    return DetectionEvalResult(metric.result(), metric.num_images, dict(class_names or {}))


def evaluate_detection(config, stream=None) -> list[DetectionEvalResult]:
    """`kslim eval` for an SSD net (eval_ssd_network.py): per checkpoint, per-class AP
    and `AP_VOC07/mAP=<float> AP_VOC12/mAP=<float>` printed, scalars written to
    `eval_dir`."""
    from kslim import compat, data, models
    from kslim.training._callbacks import write_scalar
    from kslim.training._eval import _checkpoints

    stream = stream or sys.stdout
    if config.labels_offset:
        raise ValueError("--labels_offset is for classification records; detection labels "
                         "are used as they are")
    for flag in ("select_top_k", "keep_top_k"):
        if getattr(config, flag) <= 0:
            raise ValueError(f"--{flag} must be positive, got {getattr(config, flag)}")
    if config.eval_resize not in RESIZE_MODES:
        raise ValueError(f"--eval_resize must be one of {sorted(RESIZE_MODES)} "
                         f"({RESIZE_MODES}), got {config.eval_resize}")
    split = data.get_split(config.dataset_name, config.dataset_split_name, config.dataset_dir)
    spec = models.get_spec(config.model_name)
    check_detection_split(split, spec.name)
    size = config.eval_image_size or spec.image_size
    num_classes = detection_num_classes(split)
    model = models.create_model(spec.name, num_classes=num_classes,
                                input_shape=(size, size, 3))
    dataset = detection_dataset(
        split, config.batch_size, model, is_training=False, image_size=size,
        preprocessing_name=config.preprocessing_name or spec.preprocessing,
        resize=RESIZE_MODES[config.eval_resize],
        num_parallel=config.num_preprocessing_threads)
    names = {int(k): v for k, v in (split.labels_to_names or {}).items()}
    writer = tf.summary.create_file_writer(config.eval_dir)
    results = []
    for checkpoint in _checkpoints(config):
        compat.restore(model, checkpoint, strict=True,
                       use_moving_average=bool(config.moving_average_decay))
        reader = tf.train.load_checkpoint(checkpoint)
        step = int(reader.get_tensor("global_step")) if reader.has_tensor("global_step") else 0
        result = evaluate_detection_model(
            model, dataset, max_num_batches=config.max_num_batches,
            select_threshold=config.select_threshold, nms_threshold=config.nms_threshold,
            top_k=config.select_top_k, keep_top_k=config.keep_top_k,
            matching_threshold=config.matching_threshold, rule=config.difficult_rule,
            class_names=names)
        result.checkpoint, result.global_step = checkpoint, step
        with writer.as_default(step=step):
            for name, value in result.metrics.items():
                write_scalar(name, value, step)
        writer.flush()
        print(f"{checkpoint} (global step {step}, {result.num_examples} images of "
              f"{split.name}/{split.split_name}, difficult rule {config.difficult_rule}):",
              file=stream, flush=True)
        print(format_detection_result(result), file=stream, flush=True)
        results.append(result)
        if config.max_number_of_evaluations and len(results) >= config.max_number_of_evaluations:
            break
    writer.close()
    return results
