"""Pascal VOC detection data: SSD-Tensorflow's TFRecord layout, the VOCdevkit converter,
the embedded `shapes` set, and bad input (records and XML files)."""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

import kslim
from kslim import cli
from kslim.data import _shapes

_SIZES = {"000005": (60, 80), "000007": (50, 40), "000009": (48, 64), "000012": (40, 40)}
# name -> [(class, xmin, ymin, xmax, ymax, difficult, truncated)]; 000012 has no object.
_OBJECTS = {
    "000005": [("chair", 10, 5, 40, 50, 1, 0), ("person", 41, 2, 80, 60, 0, 1)],
    "000007": [("car", 1, 1, 40, 30, 0, 0)],
    "000009": [("dog", 5, 6, 30, 40, 1, 1), ("horse", 20, 10, 64, 48, 0, 0)],
    "000012": [],
}
_SETS = {"trainval": ["000005", "000012", "000007"], "test": ["000009"]}


def _xml(name, objects, height, width, drop=None):
    parts = [f"<annotation><filename>{name}.jpg</filename>"]
    if drop != "size":
        size = "".join(f"<{k}>{v}</{k}>" for k, v in (("width", width), ("height", height), ("depth", 3)) if k != drop)
        parts.append(f"<size>{size}</size>")
    for cls, xmin, ymin, xmax, ymax, difficult, truncated in objects:
        box = "".join(
            f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), (xmin, ymin, xmax, ymax)) if k != drop
        )
        parts.append(
            f"<object><name>{cls}</name><pose>Left</pose><truncated>{truncated}</truncated>"
            f"<difficult>{difficult}</difficult><bndbox>{box}</bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


def _image(name):
    height, width = _SIZES[name]
    rng = np.random.default_rng(int(name))
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def make_devkit(root, objects=_OBJECTS, sets=_SETS, sizes=_SIZES):
    """A tiny VOCdevkit/VOC2007: JPEGs, annotation XMLs, ImageSets/Main lists."""
    voc = root / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    for name, objs in objects.items():
        height, width = sizes[name]
        (voc / "Annotations" / f"{name}.xml").write_text(_xml(name, objs, height, width))
        (voc / "JPEGImages" / f"{name}.jpg").write_bytes(tf.io.encode_jpeg(_image(name), quality=100).numpy())
    for set_name, names in sets.items():
        (voc / "ImageSets" / "Main" / f"{set_name}.txt").write_text("".join(n + "\n" for n in names))
    return voc


def _items(split):
    return [[np.asarray(t) for t in item] for item in split.dataset()]


def test_convert_devkit_and_read_back(tmp_path):
    voc = make_devkit(tmp_path)
    out = tmp_path / "records"
    kslim.data.convert("pascalvoc_2007", str(out), str(tmp_path / "VOCdevkit"))
    assert sorted(p.name for p in out.iterdir()) == [
        "kslim_dataset.json", "labels.txt", "voc_2007_test_000.tfrecord", "voc_2007_train_000.tfrecord",
    ]  # fmt: skip
    for split_name, set_name in (("train", "trainval"), ("test", "test")):
        split = kslim.data.get_split("pascalvoc_2007", split_name, str(out))
        assert split.num_samples == len(_SETS[set_name]) and split.num_classes == 21
        items = _items(split)
        assert len(items) == len(_SETS[set_name])
        for name, (image, shape, labels, bboxes, difficult, truncated) in zip(_SETS[set_name], items):
            height, width = _SIZES[name]
            objs = _OBJECTS[name]
            want = tf.io.decode_jpeg(tf.io.encode_jpeg(_image(name), quality=100)).numpy()
            np.testing.assert_array_equal(image, want)
            np.testing.assert_array_equal(shape, [height, width, 3])
            assert labels.dtype == np.int64 and bboxes.dtype == np.float32 and bboxes.shape == (len(objs), 4)
            assert [split.labels_to_names[int(v)] for v in labels] == [o[0] for o in objs]
            want_boxes = np.array([[o[2] / height, o[1] / width, o[4] / height, o[3] / width] for o in objs], np.float32)
            np.testing.assert_array_equal(bboxes, want_boxes.reshape(-1, 4))
            # The flags SSD-Tensorflow's converter loses (always 0 there).
            np.testing.assert_array_equal(difficult, [o[5] for o in objs])
            np.testing.assert_array_equal(truncated, [o[6] for o in objs])
    # The keys and types of SSD-Tensorflow's _convert_to_example, with format b"JPEG".
    record = next(iter(tf.data.TFRecordDataset(str(out / "voc_2007_test_000.tfrecord")))).numpy()
    features = tf.train.Example.FromString(record).features.feature
    kinds = {key: features[key].WhichOneof("kind") for key in features}
    assert kinds == {
        **{f"image/{k}": "int64_list" for k in ("height", "width", "channels", "shape")},
        **{f"image/object/bbox/{k}": "float_list" for k in ("xmin", "xmax", "ymin", "ymax")},
        **{f"image/object/bbox/{k}": "int64_list" for k in ("label", "difficult", "truncated")},
        **{k: "bytes_list" for k in ("image/object/bbox/label_text", "image/format", "image/encoded")},
    }
    assert features["image/format"].bytes_list.value == [b"JPEG"]
    assert features["image/encoded"].bytes_list.value == [(voc / "JPEGImages" / "000009.jpg").read_bytes()]
    assert features["image/object/bbox/label_text"].bytes_list.value == [b"dog", b"horse"]
    info = json.loads((out / "kslim_dataset.json").read_text())
    assert info["conversion"]["train"] == {
        "images": 3, "objects": 3, "difficult": 1, "images_without_objects": 1, "image_set": "trainval",
    }  # fmt: skip
    # A second conversion onto the dataset is refused unless overwrite, and leaves it alone.
    before = (out / "voc_2007_train_000.tfrecord").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        kslim.data.convert("pascalvoc_2007", str(out), str(voc))
    kslim.data.convert("pascalvoc_2007", str(out), str(voc), overwrite=True, image_sets={"train": "all"})
    assert kslim.data.get_split("pascalvoc_2007", "train", str(out)).num_samples == 4  # every XML
    assert (out / "voc_2007_train_000.tfrecord").read_bytes() != before


def _ssd_tensorflow_example(image_data, shape, boxes, labels, difficult=None, truncated=None):
    """An example with the keys and types of SSD-Tensorflow's `_convert_to_example`."""
    f = tf.train.Feature
    ints = lambda v: f(int64_list=tf.train.Int64List(value=list(v)))  # noqa: E731
    floats = lambda v: f(float_list=tf.train.FloatList(value=list(v)))  # noqa: E731
    feature = {
        "image/height": ints([shape[0]]), "image/width": ints([shape[1]]), "image/channels": ints([shape[2]]),
        "image/shape": ints(shape),
        "image/object/bbox/xmin": floats([b[1] for b in boxes]), "image/object/bbox/xmax": floats([b[3] for b in boxes]),
        "image/object/bbox/ymin": floats([b[0] for b in boxes]), "image/object/bbox/ymax": floats([b[2] for b in boxes]),
        "image/object/bbox/label": ints(labels),
        "image/object/bbox/label_text": f(bytes_list=tf.train.BytesList(value=[b"x"] * len(labels))),
        "image/format": f(bytes_list=tf.train.BytesList(value=[b"JPEG"])),
        "image/encoded": f(bytes_list=tf.train.BytesList(value=[image_data])),
    }  # fmt: skip
    if difficult is not None:
        feature["image/object/bbox/difficult"] = ints(difficult)
    if truncated is not None:
        feature["image/object/bbox/truncated"] = ints(truncated)
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write(path, examples):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for example in examples:
            writer.write(example)


_JPEG = tf.io.encode_jpeg(np.full((20, 30, 3), 90, np.uint8)).numpy()


def test_reads_ssd_tensorflow_records_as_written(tmp_path):
    box = [0.1, 0.2, 0.5, 0.9]
    _write(tmp_path / "voc_2012_train_000.tfrecord", [_ssd_tensorflow_example(_JPEG, [20, 30, 3], [box], [15], [0], [0])])
    # Another writer that leaves the flags out: read as 0.
    _write(tmp_path / "voc_2012_train_001.tfrecord", [_ssd_tensorflow_example(_JPEG, [20, 30, 3], [box, box], [1, 2])])
    split = kslim.data.get_split("pascalvoc_2012", "train", str(tmp_path))
    assert split.num_samples == 17125  # SSD-Tensorflow's SPLITS_TO_SIZES when no kslim_dataset.json
    assert split.labels_to_names[15] == "person"
    first, second = list(split.dataset(as_dict=True))
    assert first["image"].shape == (20, 30, 3) and first["object/label"].numpy().tolist() == [15]
    np.testing.assert_array_equal(first["object/bbox"], np.float32([box]))
    assert second["object/difficult"].numpy().tolist() == [0, 0] == second["object/truncated"].numpy().tolist()
    assert second["record"] == 0 and second["file"].numpy().decode().endswith("_001.tfrecord")


_BAD_RECORDS = [  # (boxes, labels, what the error says)
    ([[0.1, 0.1, 0.5, 0.5]], [21], "object 0 has label 21, outside 1..20 \\(num_classes 21\\)"),
    ([[0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.5]], [3, 0], "object 1 has label 0, outside 1..20"),
    ([[0.1, 0.1, 0.5, 1.2]], [3], r"object 0 has box \(ymin, xmin, ymax, xmax\) \[0.1 0.1 0.5 1.2\]: outside \[0, 1\] or of zero area"),
    ([[0.1, 0.1, 0.1, 0.5]], [3], r"object 0 has box \(ymin, xmin, ymax, xmax\) \[0.1 0.1 0.1 0.5\]: outside \[0, 1\] or of zero area"),
    ([[0.1, 0.1, 0.5, 0.5]], [3, 4], r"object lists differ in length: 2 labels, ymin/xmin/ymax/xmax \[1 1 1 1\]"),
]


def test_bad_records_are_named_or_skipped_and_counted(tmp_path):
    good = _ssd_tensorflow_example(_JPEG, [20, 30, 3], [[0.1, 0.1, 0.5, 0.5]], [3], [0], [0])
    bad = [_ssd_tensorflow_example(_JPEG, [20, 30, 3], boxes, labels) for boxes, labels, _ in _BAD_RECORDS]
    _write(tmp_path / "voc_2007_test_000.tfrecord", [good] + bad + [good])
    split = kslim.data.get_split("pascalvoc_2007", "test", str(tmp_path))
    with pytest.raises(tf.errors.InvalidArgumentError, match=rf"voc_2007_test_000.tfrecord, record 1: {_BAD_RECORDS[0][2]}"):
        list(split.dataset())
    assert len(list(split.dataset(on_error="skip"))) == 2
    assert [(os.path.basename(s.file), s.record) for s in split.skipped] == [
        ("voc_2007_test_000.tfrecord", i) for i in range(1, 1 + len(_BAD_RECORDS))
    ]
    for skipped, (_, _, message) in zip(split.skipped, _BAD_RECORDS):
        assert re.search(message, skipped.reason), skipped.reason


def test_images_without_objects_are_kept_or_skipped_and_counted(tmp_path):
    empty = _ssd_tensorflow_example(_JPEG, [20, 30, 3], [], [], [], [])
    good = _ssd_tensorflow_example(_JPEG, [20, 30, 3], [[0.1, 0.1, 0.5, 0.5]], [3], [1], [0])
    _write(tmp_path / "voc_2007_test_000.tfrecord", [empty, good, empty])
    split = kslim.data.get_split("pascalvoc_2007", "test", str(tmp_path))
    items = _items(split)
    assert [len(item[2]) for item in items] == [0, 1, 0] and items[0][3].shape == (0, 4)
    assert len(list(split.dataset(skip_empty=True))) == 1
    assert [(s.record, s.reason) for s in split.skipped] == [(0, "it has no objects"), (2, "it has no objects")]


def _break(voc, name, text):
    (voc / "Annotations" / f"{name}.xml").write_text(text)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda voc: _break(voc, "000007", _xml("000007", _OBJECTS["000007"], 50, 40, drop="xmax")),
         r"000007.xml, object 0 <bndbox> has no <xmax>"),
        (lambda voc: _break(voc, "000005", _xml("000005", _OBJECTS["000005"], 60, 80, drop="size")),
         r"000005.xml has no <size>"),
        (lambda voc: _break(voc, "000005", _xml("000005", _OBJECTS["000005"], 60, 80, drop="height")),
         r"000005.xml has no <height>"),
        (lambda voc: _break(voc, "000005", _xml("000005", [("person", 1, 1, 5, 5, 0, 0), ("unicorn", 1, 1, 5, 5, 0, 0)], 60, 80)),
         r"000005.xml: unknown class 'unicorn'"),
        (lambda voc: _break(voc, "000005", _xml("000005", [("person", 1, 1, 5, 5, 0, 0), ("cat", 10, 5, 81, 50, 0, 0)], 60, 80)),
         r"000005.xml, object 1 \(cat\): box xmin=10 ymin=5 xmax=81 ymax=50 is outside the 80x60 image"),
        (lambda voc: _break(voc, "000005", _xml("000005", [("cat", 10, 5, 10, 50, 0, 0)], 60, 80)),
         r"000005.xml, object 0 \(cat\): .* or of zero area"),
        (lambda voc: _break(voc, "000005", _xml("000005", _OBJECTS["000005"], 61, 80)),
         r"000005.jpg is 80x60 but 000005.xml says 80x61"),
        (lambda voc: _break(voc, "000012", "<annotation><size>"), r"000012.xml is not a readable VOC annotation"),
        (lambda voc: (voc / "JPEGImages" / "000009.jpg").write_bytes(b"not a jpeg"), r"000009.jpg is not a JPEG"),
        (lambda voc: (voc / "JPEGImages" / "000009.jpg").unlink(), r"000009.jpg: cannot read the image"),
    ],
)  # fmt: skip
def test_bad_voc_sources_are_named_and_nothing_is_written(tmp_path, change, message):
    voc = make_devkit(tmp_path)
    change(voc)
    out = tmp_path / "records"
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        kslim.data.convert("pascalvoc_2007", str(out), str(voc))
    assert not out.exists() or not [p for p in out.iterdir()]


