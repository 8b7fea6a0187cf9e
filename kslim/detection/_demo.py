"""`kslim demo --task=detection`: an SSD trained and scored on CPU in a few minutes.

1. Write the embedded `shapes` set (96x96 canvases with circles, squares, triangles;
   `kslim.data`) in SSD-Tensorflow's Pascal VOC TFRecord layout.
2. Train `ssd_demo` (`kslim.models.ssd_small`: a small trunk under `ssd_300_vgg`'s
   multibox heads) with `kslim train`'s driver: SSD-Tensorflow's matching in `tf.data`,
   its SSD-300 loss with hard negative mining, `ssd_vgg` training preprocessing,
   slim-format checkpoints.
3. Evaluate the checkpoint on the test split as `kslim eval` does (decode,
   `detected_bboxes`, `VOCMetric`): per-class AP, then
   `AP_VOC07/mAP=<float> AP_VOC12/mAP=<float>`.
4. Run `kslim detect` on a few test images and write them with their boxes drawn.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time

__all__ = ["DEMO_FLAGS", "DetectionDemoResult", "detection_demo"]

# The training run, in train_ssd_network.py's flag names. Adam with a usual epsilon
# (SSD-Tensorflow's --opt_epsilon=1.0 slows Adam down a lot on a run this short) and a
# polynomial decay to 1e-4 over the run: 1,600 steps of 16 are 12.8 epochs of the 2,000
# training canvases. Measured on a 2-core machine shared with other jobs (load ~8):
# training 197 s, 235 s in all, AP_VOC07/mAP 0.735 (batch 32 x 800 steps: 0.617).
DEMO_FLAGS = {
    "model_name": "ssd_demo",
    "dataset_name": "shapes",
    "batch_size": 16,
    "max_number_of_steps": 1600,
    "optimizer": "adam",
    "opt_epsilon": 1e-8,
    "learning_rate": 0.003,
    "learning_rate_decay_type": "polynomial",
    "end_learning_rate": 0.0001,
    "num_epochs_per_decay": 12.8,
    "weight_decay": 0.0001,
    "match_threshold": 0.5,
    "negative_ratio": 3.0,
    "loss_alpha": 1.0,
    "log_every_n_steps": 100,
    "save_interval_secs": 600,
    "num_preprocessing_threads": 2,
    "seed": 0,
}


@dataclasses.dataclass
class DetectionDemoResult:
    """The demo's numbers."""

    map_voc07: float
    map_voc12: float
    metrics: dict
    checkpoint: str
    work_dir: str
    seconds: float
    train_seconds: float


def detection_demo(work_dir: str | None = None, stream=None, **overrides) -> DetectionDemoResult:
    """Runs the detection demo; `overrides` change `DEMO_FLAGS`.

    Returns:
        A `DetectionDemoResult`.
    """
    from kslim.data._shapes import write_shapes
    from kslim.detection._export import detect_images
    from kslim.training._eval import evaluate
    from kslim.training._train import train

    stream = stream or sys.stdout
    start = time.time()
    work_dir = work_dir or tempfile.mkdtemp(prefix="kslim-detection-demo-")
    dataset_dir = os.path.join(work_dir, "shapes")
    train_dir = os.path.join(work_dir, "train")

    def say(message):
        print(message, file=stream, flush=True)

    say(f"[1/4] writing the embedded shapes set in SSD-Tensorflow's VOC layout to "
        f"{dataset_dir}")
    write_shapes(dataset_dir)

    flags = {**DEMO_FLAGS, **overrides, "dataset_dir": dataset_dir, "train_dir": train_dir}
    say("[2/4] training ssd_demo with model.fit: kslim train "
        + " ".join(f"--{k}={v}" for k, v in flags.items()))
    began = time.time()
    trained = train(**flags)
    train_seconds = time.time() - began
    say(f"      global step {trained.global_step} in {train_seconds:.0f} s, checkpoint "
        f"{trained.checkpoint}")

    say("[3/4] evaluating the checkpoint on the test split (VOC07 and VOC12 AP)")
    result = evaluate(model_name=flags["model_name"], dataset_name="shapes",
                      dataset_dir=dataset_dir, dataset_split_name="test",
                      checkpoint_path=trained.checkpoint,
                      eval_dir=os.path.join(work_dir, "eval"), batch_size=50,
                      stream=stream)[-1]

    say("[4/4] kslim detect on three test canvases, boxes drawn into "
        f"{os.path.join(work_dir, 'detections')}")
    samples = _test_images(dataset_dir, os.path.join(work_dir, "test_images"), 3)
    for found in detect_images(samples, flags["model_name"], trained.checkpoint,
                               labels="shapes", output_dir=os.path.join(work_dir,
                                                                        "detections")):
        boxes = ", ".join(f"{d.name} {d.score:.2f} ({', '.join(f'{v:.0f}' for v in d.box)})"
                          for d in found.detections[:4])
        say(f"      {os.path.basename(found.image)}: {boxes or 'nothing'}")
    elapsed = time.time() - start
    say(f"      {result.num_examples} test images, {elapsed:.0f} s in all; work folder "
        f"{work_dir}")
    say(f"AP_VOC07/mAP={result.map_voc07!r} AP_VOC12/mAP={result.map_voc12!r}")
    return DetectionDemoResult(result.map_voc07, result.map_voc12, result.metrics,
                               trained.checkpoint, work_dir, elapsed, train_seconds)


def _test_images(dataset_dir: str, folder: str, count: int) -> list[str]:
    """The first `count` test canvases as JPEG files (what `kslim detect` reads)."""
    import tensorflow as tf

    from kslim import data

    split = data.get_split("shapes", "test", dataset_dir)
    os.makedirs(folder, exist_ok=True)
    paths = []
    for index, record in enumerate(tf.data.TFRecordDataset(list(split.files)).take(count)):
        encoded = split.parse(record)["image/encoded"]
        path = os.path.join(folder, f"shapes_test_{index}.jpg")
        tf.io.write_file(path, encoded)
        paths.append(path)
    return paths
