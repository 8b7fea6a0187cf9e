"""`kslim train`: research/slim's `train_image_classifier.py` on `model.fit`.

`TrainConfig` holds the script's flags by the same names and with the same defaults
(plus a few kslim ones, marked); `train(config)` runs them:

    split -> input pipeline (per worker) -> net (weight decay) -> trainable scopes
          -> optimizer + learning-rate schedule -> softmax cross-entropy (+0.4 aux)
          -> resume from train_dir, else warm start from checkpoint_path
          -> model.fit with slim-format checkpoints, summaries and step logs

What differs from slim, and why, is listed in `kslim.training`'s docstring.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import sys
import tempfile
from typing import Any

__all__ = ["TrainConfig", "TrainResult", "train"]

log = logging.getLogger("kslim")

_KSLIM = "(kslim) "  # marks flags slim's script does not have


def _flag(default, help: str, **metadata):
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


@dataclasses.dataclass
class TrainConfig:
    """The flags of `train_image_classifier.py` (names and defaults as slim's), plus
    kslim's own (help text starting with "(kslim)")."""

    # -- runtime --------------------------------------------------------------------------
    train_dir: str = _flag(os.path.join(tempfile.gettempdir(), "tfmodel"),
                           "directory where checkpoints and event logs are written")
    master: str = _flag("", "not used: TF1 session master (use TF_CONFIG/--worker_hosts)")
    log_every_n_steps: int = _flag(10, "frequency of the step log lines, in steps")
    save_summaries_secs: float = _flag(600, "seconds between TensorBoard summaries")
    save_interval_secs: float = _flag(600, "seconds between checkpoints")
    task: int = _flag(0, "this worker's index (slim's replica task id); same as --task_index")
    # -- clones and replicas --------------------------------------------------------------
    num_clones: int = _flag(1, "model clones (replicas) on this machine: MirroredStrategy")
    clone_on_cpu: bool = _flag(False, "put the clones on CPU devices")
    worker_replicas: int = _flag(1, "number of workers (checked against the cluster)")
    num_ps_tasks: int = _flag(0, "parameter servers: must be 0 (all-reduce replaces them)")
    sync_replicas: bool = _flag(False, "not needed: replicas are always synchronous")
    replicas_to_aggregate: int = _flag(1, "not used: every replica's gradient is aggregated")
    worker_hosts: str | None = _flag(None, _KSLIM + "comma-separated host:port of every "
                                     "worker (instead of TF_CONFIG)")
    task_index: int | None = _flag(None, _KSLIM + "this worker's index in --worker_hosts")
    # -- input pipeline -------------------------------------------------------------------
    num_readers: int = _flag(4, "files read in parallel")
    num_preprocessing_threads: int = _flag(4, "parallel decode and preprocessing calls")
    # -- optimizer ------------------------------------------------------------------------
    weight_decay: float = _flag(0.00004, "L2 weight decay of the net (slim's arg_scope)")
    optimizer: str = _flag("rmsprop", "adadelta, adagrad, adam, ftrl, momentum, sgd or "
                           "rmsprop", choices=("adadelta", "adagrad", "adam", "ftrl",
                                               "momentum", "rmsprop", "sgd"))
    adadelta_rho: float = _flag(0.95, "decay factor of adadelta")
    adagrad_initial_accumulator_value: float = _flag(0.1, "starting value of adagrad's "
                                                     "accumulators")
    adam_beta1: float = _flag(0.9, "exponential decay of adam's 1st moment")
    adam_beta2: float = _flag(0.999, "exponential decay of adam's 2nd moment")
    opt_epsilon: float = _flag(1.0, "epsilon of adadelta, adam and rmsprop")
    ftrl_learning_rate_power: float = _flag(-0.5, "ftrl learning-rate power")
    ftrl_initial_accumulator_value: float = _flag(0.1, "ftrl accumulators' start value")
    ftrl_l1: float = _flag(0.0, "ftrl L1 regularization strength")
    ftrl_l2: float = _flag(0.0, "ftrl L2 regularization strength")
    momentum: float = _flag(0.9, "momentum of the momentum optimizer")
    rmsprop_momentum: float = _flag(0.9, "momentum of rmsprop")
    rmsprop_decay: float = _flag(0.9, "decay of rmsprop's mean square")
    quantize_delay: int = _flag(-1, "quantization-aware training: not supported (-1)")
    # -- learning rate --------------------------------------------------------------------
    learning_rate_decay_type: str = _flag("exponential", "fixed, exponential or polynomial",
                                          choices=("fixed", "exponential", "polynomial"))
    learning_rate: float = _flag(0.01, "initial learning rate")
    end_learning_rate: float = _flag(0.0001, "final rate of the polynomial decay")
    learning_rate_decay_factor: float = _flag(0.94, "exponential decay factor")
    num_epochs_per_decay: float = _flag(2.0, "epochs between decays, counted on the "
                                        "global batch (slim counted per-clone epochs)")
    # -- regularization -------------------------------------------------------------------
    label_smoothing: float = _flag(0.0, "label smoothing of the cross-entropy")
    moving_average_decay: float | None = _flag(None, "keep moving averages of the "
                                               "variables with this decay (saved as "
                                               "<name>/ExponentialMovingAverage)")
    # -- dataset --------------------------------------------------------------------------
    dataset_name: str = _flag("imagenet", "dataset to train on (kslim.data)")
    dataset_split_name: str = _flag("train", "split to train on")
    dataset_dir: str | None = _flag(None, "folder of the TFRecords (optional for digits)")
    labels_offset: int = _flag(0, "subtracted from every label (1 trains 1000 classes "
                               "on 1001-class ImageNet records)")
    model_name: str = _flag("inception_v3", "net to train (kslim.models.list_models())")
    preprocessing_name: str | None = _flag(None, "preprocessing (default: model_name's)")
    batch_size: int = _flag(32, "examples per clone (per replica) per step")
    train_image_size: int | None = _flag(None, "image size (default: the net's)")
    max_number_of_steps: int | None = _flag(None, "stop at this global step (default: "
                                            "never)")
    use_grayscale: bool = _flag(False, "convert images to one channel")
    # -- fine-tuning ----------------------------------------------------------------------
    checkpoint_path: str | None = _flag(None, "checkpoint (or folder) to warm-start from "
                                        "at step 0; slim or slim:<tag> for the model zoo's")
    checkpoint_exclude_scopes: str | None = _flag(None, "comma-separated scopes not "
                                                  "restored from checkpoint_path")
    trainable_scopes: str | None = _flag(None, "comma-separated scopes to train (default: "
                                         "all)")
    ignore_missing_vars: bool = _flag(False, "restore what checkpoint_path has and ignore "
                                      "missing variables")
    checkpoint_model_scope: str | None = _flag(None, "the model scope in checkpoint_path "
                                               "when it differs (train_ssd_network.py: "
                                               "vgg_16 restores an SSD's backbone)")
    # -- SSD (train_ssd_network.py; detection nets only) -----------------------------------
    loss_alpha: float = _flag(1.0, "SSD: weight of the localisation loss")
    negative_ratio: float = _flag(3.0, "SSD: hard negatives mined per positive")
    match_threshold: float = _flag(0.5, "SSD: IoU above which an anchor is a positive")
    # -- kslim ----------------------------------------------------------------------------
    mixed_precision: str | None = _flag(None, _KSLIM + "mixed_float16 (loss scaling) or "
                                        "mixed_bfloat16; logits stay float32",
                                        choices=("mixed_float16", "mixed_bfloat16",
                                                 "float16", "bfloat16"))
    seed: int | None = _flag(None, _KSLIM + "seed of the initial weights, shuffling and "
                             "augmentation (repeatable runs)")
    dropout_keep_prob: float | None = _flag(None, _KSLIM + "the net's dropout keep "
                                            "probability (default: the net's)")
    save_every_n_steps: int | None = _flag(None, _KSLIM + "also checkpoint every N steps")
    max_to_keep: int = _flag(5, _KSLIM + "checkpoints kept in train_dir (slim's Saver: 5)")
    backup_every_n_steps: int | None = _flag(None, _KSLIM + "BackupAndRestore interval "
                                             "(default 50 with several workers, off with "
                                             "one; 0 = off)")
    steps_per_epoch: int | None = _flag(None, _KSLIM + "steps per Keras epoch (progress "
                                        "bar); default one pass over the split")
    verbose: str = _flag("auto", _KSLIM + "auto (progress bar on a terminal, log lines "
                         "otherwise), 0, 1 or 2", choices=("auto", "0", "1", "2"))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """A config from `{flag: value}`; unknown names raise a ValueError naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            import difflib

            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, known, n=1)
                hints.append(f"{name}" + (f" (did you mean {close[0]}?)" if close else ""))
            raise ValueError(f"unknown train flag(s): {', '.join(hints)}")
        return cls(**values)

    def validate(self) -> None:
        """Raises a ValueError naming the first bad flag value."""
        positive = ("batch_size", "num_clones", "log_every_n_steps", "num_readers",
                    "num_preprocessing_threads", "num_epochs_per_decay", "max_to_keep")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name} must be positive, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"--learning_rate must be positive, got {self.learning_rate}")
        if self.max_number_of_steps is not None and self.max_number_of_steps < 0:
            raise ValueError("--max_number_of_steps must be >= 0, got "
                             f"{self.max_number_of_steps}")
        if self.weight_decay < 0:
            raise ValueError(f"--weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"--label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.moving_average_decay is not None and not 0 < self.moving_average_decay < 1:
            raise ValueError("--moving_average_decay must be in (0, 1), got "
                             f"{self.moving_average_decay}")
        if self.dropout_keep_prob is not None and not 0 < self.dropout_keep_prob <= 1:
            raise ValueError(f"--dropout_keep_prob must be in (0, 1], got "
                             f"{self.dropout_keep_prob}")
        if self.num_ps_tasks:
            raise ValueError("--num_ps_tasks: parameter servers are not used by kslim; run "
                             "every machine as a worker (TF_CONFIG or --worker_hosts) and "
                             "MultiWorkerMirroredStrategy all-reduces the gradients")
        if self.quantize_delay >= 0:
            raise ValueError("--quantize_delay: quantization-aware training (TF1 "
                             "contrib_quantize) is not supported by kslim; leave it at -1")
        if self.train_image_size is not None and self.train_image_size <= 0:
            raise ValueError(f"--train_image_size must be positive, got "
                             f"{self.train_image_size}")
        if self.labels_offset < 0:
            raise ValueError(f"--labels_offset must be >= 0, got {self.labels_offset}")


@dataclasses.dataclass
class TrainResult:
    """What `train` did.

    Attributes:
        model: the trained Keras model.
        global_step: the global step at the end.
        start_step: the global step training started from (a resumed run > 0).
        checkpoint: the newest checkpoint written (None on non-chief workers).
        resumed_from: the train_dir checkpoint the run resumed from, if any.
        warm_start: the `RestoreReport` of the warm start, if any.
        losses: `{global step: logged loss}` of the steps run.
        history: Keras's `History`.
        strategy: the `tf.distribute` strategy it ran under.
    """

    model: Any
    global_step: int
    start_step: int
    checkpoint: str | None
    resumed_from: str | None = None
    warm_start: Any = None
    losses: dict = dataclasses.field(default_factory=dict)
    history: Any = None
    strategy: Any = None


def _policy_name(mixed_precision: str | None) -> str | None:
    if not mixed_precision:
        return None
    return {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}.get(
        mixed_precision, mixed_precision)


@contextlib.contextmanager
def dtype_policy(name: str | None):
    """Sets Keras's global dtype policy for the models built inside, then restores it."""
    import keras

    if not name:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def float32_heads(model) -> list[str]:
    """Runs the classifier heads (`model.head_scopes`) in float32 under a mixed policy,
    so the logits (and the softmax/loss on them) are float32, as Keras's mixed-precision
    guide asks. Returns the paths of the layers changed."""
    heads = [f"{model.name}/{h}" for h in getattr(model, "head_scopes", ())]
    changed = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        weights = layer.weights
        if weights and all(any(w.path.startswith(h + "/") for h in heads) for w in weights):
            layer.dtype_policy = "float32"
            changed.append(layer.name)
    return changed


def _verbosity(verbose: str) -> int:
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


def _prepare_train_dir(train_dir: str) -> None:
    """Refuses a train_dir that cannot hold checkpoints before anything is trained, and
    removes the temporary files of saves a killed run left there."""
    from kslim.compat._save import remove_stale_temporaries

    if os.path.exists(train_dir) and not os.path.isdir(train_dir):
        raise ValueError(f"--train_dir {train_dir!r} is a file, not a folder; checkpoints "
                         "and logs go into a folder: give another --train_dir")
    try:
        os.makedirs(train_dir, exist_ok=True)
        remove_stale_temporaries(train_dir)
    except OSError as e:
        raise ValueError(f"--train_dir {train_dir!r} cannot be written ({e.strerror or e}); "
                         "give a folder you can write") from None


def train(config: TrainConfig | None = None, **flags: Any) -> TrainResult:
    """Runs slim's `train_image_classifier.py` with `model.fit`.

    Args:
        config: a `TrainConfig`; or give the flags as keywords
            (`train(model_name="lenet", dataset_name="digits", train_dir=...)`).

    Returns:
        A `TrainResult`.

    Raises:
        ValueError: a bad flag, dataset or checkpoint (the message names it).
        LossDivergedError: the loss became NaN or infinite (naming the global step).
    """
    import keras
    import tensorflow as tf

    from kslim import compat, data, models
    from kslim.training import _callbacks as cb
    from kslim.training._distribute import (create_strategy, distribute_dataset,
                                            is_multi_worker, prepare_model_for_strategy)
    from kslim.training._ema import ExponentialMovingAverage
    from kslim.training._losses import SoftmaxCrossEntropy
    from kslim.training._optimizers import OPTIMIZER_DEFAULTS, create_optimizer
    from kslim.training._schedules import learning_rate_schedule
    from kslim.training._scopes import set_trainable_scopes, warm_start
    from kslim.training._backup import WorkerBackup
    from kslim.training._state import (newest_intact_checkpoint, read_moving_averages,
                                       restore_training_checkpoint)

    if config is None:
        config = TrainConfig.from_dict(flags)
    elif flags:
        config = dataclasses.replace(config, **flags)
    config.validate()
    from kslim.models._video import require_image_net

    require_image_net(config.model_name, "train")  # slim has no video dataset
    _prepare_train_dir(config.train_dir)
    if config.master:
        log.warning("--master=%s is ignored: kslim has no TF1 session master; use "
                    "TF_CONFIG or --worker_hosts for several machines", config.master)

    # Devices first: CPU clones split the CPU before TensorFlow starts its runtime.
    task_index = config.task_index if config.task_index is not None else (config.task or None)
    strategy, cluster = create_strategy(config.num_clones, config.clone_on_cpu,
                                        config.worker_hosts, task_index)
    if config.worker_replicas > 1 and cluster.num_workers != config.worker_replicas:
        raise ValueError(f"--worker_replicas={config.worker_replicas} but the cluster "
                         f"(TF_CONFIG/--worker_hosts) has {cluster.num_workers} workers")
    multi_worker = is_multi_worker(strategy)
    is_chief = cluster.is_chief
    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size * replicas

    split = data.get_split(config.dataset_name, config.dataset_split_name,
                           config.dataset_dir)
    spec = models.get_spec(config.model_name)
    image_size = config.train_image_size or spec.image_size
    preprocessing = config.preprocessing_name or spec.preprocessing
    num_classes = split.num_classes - config.labels_offset
    channels = 1 if config.use_grayscale else split.spec.channels
    task = None
    if hasattr(spec.model_class, "anchors"):  # SSD nets: boxes and targets, kslim.detection
        from kslim.detection._train import DetectionTask

        task = DetectionTask(config, split, spec, image_size)
        num_classes = task.num_classes
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)

    def dataset_fn(input_context):
        batch = input_context.get_per_replica_batch_size(global_batch)
        return data.input_pipeline(
            split, batch, preprocessing, image_size=image_size, is_training=True,
            seed=config.seed, input_context=input_context, labels_offset=config.labels_offset,
            cycle_length=config.num_readers, num_parallel=config.num_preprocessing_threads,
            use_grayscale=config.use_grayscale)

    if task is not None:
        dataset_fn = task.dataset_fn(global_batch)
    policy = _policy_name(config.mixed_precision)
    model_options = {"num_classes": num_classes, "weight_decay": config.weight_decay,
                     "input_shape": (image_size, image_size, channels)}
    if config.dropout_keep_prob is not None:
        model_options["dropout_keep_prob"] = config.dropout_keep_prob
    with dtype_policy(policy), strategy.scope():
        model = models.create_model(spec.name, **model_options)
        if policy:
            float32_heads(model)
        trained = set_trainable_scopes(model, config.trainable_scopes)
        learning_rate = learning_rate_schedule(
            config.learning_rate_decay_type, config.learning_rate,
            num_samples_per_epoch=split.num_samples, global_batch_size=global_batch,
            num_epochs_per_decay=config.num_epochs_per_decay,
            learning_rate_decay_factor=config.learning_rate_decay_factor,
            end_learning_rate=config.end_learning_rate)
        options = {name: getattr(config, name) for name in OPTIMIZER_DEFAULTS}
        optimizer = create_optimizer(config.optimizer, learning_rate, **options)
        if task is not None:
            model.compile(optimizer=optimizer, **task.compile_options(model))
        else:
            model.compile(optimizer=optimizer,
                          loss=SoftmaxCrossEntropy(label_smoothing=config.label_smoothing),
                          metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
        optimizer = model.optimizer  # a LossScaleOptimizer under mixed_float16
        optimizer.build(model.trainable_variables)
    log.info("training %d of %d variables of %s", len(trained),
             len(compat.slim_variables(model)), model.name)

    # slim's order: a checkpoint in train_dir resumes the run, else warm start at step 0.
    # A corrupt newest checkpoint is skipped (named in a warning) for the newest intact one.
    resumed_from = newest_intact_checkpoint(config.train_dir)
    report = None
    step = 0
    ema = None
    with strategy.scope():
        if resumed_from:
            step = restore_training_checkpoint(model, resumed_from, optimizer)
            print(f"Resuming from {resumed_from} at global step {step}", flush=True)
            if config.checkpoint_path:
                print(f"Ignoring --checkpoint_path because a checkpoint already exists in "
                      f"{config.train_dir}", flush=True)
        elif config.checkpoint_path:
            report = warm_start(model, config.checkpoint_path,
                                checkpoint_exclude_scopes=config.checkpoint_exclude_scopes,
                                ignore_missing_vars=config.ignore_missing_vars,
                                model_name=spec.name,
                                checkpoint_model_scope=config.checkpoint_model_scope)
            if config.checkpoint_model_scope:  # train_ssd_network.py's rename, by layer
                from kslim.detection._train import describe_warm_start

                print(describe_warm_start(report, model.scope or model.name,
                                          config.checkpoint_model_scope.strip().rstrip("/")),
                      flush=True)
            else:
                print(f"Fine-tuning from {report}", flush=True)
    if config.moving_average_decay:
        ema = ExponentialMovingAverage(config.moving_average_decay).attach(model)
        if resumed_from:
            ema.load(read_moving_averages(resumed_from))

    backup_every = config.backup_every_n_steps
    if backup_every is None:
        backup_every = 50 if multi_worker else 0
    backup = None
    if backup_every:
        backup = WorkerBackup(os.path.join(config.train_dir, "backup"), backup_every,
                              is_chief=is_chief)
        with strategy.scope():
            if backup.restore_now(model):
                step = cb.global_step(model)
                print(f"Restored the backup in {backup.backup_dir} at global step {step}",
                      flush=True)

    start_step = step
    max_steps = config.max_number_of_steps
    if max_steps is not None and step >= max_steps:
        print(f"global step {step} >= max_number_of_steps {max_steps}: nothing to train",
              flush=True)
        return TrainResult(model, step, step, resumed_from, resumed_from, report,
                           strategy=strategy)

    steps_per_epoch = config.steps_per_epoch or max(1, split.num_samples // global_batch)
    if max_steps is not None:
        steps_per_epoch = min(steps_per_epoch, max_steps)
        epochs = math.ceil(max_steps / steps_per_epoch)
    else:
        epochs = 2**31 - 1
    verbose = _verbosity(config.verbose)
    logger = cb.StepLogger(config.log_every_n_steps, record=True)
    if verbose == 1:
        logger.every_n_steps = sys.maxsize  # the progress bar shows the loss
    checkpoints = cb.SlimCheckpoint(config.train_dir, config.save_interval_secs,
                                    config.save_every_n_steps, config.max_to_keep, ema=ema,
                                    is_chief=is_chief)
    callbacks = [cb.StopOnNaN(), cb.StopAtStep(max_steps), logger]
    if ema is not None:
        callbacks.append(ema)
    callbacks += [checkpoints,
                  cb.SlimSummaries(config.train_dir, config.save_summaries_secs, is_chief)]
    if backup is not None:
        callbacks.append(backup)

    dataset = distribute_dataset(strategy, dataset_fn)
    element_spec = (tf.TensorSpec((None, image_size, image_size, channels), tf.float32),
                    tf.TensorSpec((None,), tf.int64))
    if task is not None:
        element_spec = task.element_spec(model)
    prepare_model_for_strategy(model, strategy, element_spec)
    with strategy.scope():
        while True:
            try:
                history = model.fit(dataset, steps_per_epoch=steps_per_epoch, epochs=epochs,
                                    initial_epoch=min(step // steps_per_epoch, epochs - 1),
                                    callbacks=callbacks, shuffle=False,
                                    verbose=verbose if is_chief else 0)
            except tf.errors.DataLossError as e:  # a split too big for the up-front check
                from kslim.data._records import data_loss_message

                raise ValueError(data_loss_message(split.files, e)) from None
            step = cb.global_step(model)
            # mixed_float16's loss scaling skips the update (and the step) on overflow:
            # go on until the global step reaches max_number_of_steps.
            if max_steps is None or step >= max_steps:
                break
            epochs = math.ceil(max_steps / steps_per_epoch) + 1
    if not multi_worker and replicas > 1:
        model._distribute_strategy = strategy  # model.evaluate/predict use it again
    final = cb.global_step(model)
    return TrainResult(model, final, start_step,
                       checkpoints.saved[-1] if checkpoints.saved else None,
                       resumed_from, report, dict(logger.losses), history, strategy)
