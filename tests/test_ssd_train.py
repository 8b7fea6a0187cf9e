"""SSD training and evaluation on kslim's drivers (`kslim.detection._train`): the
detection input pipeline, `train` with train_ssd_network.py's flags on `model.fit`
(one and two replicas), the vgg_16 warm start through `--checkpoint_model_scope`, a
class-count change through `weights=`, and `evaluate`'s VOC APs against the metric run
image by image."""

import re

import numpy as np
import pytest
import tensorflow as tf

import kslim
from kslim import compat, training
from kslim.compat import CheckpointError
from kslim.detection import VOCMetric, decode, detected_bboxes
from kslim.detection._train import detection_dataset
from ssd_helpers import VGG_CONVS, write_tiny_shapes, write_vgg16_checkpoint

TRAIN_FLAGS = dict(model_name="ssd_demo", dataset_name="shapes", batch_size=4,
                   max_number_of_steps=3, optimizer="adam", opt_epsilon=1e-8,
                   learning_rate=1e-3, weight_decay=1e-4, seed=0, save_interval_secs=0,
                   verbose="0", log_every_n_steps=1,
                   # train_ssd_network.py's loss flags, away from their defaults
                   match_threshold=0.4, negative_ratio=2.0, loss_alpha=2.0)


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    return write_tiny_shapes(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(scope="module")
def trained(shapes_dir, tmp_path_factory):
    return training.train(dataset_dir=shapes_dir, train_dir=str(tmp_path_factory.mktemp("t")),
                          **TRAIN_FLAGS)


def _iou(a, b):
    h = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0)
    w = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0)
    inter = h * w
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_training_targets_encode_boxes_on_the_models_anchors(shapes_dir):
    model = kslim.models.create_model("ssd_demo", num_classes=4)
    split = kslim.data.get_split("shapes", "train", shapes_dir)
    images, targets = next(iter(detection_dataset(split, 6, model, is_training=True, seed=1)))
    n = sum(h * w * a for h, w, a in model.feature_shapes)
    assert images.shape == (6, 96, 96, 3)
    assert targets["labels"].shape == (6, n) and targets["localisations"].shape == (6, n, 4)
    labels, scores = targets["labels"].numpy(), targets["scores"].numpy()
    assert set(np.unique(labels)) <= {0, 1, 2, 3} and (labels > 0).any()
    np.testing.assert_array_equal(labels > 0, scores > 0)
    # Each matched anchor's target decodes (with the model's anchors and prior scaling)
    # to a ground-truth box whose IoU with the anchor is the target score.
    boxes = decode(targets["localisations"], model.anchors()).numpy()
    yref, xref, href, wref = kslim.detection.anchors.flat_anchors(model.anchors())
    anchor_boxes = np.stack([yref - href / 2, xref - wref / 2, yref + href / 2,
                             xref + wref / 2], -1)
    matched = labels > 0
    np.testing.assert_allclose(_iou(boxes, anchor_boxes[None])[matched], scores[matched],
                               atol=1e-4)
    assert (scores[matched] > 0.5).any()  # positives for the loss


def test_eval_batches_pad_the_ground_truth(shapes_dir):
    model = kslim.models.create_model("ssd_demo", num_classes=4)
    split = kslim.data.get_split("shapes", "test", shapes_dir)
    batches = list(detection_dataset(split, 4, model, is_training=False))
    assert [int(b[0].shape[0]) for b in batches] == [4, 4, 1]
    records = list(split.dataset())
    row = 0
    for images, truth in batches:
        for b in range(images.shape[0]):
            _, _, labels, bboxes, difficults, _ = records[row]
            g = int(labels.shape[0])
            np.testing.assert_array_equal(truth["labels"][b, :g], labels)
            assert not truth["labels"][b, g:].numpy().any()  # 0 = padding
            np.testing.assert_allclose(truth["bboxes"][b, :g], bboxes)
            np.testing.assert_array_equal(truth["difficults"][b, :g], difficults)
            np.testing.assert_array_equal(truth["bbox_img"][b], [0, 0, 1, 1])
            row += 1
    assert row == len(records) == 9


