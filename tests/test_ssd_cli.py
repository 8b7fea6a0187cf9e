"""The SSD commands: `kslim train/eval` routed to the detection drivers with
train_ssd_network.py's and eval_ssd_network.py's flags, `kslim detect` (printed boxes,
drawn PNGs) and `kslim export` (a SavedModel serving encoded images), checked against
`model.detect` on the same images."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

import kslim
from kslim.detection._export import detect_images, export_detection_saved_model
from ssd_helpers import write_tiny_shapes
from training_helpers import run_cli


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    return write_tiny_shapes(tmp_path_factory.mktemp("shapes"), train=16, test=5)


@pytest.fixture(scope="module")
def checkpoint(shapes_dir, tmp_path_factory):
    train_dir = tmp_path_factory.mktemp("train")
    code, out, err = run_cli(
        "train", "--model_name=ssd_demo", "--dataset_name=shapes",
        f"--dataset_dir={shapes_dir}", f"--train_dir={train_dir}", "--batch_size=4",
        "--max_number_of_steps=2", "--optimizer=adam", "--opt_epsilon=1e-8",
        "--learning_rate=0.001", "--loss_alpha=1.5", "--negative_ratio=2",
        "--match_threshold=0.45", "--save_interval_secs=0", "--verbose=0",
        "--log_every_n_steps=1", "--seed=1")
    assert code == 0, err
    assert re.search(r"global step 2: loss = [0-9.]+ ", out)
    assert f"Finished at global step 2; checkpoint {train_dir}/model.ckpt-2" in out
    return f"{train_dir}/model.ckpt-2"


@pytest.fixture(scope="module")
def images(shapes_dir, tmp_path_factory):
    """Two test canvases as files: a JPEG and a PNG of another size (120x80)."""
    folder = tmp_path_factory.mktemp("images")
    split = kslim.data.get_split("shapes", "test", shapes_dir)
    first, second = [r[0].numpy() for r in split.dataset().take(2)]
    jpeg, png = str(folder / "a.jpg"), str(folder / "b.png")
    tf.io.write_file(jpeg, tf.io.encode_jpeg(first, quality=95))
    resized = tf.cast(tf.image.resize(second, (120, 80)), tf.uint8)
    tf.io.write_file(png, tf.io.encode_png(resized))
    return [jpeg, png]


def _expected(model, path, threshold):
    """model.detect on ssd_vgg's eval preprocessing of the file, boxes in pixels."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    preprocess = kslim.preprocess.get_preprocessing("ssd_vgg", is_training=False)
    inputs, _, _, bbox_img = preprocess(image, tf.zeros([0], tf.int64), tf.zeros([0, 4]),
                                        out_shape=(96, 96))
    found = model.detect(inputs[None], select_threshold=threshold, bbox_img=bbox_img,
                         image_size=tf.shape(image)[:2], max_detections=100)
    n = int(found["num_detections"][0])
    return (found["classes"][0, :n].numpy(), found["scores"][0, :n].numpy(),
            found["boxes"][0, :n].numpy())


def test_eval_prints_per_class_ap_and_the_map_line(checkpoint, shapes_dir, tmp_path):
    code, out, err = run_cli(
        "eval", "--model_name=ssd_demo", "--dataset_name=shapes", f"--dataset_dir={shapes_dir}",
        "--dataset_split_name=test", f"--checkpoint_path={checkpoint}",
        f"--eval_dir={tmp_path}", "--batch_size=2", "--eval_resize=4", "--keep_top_k=50",
        "--select_top_k=100", "--nms_threshold=0.5", "--matching_threshold=0.3",
        "--difficult_rule=voc")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert "(global step 2, 5 images of shapes/test, difficult rule voc):" in lines[0]
    assert [line.split()[:2] for line in lines[1:4]] == [["1", "circle"], ["2", "square"],
                                                        ["3", "triangle"]]
    assert re.fullmatch(r"AP_VOC07/mAP=[0-9.e-]+ AP_VOC12/mAP=[0-9.e-]+", lines[-1])
    code, _, err = run_cli("eval", "--model_name=ssd_demo", "--eval_resize=7")
    assert code == 2 and "--eval_resize: invalid choice: 7" in err