def test_convert_command_reports_the_counts(tmp_path, capsys):
    make_devkit(tmp_path)
    out = tmp_path / "records"
    args = ["data", "convert", "--dataset_name", "pascalvoc_2007", "--dataset_dir", str(out)]
    assert cli.main(args + ["--source", str(tmp_path / "VOCdevkit" / "VOC2007"), "--split_name", "test"]) == 0
    printed = capsys.readouterr().out
    assert "pascalvoc_2007 test: 1 examples in 1 file(s), 21 classes" in printed
    assert "from ImageSets/Main/test: 2 objects, 1 difficult, 0 images without objects" in printed
    assert sorted(p.name for p in out.glob("*.tfrecord")) == ["voc_2007_test_000.tfrecord"]
    grid = tmp_path / "grid.png"
    show = ["data", "show", "--dataset_name", "pascalvoc_2007", "--split_name", "test", "--dataset_dir", str(out)]
    assert cli.main(show + ["--output", str(grid)]) == 0
    assert "0: dog,horse" in capsys.readouterr().out
    drawn = tf.io.decode_png(grid.read_bytes()).numpy()
    assert (np.abs(drawn.astype(int) - [255, 230, 0]).sum(-1) == 0).sum() > 50  # the boxes, in yellow
    assert cli.main(args) == 1  # no --source
    assert "--source is required for pascalvoc_2007" in capsys.readouterr().err