def test_fit_runs_the_ssd_loss_with_the_train_flags(trained, shapes_dir):
    assert sorted(trained.losses) == [1, 2, 3] and trained.global_step == 3
    model = trained.model
    assert (model.match_threshold, model.negative_ratio, model.loss_alpha) == (0.4, 2.0, 2.0)
    reader = tf.train.load_checkpoint(trained.checkpoint)
    assert reader.get_tensor("global_step") == 3
    assert reader.get_variable_to_shape_map()["ssd_demo/block4_box/conv_cls/weights"] == \
        [3, 3, 96, 16]
    # Step 1's logged loss is SSD-Tensorflow's SSD-300 loss with the flags (and the
    # weight decay) on the first batch, from the seeded initial weights.
    tf.keras.utils.set_random_seed(0)
    fresh = kslim.models.create_model("ssd_demo", num_classes=4, weight_decay=1e-4)
    split = kslim.data.get_split("shapes", "train", shapes_dir)
    ds = detection_dataset(split, 4, fresh, is_training=True, seed=0,
                           input_context=tf.distribute.InputContext(1, 0, 1))
    images, y = next(iter(ds))
    out = fresh(images, training=True)
    terms = kslim.detection.ssd_losses(out["logits"], out["localisations"], y["labels"],
                                       y["localisations"], y["scores"], match_threshold=0.4,
                                       negative_ratio=2.0, alpha=2.0)
    expected = float(tf.add_n(list(terms.values())) + tf.add_n(fresh.losses))
    np.testing.assert_allclose(trained.losses[1], expected, rtol=1e-4)


def test_two_clones_train_on_a_mirrored_strategy(shapes_dir, tmp_path):
    two = training.train(dataset_dir=shapes_dir, train_dir=str(tmp_path),
                         **{**TRAIN_FLAGS, "num_clones": 2, "batch_size": 2,
                            "max_number_of_steps": 2})
    assert isinstance(two.strategy, tf.distribute.MirroredStrategy)
    assert two.strategy.num_replicas_in_sync == 2
    assert two.global_step == 2 and np.isfinite(list(two.losses.values())).all()


SSD300_EXCLUDE = ",".join(f"ssd_300_vgg/{s}" for s in (
    "conv6", "conv7", "block8", "block9", "block10", "block11", "block4_box", "block7_box",
    "block8_box", "block9_box", "block10_box", "block11_box"))  # SSD-Tensorflow's README


def test_vgg16_checkpoint_warm_starts_the_backbone(shapes_dir, tmp_path, capsys):
    values = write_vgg16_checkpoint(tmp_path / "vgg_16.ckpt")
    # One step of ssd_300_vgg itself at its smallest input (257: block11 is then 1x1).
    flags = dict(model_name="ssd_300_vgg", dataset_name="shapes", dataset_dir=shapes_dir,
                 train_dir=str(tmp_path / "train"), max_number_of_steps=1, verbose="0",
                 train_image_size=257, batch_size=1, optimizer="sgd", learning_rate=1e-4,
                 checkpoint_path=str(tmp_path / "vgg_16.ckpt"),
                 checkpoint_model_scope="vgg_16")
    # Stage 1 of SSD-Tensorflow's README: restore the backbone, train the rest.
    result = training.train(**flags, checkpoint_exclude_scopes=SSD300_EXCLUDE,
                            trainable_scopes=SSD300_EXCLUDE)
    out = capsys.readouterr().out
    assert "(ssd_300_vgg <- vgg_16): loaded 13 layers (26 variables): conv1/conv1_1, " \
           "conv1/conv1_2, conv2/conv2_1" in out
    fresh = re.search(r"starting fresh: (\d+) layers \((\d+) variables\): (.*)", out)
    assert fresh.group(1, 2) == ("23", "45")  # 10 extra convs, 12 head convs, gamma
    assert fresh.group(3).startswith("conv6, conv7, block8/conv1x1")
    assert "unused in the checkpoint: 6 variables (vgg_16/fc6, vgg_16/fc7, vgg_16/fc8)" in out
    weights = compat.slim_variables(result.model)
    assert len(result.model.trainable_weights) == 45
    assert result.global_step == 1 and np.isfinite(result.losses[1])
    assert sorted(result.warm_start.loaded) == sorted(
        f"ssd_300_vgg/{s}/{leaf}" for s in VGG_CONVS for leaf in ("weights", "biases"))
    for scope in VGG_CONVS:  # restored, and frozen by --trainable_scopes during the step
        for leaf in ("weights", "biases"):
            np.testing.assert_array_equal(weights[f"ssd_300_vgg/{scope}/{leaf}"].numpy(),
                                          values[f"vgg_16/{scope}/{leaf}"])
    # Without the exclude list the names SSD's own layers would need are missing: an
    # error naming them and the renamed name looked for, nothing loaded.
    config = training.TrainConfig(**{k: v for k, v in flags.items() if k != "train_dir"})
    before = weights["ssd_300_vgg/conv6/weights"].numpy()
    with pytest.raises(CheckpointError, match=r"ssd_300_vgg/conv6/weights: not in the "
                                              r"checkpoint \(looked for 'vgg_16/conv6/weights'"):
        training.warm_start(result.model, config.checkpoint_path,
                            checkpoint_exclude_scopes=None,
                            ignore_missing_vars=config.ignore_missing_vars,
                            checkpoint_model_scope=config.checkpoint_model_scope)
    np.testing.assert_array_equal(weights["ssd_300_vgg/conv6/weights"].numpy(), before)