def test_detect_prints_boxes_and_draws_them(checkpoint, images, tmp_path):
    threshold = 0.2
    code, out, err = run_cli("detect", *images, "--model_name=ssd_demo",
                             f"--weights={checkpoint}", f"--output={tmp_path}",
                             f"--select_threshold={threshold}", "--labels=shapes")
    assert code == 0, err
    model = kslim.models.create_model("ssd_demo", num_classes=4, weights=checkpoint)
    printed = out.strip().splitlines()
    for path, (w, h) in zip(images, ((96, 96), (80, 120))):
        classes, scores, boxes = _expected(model, path, threshold)
        assert len(classes), "no box above the threshold: the comparison would be empty"
        header = printed.index(next(p for p in printed if p.startswith(path)))
        assert printed[header] == (f"{path} ({w}x{h}): {len(classes)} boxes -> "
                                   f"{tmp_path}/{os.path.basename(path).split('.')[0]}.png")
        rows = printed[header + 1:header + 1 + len(classes)]
        names = ("none", "circle", "square", "triangle")
        for row, c, s, b in zip(rows, classes, scores, boxes):
            assert row.split()[:2] == [names[c], f"{s:.3f}"]
            values = [float(v) for v in re.findall(r"=([-0-9.]+)", row)]
            np.testing.assert_allclose(values, np.clip(b, 0, [h, w, h, w]), atol=0.051)
        drawn = tf.io.decode_png(tf.io.read_file(
            f"{tmp_path}/{os.path.basename(path).split('.')[0]}.png")).numpy()
        assert drawn.shape == (h, w, 3)
        original = tf.io.decode_image(tf.io.read_file(path), channels=3).numpy()
        assert (drawn != original).any(axis=-1).sum() > 0  # the frames
    code, _, err = run_cli("detect", str(tmp_path / "missing.jpg"), "--model_name=ssd_demo",
                           f"--weights={checkpoint}")
    assert code == 1 and "does not exist" in err
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    code, _, err = run_cli("detect", str(tmp_path / "bad.jpg"), "--model_name=ssd_demo",
                           f"--weights={checkpoint}")
    assert code == 1 and f"cannot decode image '{tmp_path}/bad.jpg'" in err


def test_export_serves_encoded_images_as_detect_does(checkpoint, images, tmp_path):
    code, out, err = run_cli("export", "--model_name=ssd_demo", f"--weights={checkpoint}",
                             f"--output_dir={tmp_path}/cli", "--dataset_name=shapes")
    assert code == 0, err
    served = tf.saved_model.load(f"{tmp_path}/cli").signatures["serving_default"]
    assert sorted(served.structured_outputs) == ["boxes", "boxes_relative", "class_names",
                                                 "classes", "num_detections", "scores"]
    # The same signature at a low threshold, against kslim detect on the same files.
    model = kslim.models.create_model("ssd_demo", num_classes=4, weights=checkpoint)
    export_detection_saved_model(model, tmp_path / "low", image_size=96, select_threshold=0.2,
                                 labels=["none", "circle", "square", "triangle"])
    served = tf.saved_model.load(str(tmp_path / "low")).signatures["serving_default"]
    encoded = tf.constant([open(p, "rb").read() for p in images])
    out = served(images=encoded)
    found = detect_images(images, "ssd_demo", checkpoint, select_threshold=0.2,
                          labels="shapes")
    for i, result in enumerate(found):
        n = int(out["num_detections"][i])
        assert n == len(result.detections) > 0
        np.testing.assert_array_equal(out["classes"][i, :n], [d.class_id for d in
                                                              result.detections])
        np.testing.assert_allclose(out["scores"][i, :n], [d.score for d in result.detections],
                                   rtol=1e-6)
        np.testing.assert_allclose(out["boxes"][i, :n], [d.box for d in result.detections],
                                   atol=1e-3)
        assert [n.decode() for n in out["class_names"][i, :n].numpy()] == \
            [d.name for d in result.detections]
        assert not out["scores"][i, n:].numpy().any()


def test_export_of_an_ssd_net_is_a_saved_model_only(checkpoint, tmp_path):
    code, _, err = run_cli("export", "--model_name=ssd_demo", f"--weights={checkpoint}",
                           f"--output_file={tmp_path}/x.tflite", "--format=tflite")
    assert code != 0 and "SSD nets export as a SavedModel only" in err
