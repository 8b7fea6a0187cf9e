"""kslim.data readers: slim's layouts, bad input, and the tf.data input pipeline."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

import kslim.data as D
from data_helpers import (
    bytes_feature,
    digit_images,
    float_feature,
    int64_feature,
    jpeg,
    photo_crops,
    png,
    read_all,
    slim_example,
    write_records,
)

# -- specs: slim's sizes, classes and file patterns -----------------------------------------


@pytest.mark.parametrize(
    "name,pattern,splits,num_classes",
    [
        ("mnist", "mnist_%s.tfrecord", {"train": 60000, "test": 10000}, 10),
        ("cifar10", "cifar10_%s.tfrecord", {"train": 50000, "test": 10000}, 10),
        ("flowers", "flowers_%s_*.tfrecord", {"train": 3320, "validation": 350}, 5),
        ("imagenet", "%s-*", {"train": 1281167, "validation": 50000}, 1001),
        ("digits", "digits_%s.tfrecord", {"train": 1442, "test": 355}, 10),
    ],
)
def test_specs_hold_slims_layouts(name, pattern, splits, num_classes):
    spec = D.DATASETS[name]
    assert spec.file_pattern == pattern
    assert spec.split_sizes == splits
    assert spec.num_classes == num_classes


def test_spec_sizes_and_classes_reach_the_split(tmp_path):
    images, labels = digit_images()
    write_records(tmp_path / "mnist_test.tfrecord", [slim_example(png(images[0]), 3)])
    split = D.get_split("mnist", "test", tmp_path)
    assert (split.num_samples, split.num_classes) == (10000, 10)
    assert split.labels_to_names[6] == "six"  # no labels.txt: the built-in names
    assert split.files == (str(tmp_path / "mnist_test.tfrecord"),)


# -- records written by hand with slim's feature spec ---------------------------------------


def test_reads_slims_mnist_records_raw_and_png(tmp_path):
    images, labels = digit_images()
    records = [
        # slim's mnist reader defaults image/format to 'raw': uint8 pixels, no format key.
        slim_example(images[0].tobytes(), int(labels[0]), image_format=None),
        slim_example(images[1].tobytes(), int(labels[1]), image_format=b"raw"),
        slim_example(png(images[2]), int(labels[2]), image_format=b"png"),
    ]
    write_records(tmp_path / "mnist_train.tfrecord", records)
    (tmp_path / "labels.txt").write_text("0:zero\n1:one\n2:two\n3:three\n4:four\n5:five\n6:size\n7:seven\n8:eight\n9:nine\n")
    split = D.get_split("mnist", "train", tmp_path)
    got_images, got_labels = read_all(split)
    assert got_labels == [int(v) for v in labels[:3]]
    for got, want in zip(got_images, images[:3]):
        assert got.shape == (28, 28, 1) and got.dtype == np.uint8
        np.testing.assert_array_equal(got[..., 0], want)
    assert split.labels_to_names[6] == "size"  # labels.txt wins, typo and all


def test_reads_slims_cifar_and_flowers_records(tmp_path):
    crops = photo_crops(4, size=(32, 32))
    write_records(tmp_path / "cifar10_test.tfrecord", [slim_example(png(c), i) for i, c in enumerate(crops)])
    got, labels = read_all(D.get_split("cifar10", "test", tmp_path))
    assert labels == [0, 1, 2, 3]
    for a, b in zip(got, crops):
        np.testing.assert_array_equal(a, b)

    big = photo_crops(3, size=(40, 56), seed=1)
    for shard in range(2):
        records = [slim_example(jpeg(big[i]), i, image_format=b"jpg") for i in range(shard, 3, 2)]
        write_records(tmp_path / f"flowers_train_{shard:05d}-of-00002.tfrecord", records)
    split = D.get_split("flowers", "train", tmp_path)
    assert len(split.files) == 2 and split.num_samples == 3320
    got, labels = read_all(split)
    assert labels == [0, 2, 1]  # file order: shard 0 then shard 1
    assert all(g.shape == (40, 56, 3) for g in got)
    np.testing.assert_array_equal(got[0], tf.io.decode_jpeg(jpeg(big[0])).numpy())


def test_reads_imagenet_records_with_boxes_and_text(tmp_path):
    crop = photo_crops(1, size=(40, 50))[0]
    extra = {
        "image/class/text": bytes_feature(b"tench, Tinca tinca"),
        "image/class/synset": bytes_feature(b"n01440764"),
        "image/object/bbox/xmin": float_feature([0.1, 0.5]),
        "image/object/bbox/ymin": float_feature([0.2, 0.6]),
        "image/object/bbox/xmax": float_feature([0.3, 0.7]),
        "image/object/bbox/ymax": float_feature([0.4, 0.8]),
        "image/object/bbox/label": int64_feature([1, 1]),
        "image/height": int64_feature([40]),
        "image/width": int64_feature([50]),
    }
    write_records(tmp_path / "validation-00000-of-00001", [slim_example(jpeg(crop), 1, b"JPEG", **extra)])
    split = D.get_split("imagenet", "validation", tmp_path)
    assert split.num_classes == 1001 and split.labels_to_names is None
    item = next(split.dataset(as_dict=True).as_numpy_iterator())
    assert item["label"] == 1 and item["image"].shape == (40, 50, 3)
    assert item["label_text"] == b"tench, Tinca tinca" and item["synset"] == b"n01440764"
    np.testing.assert_allclose(item["object/bbox"], [[0.2, 0.1, 0.4, 0.3], [0.6, 0.5, 0.8, 0.7]])
    np.testing.assert_array_equal(item["object/label"], [1, 1])
    assert item["file"].decode().endswith("validation-00000-of-00001") and item["record"] == 0


def test_label_file_round_trip(tmp_path):
    names = {0: "background", 1: "tench, Tinca tinca", 2: "a:b"}
    D.write_label_file(names, str(tmp_path))
    assert (tmp_path / "labels.txt").read_text() == "0:background\n1:tench, Tinca tinca\n2:a:b\n"
    assert D.read_label_file(str(tmp_path)) == names


# -- bad input: clear errors naming the file, or an explicit skip-and-count mode -------------


def _mnist_dir(tmp_path, records, name="mnist_train.tfrecord"):
    write_records(tmp_path / name, records)
    return D.get_split("mnist", "train", tmp_path)


def _good_records(count):
    images, labels = digit_images()
    return [slim_example(png(images[i]), int(labels[i])) for i in range(count)]


def test_truncated_tfrecord_is_reported_with_its_name(tmp_path):
    split = _mnist_dir(tmp_path, _good_records(5))
    path = split.files[0]
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-40])
    with pytest.raises(ValueError, match=r"mnist_train\.tfrecord is truncated.*record 4 .*4 records before"):
        split.dataset()
    kept = list(split.dataset(on_error="skip").as_numpy_iterator())
    assert len(kept) == 4
    assert [(os.path.basename(s.file), s.record) for s in split.skipped] == [("mnist_train.tfrecord", 4)]
    assert "truncated" in split.skipped[0].reason


def test_undecodable_image_names_the_file_and_record(tmp_path):
    records = _good_records(3)
    records.insert(1, slim_example(b"this is not an image", 4))
    split = _mnist_dir(tmp_path, records)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"mnist_train\.tfrecord, record 1: its image/encoded bytes are not"):
        list(split.dataset())
    kept = list(split.dataset(on_error="skip").as_numpy_iterator())
    assert len(kept) == 3
    assert [(os.path.basename(s.file), s.record) for s in split.skipped] == [("mnist_train.tfrecord", 1)]


def test_missing_label_and_wrong_raw_size_are_errors(tmp_path):
    images, _ = digit_images()
    split = _mnist_dir(tmp_path, [slim_example(png(images[0]), None)])
    with pytest.raises(tf.errors.InvalidArgumentError, match="record 0: it has no image/class/label"):
        list(split.dataset())
    split = _mnist_dir(tmp_path, [slim_example(b"\0" * 100, 1, image_format=b"raw")])
    with pytest.raises(tf.errors.InvalidArgumentError, match="raw image has the wrong number of bytes"):
        list(split.dataset())


def test_corrupt_record_found_by_verify(tmp_path):
    split = _mnist_dir(tmp_path, _good_records(4))
    path = split.files[0]
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF  # inside a payload: the framing is intact, the CRC is not
    open(path, "wb").write(bytes(data))
    with pytest.raises(ValueError, match=r"mnist_train\.tfrecord, record 2: cannot be read .*corrupted record at"):
        split.verify()
    write_records(tmp_path / "mnist_test.tfrecord", _good_records(4))
    assert D.get_split("mnist", "test", tmp_path).verify() == 4


def test_missing_split_folder_and_names(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No files match .*mnist_train\.tfrecord.*kslim data convert"):
        D.get_split("mnist", "train", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.get_split("mnist", "train", tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split name 'validation' was not recognized.*train, test"):
        D.get_split("mnist", "validation", tmp_path)
    with pytest.raises(ValueError, match="dataset_dir is required"):
        D.get_split("cifar10", "train")
    with pytest.raises(ValueError, match="Unknown dataset 'svhn'"):
        D.get_split("svhn", "train", tmp_path)
    with pytest.raises(ValueError, match="on_error"):
        _mnist_dir(tmp_path, _good_records(1)).dataset(on_error="ignore")


def test_bad_label_file_names_file_and_line(tmp_path):
    (tmp_path / "labels.txt").write_text("0:zero\nnot a label line\n")
    with pytest.raises(ValueError, match=r"labels\.txt, line 2"):
        D.read_label_file(str(tmp_path))


# -- the input pipeline ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_dataset(tmp_path_factory):
    """12 real-photo records in 3 flowers-layout shards, labels 0..11."""
    folder = tmp_path_factory.mktemp("photos")
    crops = photo_crops(12, size=(60, 80), seed=4)
    for shard in range(3):
        records = [slim_example(jpeg(crops[i]), i, b"jpg") for i in range(shard, 12, 3)]
        write_records(folder / f"flowers_train_{shard:05d}-of-00003.tfrecord", records)
    return folder


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_pipeline_batches_preprocessed_images(photo_dataset):
    split = D.get_split("flowers", "train", photo_dataset)
    ds = D.input_pipeline(split, 5, "inception_v1", image_size=40, labels_offset=1)
    batches = _batches(ds)
    assert [x.shape for x, _ in batches] == [(5, 40, 40, 3), (5, 40, 40, 3), (2, 40, 40, 3)]
    assert np.concatenate([y for _, y in batches]).tolist() == [i - 1 for i in (0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11)]
    assert all(x.dtype == np.float32 and -1 <= x.min() and x.max() <= 1 for x, _ in batches)


def test_pipeline_is_deterministic_under_a_seed(photo_dataset):
    split = D.get_split("flowers", "train", photo_dataset)

    def run(seed):
        ds = D.input_pipeline(split, 4, "inception", image_size=32, is_training=True, seed=seed, num_parallel=4)
        return _batches(ds.take(6))  # two epochs of 12: reshuffled, re-augmented

    first, again, other = run(7), run(7), run(8)
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, other))
    labels = np.concatenate([y for _, y in first])
    assert sorted(labels[:12]) == list(range(12)) and sorted(labels[12:]) == list(range(12))
    assert labels[:12].tolist() != labels[12:].tolist()  # each epoch reshuffled


def test_crop_while_decoding_gives_the_same_crops(photo_dataset):
    split = D.get_split("flowers", "train", photo_dataset)

    def run(fused):
        ds = D.input_pipeline(split, 6, "inception", image_size=40, is_training=True, seed=3, crop_while_decoding=fused)
        return _batches(ds.take(2))

    for (x1, y1), (x2, y2) in zip(run(True), run(False)):
        np.testing.assert_array_equal(y1, y2)
        assert np.abs(x1 - x2).mean() < 5e-3  # JPEG chroma at the crop edge only


@pytest.mark.parametrize("files", ["several", "one"])
def test_pipeline_shards_across_two_workers(photo_dataset, tmp_path, files):
    if files == "several":  # 3 files, 2 workers: each reads whole files
        split = D.get_split("flowers", "train", photo_dataset)
        options = dict(preprocess_fn="inception", image_size=24)
    else:  # 1 file, 2 workers: each reads every other record
        split = _mnist_dir(tmp_path, _good_records(9))
        options = {}
    everything = [int(v) for _, y in _batches(D.input_pipeline(split, 4, **options)) for v in y]
    seen = []
    for worker in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=worker)
        ds = D.input_pipeline(split, 4, input_context=context, shuffle=True, seed=1, **options)
        seen.append([int(v) for _, y in _batches(ds) for v in y])
    assert seen[0] and seen[1]
    assert len(set(everything)) == len(everything)  # labels identify records here
    assert sorted(seen[0] + seen[1]) == sorted(everything)
    assert not set(seen[0]) & set(seen[1])


def test_pipeline_on_a_distribution_strategy(photo_dataset):
    split = D.get_split("flowers", "train", photo_dataset)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    def dataset_fn(context):
        return D.input_pipeline(split, 2, "vgg", image_size=32, is_training=True, seed=0, input_context=context)

    dist = strategy.distribute_datasets_from_function(dataset_fn)
    images, labels = next(iter(dist))
    per_replica = strategy.experimental_local_results(images)
    assert [tuple(t.shape) for t in per_replica] == [(2, 32, 32, 3), (2, 32, 32, 3)]


def test_pipeline_options(photo_dataset):
    split = D.get_split("flowers", "train", photo_dataset)
    ds = D.input_pipeline(split, 5, "vgg", image_size=32, drop_remainder=True, num_epochs=2)
    assert [x.shape[0] for x, _ in _batches(ds)] == [5] * 4
    with pytest.raises(ValueError, match="image_size is required"):
        D.input_pipeline(split, 5, "vgg")
    ds = D.input_pipeline(split, 12, "lenet", image_size=(20, 30), use_grayscale=True)
    assert _batches(ds)[0][0].shape == (12, 20, 30, 1)


def test_pipeline_skip_mode(tmp_path):
    records = _good_records(5)
    records[2] = slim_example(b"GIF89a-but-not-really", 1)  # a valid header, undecodable body
    records[3] = slim_example(b"garbage", 1)
    split = _mnist_dir(tmp_path, records)
    labels = [int(v) for _, y in _batches(D.input_pipeline(split, 8, "lenet", on_error="skip")) for v in y]
    assert len(labels) == 3
    assert [s.record for s in split.skipped] == [3]  # the header check; the GIF is dropped by tf.data


@pytest.mark.parametrize(
    "data,known",
    [
        (b"\xff\xd8\xff\xe0", True), (b"\x89PNG\r\n\x1a\n", True), (b"GIF89a", True), (b"BM6", True),
        (b"RIFF\0\0\0\0WEBPVP8 ", True), (b"RIFF\0\0\0\0WAVE", False), (b"", False), (b"\xff\xd8", False),
        (b"<html>", False),
    ],
)  # fmt: skip
def test_image_header_check(data, known):
    from kslim.data._split import _has_image_header

    assert bool(_has_image_header(tf.constant(data))) is known