def test_ssd_checkpoint_with_another_class_count_loads_all_but_the_class_heads(trained):
    model = kslim.models.create_model("ssd_demo", num_classes=3, weights=trained.checkpoint)
    reader = tf.train.load_checkpoint(trained.checkpoint)
    for name, variable in compat.slim_variables(model).items():
        stored = reader.get_tensor(name)
        if "/conv_cls/" in name:
            assert stored.shape[-1] == 16 and variable.shape[-1] == 12, name  # 4 anchors
        else:
            np.testing.assert_array_equal(variable.numpy(), stored, err_msg=name)


def _metric_image_by_image(model, split, **options):
    """eval_ssd_network.py's chain with batch size 1 (no padding)."""
    preprocess = kslim.preprocess.get_preprocessing("ssd_vgg", is_training=False)
    metric = VOCMetric(4, matching_threshold=options["matching_threshold"])
    for image, _, labels, bboxes, difficults, _ in split.dataset():
        image, _, _, _ = preprocess(image, labels, bboxes, out_shape=(96, 96))
        out = model(image[None], training=False)
        boxes = decode(out["localisations"], model.anchors())
        detections = detected_bboxes(tf.nn.softmax(out["logits"]), boxes,
                                     select_threshold=0.01, nms_threshold=0.45)
        metric.update(detections, labels[None], bboxes[None], difficults[None])
    return metric.result()


def test_evaluate_gives_the_metric_of_eval_ssd_network(trained, shapes_dir, tmp_path):
    import io

    stream = io.StringIO()
    results = training.evaluate(model_name="ssd_demo", dataset_name="shapes",
                                dataset_dir=shapes_dir, checkpoint_path=trained.checkpoint,
                                eval_dir=str(tmp_path), batch_size=4,
                                matching_threshold=0.3, stream=stream)
    lines = stream.getvalue().strip().splitlines()
    assert re.fullmatch(r"AP_VOC07/mAP=(\S+) AP_VOC12/mAP=(\S+)", lines[-1])
    assert [line.split()[1] for line in lines[1:4]] == ["circle", "square", "triangle"]
    result = results[0]
    assert result.num_examples == 9 and result.global_step == 3
    model = kslim.models.create_model("ssd_demo", num_classes=4, weights=trained.checkpoint)
    split = kslim.data.get_split("shapes", "test", shapes_dir)
    expected = _metric_image_by_image(model, split, matching_threshold=0.3)
    assert sorted(result.metrics) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(result.metrics[key], value, rtol=1e-9, err_msg=key)
    assert max(v for k, v in expected.items() if "mAP" not in k) > 0  # not all zeros
    assert lines[-1] == (f"AP_VOC07/mAP={expected['AP_VOC07/mAP']!r} "
                         f"AP_VOC12/mAP={expected['AP_VOC12/mAP']!r}")


def test_detection_nets_need_a_detection_dataset(tmp_path):
    with pytest.raises(ValueError, match="ssd_demo is a detector: it needs a detection "
                                         "dataset .* got 'digits'"):
        training.train(model_name="ssd_demo", dataset_name="digits",
                       train_dir=str(tmp_path), max_number_of_steps=1)