def test_shapes_dataset_is_embedded_and_its_boxes_hold_the_shapes():
    split = kslim.data.get_split("shapes", "test")
    assert (split.num_samples, split.num_classes) == (300, 4)
    assert split.labels_to_names == {0: "none", 1: "circle", 2: "square", 3: "triangle"}
    assert os.path.basename(split.files[0]) == "shapes_test_000.tfrecord"
    # Deterministic: the records are the generator's drawings of seed 1, JPEG-encoded.
    rng = np.random.default_rng(_shapes.SPLITS["test"][1])
    counts = np.zeros(4, int)
    for i, (image, shape, labels, bboxes, difficult, truncated) in enumerate(split.dataset().take(40)):
        drawn, want_labels, want_boxes = _shapes.draw_shapes(rng)
        assert labels.numpy().tolist() == want_labels and 1 <= len(want_labels) <= 3
        np.testing.assert_allclose(bboxes.numpy() * 96, want_boxes, atol=1e-4)
        assert np.abs(image.numpy().astype(int) - drawn).mean() < 8  # JPEG (quality 95) of noise
        assert not difficult.numpy().any() and not truncated.numpy().any()
        counts[want_labels] += 1
        # Each object's colour fills much of its box (boxes never overlap).
        for box in want_boxes:
            cy, cx = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
            inside = drawn[box[0] : box[2], box[1] : box[3]].reshape(-1, 3).astype(int)
            assert (np.abs(inside - drawn[cy, cx]).sum(axis=1) == 0).mean() > 0.4
    assert (counts[1:] > 5).all()



def test_specs_hold_ssd_tensorflows_layouts():
    specs = kslim.data.DATASETS
    assert (specs["pascalvoc_2007"].file_pattern, specs["pascalvoc_2007"].split_sizes) == (
        "voc_2007_%s_*.tfrecord", {"train": 5011, "test": 4952},
    )  # fmt: skip
    assert (specs["pascalvoc_2012"].file_pattern, specs["pascalvoc_2012"].split_sizes) == (
        "voc_2012_%s_*.tfrecord", {"train": 17125},
    )  # fmt: skip
    names = specs["pascalvoc_2007"].default_labels
    assert len(names) == specs["pascalvoc_2007"].num_classes == 21
    assert (names.index("aeroplane"), names.index("person"), names.index("tvmonitor")) == (1, 15, 20)
    assert specs["shapes"].split_sizes == {"train": 2000, "test": 300} and specs["shapes"].num_classes == 4
