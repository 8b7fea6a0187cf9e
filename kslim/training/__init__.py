"""Training, evaluation, inference and export on `model.fit`: research/slim's
`train_image_classifier.py`, `eval_image_classifier.py`, `export_inference_graph.py` and
`deployment/model_deploy.py`, as a Python API and the `kslim train|eval|predict|export|demo`
commands.

For users of `model.fit`:

    import kslim
    from kslim import training

    split = kslim.data.get_split("digits", "train")
    ds = kslim.data.input_pipeline(split, 32, "lenet", is_training=True)
    model = kslim.models.create_model("lenet", num_classes=10, weight_decay=4e-5)
    training.set_trainable_scopes(model, None)                  # or "LeNet/fc4"
    lr = training.learning_rate_schedule("exponential", 0.01,
                                         num_samples_per_epoch=split.num_samples,
                                         global_batch_size=32)
    model.compile(training.create_optimizer("rmsprop", lr),
                  loss=training.SoftmaxCrossEntropy(label_smoothing=0.1))
    ema = training.ExponentialMovingAverage(0.999)
    model.fit(ds, steps_per_epoch=100, epochs=5,
              callbacks=[ema, training.SlimCheckpoint("/tmp/train", ema=ema,
                                                      save_interval_secs=60)])

Where kslim differs from slim, on purpose:
- The learning-rate decay counts epochs of the global batch (all replicas); slim
  counted per-clone epochs (`kslim.training.learning_rate_schedule`).
- BatchNorm layers frozen by `trainable_scopes` run in inference mode; slim kept them
  in training mode.
- Every replica updates the BatchNorm moving averages with its own batch; slim used the
  first clone's.
- There are no parameter servers: several machines all-reduce with
  `MultiWorkerMirroredStrategy`; `--sync_replicas`/`--replicas_to_aggregate` are moot.
- A NaN or infinite loss stops training with an error naming the global step.
"""

from __future__ import annotations

from kslim._lazy import lazy_attributes

__all__ = [
    # optimizers and schedules
    "OPTIMIZERS", "OPTIMIZER_DEFAULTS", "Momentum", "RMSProp", "create_optimizer",
    "slot_variables", "DECAY_TYPES", "decay_steps", "learning_rate_schedule",
    # losses, scopes, averages
    "SoftmaxCrossEntropy", "softmax_cross_entropy", "set_trainable_scopes", "warm_start",
    "ExponentialMovingAverage",
    # checkpoints and callbacks
    "save_training_checkpoint", "restore_training_checkpoint", "SlimCheckpoint",
    "SlimSummaries", "StepLogger", "StopAtStep", "StopOnNaN", "LossDivergedError",
    "WorkerBackup",
    # distribution
    "create_strategy", "distribute_dataset", "prepare_model_for_strategy",
    # drivers
    "TrainConfig", "TrainResult", "train", "EvalConfig", "EvalResult", "evaluate",
    "evaluate_model", "predict", "load_model", "export", "export_saved_model",
    "ExportConfig", "demo",
]

_HOMES = {
    "OPTIMIZERS": "_optimizers", "OPTIMIZER_DEFAULTS": "_optimizers", "Momentum": "_optimizers",
    "RMSProp": "_optimizers", "create_optimizer": "_optimizers",
    "slot_variables": "_optimizers",
    "DECAY_TYPES": "_schedules", "decay_steps": "_schedules",
    "learning_rate_schedule": "_schedules",
    "SoftmaxCrossEntropy": "_losses", "softmax_cross_entropy": "_losses",
    "set_trainable_scopes": "_scopes", "warm_start": "_scopes",
    "ExponentialMovingAverage": "_ema",
    "save_training_checkpoint": "_state", "restore_training_checkpoint": "_state",
    "SlimCheckpoint": "_callbacks", "SlimSummaries": "_callbacks", "StepLogger": "_callbacks",
    "StopAtStep": "_callbacks", "StopOnNaN": "_callbacks", "LossDivergedError": "_callbacks",
    "WorkerBackup": "_backup",
    "create_strategy": "_distribute", "distribute_dataset": "_distribute",
    "prepare_model_for_strategy": "_distribute",
    "TrainConfig": "_train", "TrainResult": "_train", "train": "_train",
    "EvalConfig": "_eval", "EvalResult": "_eval", "evaluate": "_eval",
    "evaluate_model": "_eval",
    "predict": "_infer", "load_model": "_infer", "export": "_infer",
    "export_saved_model": "_infer", "ExportConfig": "_infer",
    "demo": "_demo",
}


__getattr__, __dir__ = lazy_attributes(__name__, _HOMES)
