"""Converters write slim's layouts; `get_split` reads back the same images and labels."""

from __future__ import annotations

import gzip
import os
import pickle
import random
import struct
import tarfile

import numpy as np
import pytest
import tensorflow as tf

import kslim.data as D
from data_helpers import digit_images, jpeg, photo_crops, png, read_all

# -- MNIST ------------------------------------------------------------------------------------


def _write_idx(path, array, magic, gz):
    header = struct.pack(">i", magic) + struct.pack(">" + "i" * array.ndim, *array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def mnist_arrays():
    images, labels = digit_images()
    return {"train": (images[:30], labels[:30]), "test": (images[30:42], labels[30:42])}


def _check_mnist(dataset_dir, arrays):
    for split_name, (images, labels) in arrays.items():
        split = D.get_split("mnist", split_name, dataset_dir)
        assert split.num_samples == len(images) and split.num_classes == 10
        got_images, got_labels = read_all(split)
        np.testing.assert_array_equal(np.stack(got_images)[..., 0], images)
        assert got_labels == labels.tolist()
    record = next(iter(tf.data.TFRecordDataset(os.path.join(dataset_dir, "mnist_train.tfrecord"))))
    features = tf.train.Example.FromString(record.numpy()).features.feature
    assert sorted(features) == ["image/class/label", "image/encoded", "image/format", "image/height", "image/width"]
    assert features["image/format"].bytes_list.value == [b"png"]
    assert len(features["image/class/label"].int64_list.value) == 1
    assert open(os.path.join(dataset_dir, "labels.txt")).read().splitlines()[6] == "6:six"


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_idx_files(tmp_path, mnist_arrays, gz):
    source = tmp_path / "raw"
    source.mkdir()
    suffix = ".gz" if gz else ""
    names = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    for split, (images, labels) in mnist_arrays.items():
        _write_idx(source / (names[split][0] + suffix), images, 2051, gz)
        _write_idx(source / (names[split][1] + suffix), labels, 2049, gz)
    out = tmp_path / "out"
    D.convert_mnist(str(out), source=str(source))
    _check_mnist(str(out), mnist_arrays)


def test_mnist_from_npz_and_download(tmp_path, mnist_arrays):
    npz = tmp_path / "mnist.npz"
    (x_train, y_train), (x_test, y_test) = mnist_arrays["train"], mnist_arrays["test"]
    np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    D.convert_mnist(str(tmp_path / "a"), source=str(npz))
    _check_mnist(str(tmp_path / "a"), mnist_arrays)
    # download=True goes through keras.utils.get_file: a file:// origin, no network.
    D.convert_mnist(str(tmp_path / "b"), download=True, origin=npz.as_uri())
    _check_mnist(str(tmp_path / "b"), mnist_arrays)
    assert os.path.isfile(os.path.join(D.kslim_home(), "downloads", "mnist.npz"))


def test_mnist_bad_sources(tmp_path, mnist_arrays):
    with pytest.raises(FileNotFoundError, match="has no train-images-idx3-ubyte"):
        D.convert_mnist(str(tmp_path / "out"), source=str(tmp_path))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\0\0\x08\x01" + b"\0" * 20)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte is not an MNIST idx file"):
        D.convert_mnist(str(tmp_path / "out"), source=str(tmp_path))
    images, _ = mnist_arrays["train"]
    _write_idx(tmp_path / "train-images-idx3-ubyte", images, 2051, False)
    data = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte is truncated"):
        D.convert_mnist(str(tmp_path / "out"), source=str(tmp_path))


# -- CIFAR-10 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cifar_source(tmp_path_factory):
    """A miniature cifar-10-python.tar.gz: 5 train batches of 3 images, a test batch of 4."""
    folder = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"
    folder.mkdir()
    crops = photo_crops(19, size=(32, 32), seed=2)
    arrays = {"train": ([], []), "test": ([], [])}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for n, name in enumerate(names):
        batch = crops[3 * n : 3 * n + (4 if name == "test_batch" else 3)]
        labels = [(3 * n + i) % 10 for i in range(len(batch))]
        data = np.stack([c.transpose(2, 0, 1).reshape(-1) for c in batch])  # CIFAR's row layout
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, f, protocol=2)
        split = "test" if name == "test_batch" else "train"
        arrays[split][0].extend(batch)
        arrays[split][1].extend(labels)
    archive = folder.parent / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return archive, folder, arrays


@pytest.mark.parametrize("form", ["archive", "folder"])
def test_cifar10_round_trip(tmp_path, cifar_source, form):
    archive, folder, arrays = cifar_source
    D.convert_cifar10(str(tmp_path), source=str(archive if form == "archive" else folder.parent))
    for split_name, (images, labels) in arrays.items():
        split = D.get_split("cifar10", split_name, tmp_path)
        assert split.num_samples == len(images)
        got_images, got_labels = read_all(split)
        np.testing.assert_array_equal(np.stack(got_images), np.stack(images))
        assert got_labels == labels
    assert D.read_label_file(str(tmp_path))[9] == "truck"


def test_cifar10_refuses_code_in_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": os.system}, f)  # a callable: not array data
    with pytest.raises(ValueError, match="data_batch_1 is not a CIFAR-10 python batch.*refusing"):
        D.convert_cifar10(str(tmp_path / "out"), source=str(folder))


# -- image folders: flowers and custom sets ---------------------------------------------------


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    """flower_photos/<class>/<image> with JPEG and PNG files of real photo crops."""
    root = tmp_path_factory.mktemp("tree") / "flower_photos"
    crops = photo_crops(14, size=(30, 40), seed=3)
    files = {}
    for i, crop in enumerate(crops):
        cls = ("daisy", "roses", "tulips")[i % 3]
        (root / cls).mkdir(parents=True, exist_ok=True)
        name = f"img{i:02d}." + ("jpg" if i % 2 else "png")
        data = jpeg(crop) if i % 2 else png(crop)
        (root / cls / name).write_bytes(data)
        files[f"{cls}/{name}"] = (data, cls)
    (root / "LICENSE.txt").write_text("not an image")
    return root, files


def _decode(data):
    return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()


def test_flowers_layout_round_trip(tmp_path, image_tree):
    root, files = image_tree
    D.convert_flowers(str(tmp_path), source=str(root), validation_size=4)
    names = sorted(os.listdir(tmp_path))
    assert [n for n in names if n.endswith(".tfrecord")] == [
        f"flowers_{s}_{i:05d}-of-00005.tfrecord" for s in ("train", "validation") for i in range(5)
    ]
    assert (tmp_path / "labels.txt").read_text() == "0:daisy\n1:roses\n2:tulips\n"
    # slim's split: seed-0 shuffle of the (sorted) file list, the first ones to validation.
    order = sorted(files)
    random.Random(0).shuffle(order)
    expected = {"validation": order[:4], "train": order[4:]}
    class_ids = {"daisy": 0, "roses": 1, "tulips": 2}
    for split_name, members in expected.items():
        split = D.get_split("flowers", split_name, tmp_path)
        assert split.num_samples == len(members) and split.num_classes == 5 - 2  # 3 classes written
        got_images, got_labels = read_all(split)
        assert got_labels == [class_ids[files[m][1]] for m in members]
        for got, member in zip(got_images, members):
            np.testing.assert_array_equal(got, _decode(files[member][0]))


def test_custom_image_folder_from_tgz(tmp_path, image_tree):
    root, files = image_tree
    archive = tmp_path / "photos.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="flower_photos")
    out = tmp_path / "out"
    D.convert_image_folder(str(archive), str(out), name="petals", validation_size=0.25, num_shards=2)
    train = D.get_split("petals", "train", out)
    validation = D.get_split("image_folder", "validation", out)  # the generic name works too
    assert (train.num_samples, validation.num_samples) == (10, 4)
    assert train.num_classes == 3 and train.labels_to_names == {0: "daisy", 1: "roses", 2: "tulips"}
    assert len(train.files) == 2 and os.path.basename(train.files[0]) == "petals_train_00000-of-00002.tfrecord"
    images, labels = read_all(train)
    decoded = {_decode(data).tobytes(): class_ids for data, class_ids in files.values()}
    names = train.labels_to_names
    assert all(names[label] == decoded[image.tobytes()] for image, label in zip(images, labels))


def test_image_folder_errors(tmp_path, image_tree):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no class sub-folders with images"):
        D.convert_image_folder(str(tmp_path / "empty"), str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.convert_image_folder(str(tmp_path / "missing"), str(tmp_path / "out"))
    bad = tmp_path / "bad" / "cats"
    bad.mkdir(parents=True)
    (bad / "ok.png").write_bytes(png(photo_crops(1)[0]))
    (bad / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(ValueError, match=r"cats/broken\.jpg is not a readable image"):
        D.convert_image_folder(str(tmp_path / "bad"), str(tmp_path / "out"), validation_size=0)
    # Nothing that looks finished was left behind.
    assert not [n for n in os.listdir(tmp_path / "out") if n.endswith(".tfrecord")]


def test_archive_with_path_traversal_is_refused(tmp_path):
    archive = tmp_path / "evil.tgz"
    payload = tmp_path / "payload.png"
    payload.write_bytes(png(photo_crops(1)[0]))
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(payload, arcname="photos/cats/ok.png")
        tar.add(payload, arcname="../escaped.png")
    with pytest.raises(ValueError, match="evil.tgz: refusing to extract"):
        D.convert_image_folder(str(archive), str(tmp_path / "out"))
    assert not (tmp_path / "escaped.png").exists()
    assert not [n for n in os.listdir(tmp_path / "out") if n.startswith(".extract")]


# -- ImageNet ---------------------------------------------------------------------------------


def test_imagenet_layout_round_trip(tmp_path):
    source = tmp_path / "raw"
    crops = photo_crops(9, size=(36, 44), seed=5)
    synsets = ["n01440764", "n01443537", "n01484850"]
    expected = {}
    for i, crop in enumerate(crops):
        split = "validation" if i < 3 else "train"
        synset = synsets[i % 3]
        folder = source / split / synset
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{synset}_{i}.JPEG"
        # One PNG in disguise, as slim's n02105855_2933.JPEG: it is re-encoded as JPEG.
        (folder / name).write_bytes(png(crop) if i == 4 else jpeg(crop, quality=95))
        expected[name] = (split, synsets.index(synset) + 1, crop)
    metadata = tmp_path / "meta.txt"
    metadata.write_text("n01440764\ttench, Tinca tinca\nn01443537\tgoldfish\nn01484850\tgreat white shark\n")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("n01443537_4.JPEG,0.1,0.2,0.5,0.6\nn01443537_4.JPEG,0.3,0.3,0.9,0.9\n")
    out = tmp_path / "out"
    D.convert_imagenet(
        str(source), str(out), metadata_file=str(metadata), bounding_box_file=str(boxes),
        train_shards=2, validation_shards=1, num_threads=2,
    )
    assert sorted(n for n in os.listdir(out) if "-of-" in n) == [
        "train-00000-of-00002", "train-00001-of-00002", "validation-00000-of-00001"
    ]
    assert D.read_label_file(str(out)) == {0: "background", 1: "tench, Tinca tinca", 2: "goldfish", 3: "great white shark"}
    seen = 0
    for split_name in ("train", "validation"):
        split = D.get_split("imagenet", split_name, out)
        assert split.num_classes == 4
        for item in split.dataset(as_dict=True).as_numpy_iterator():
            record = tf.train.Example.FromString(next(iter(
                tf.data.TFRecordDataset(item["file"]).skip(int(item["record"])).take(1))).numpy())
            name = record.features.feature["image/filename"].bytes_list.value[0].decode()
            want_split, label, crop = expected[name]
            assert want_split == split_name and item["label"] == label
            assert item["synset"].decode() == synsets[label - 1] and item["format"] == b"JPEG"
            assert np.abs(item["image"].astype(int) - crop).mean() < 6  # JPEG round trip
            if name == "n01443537_4.JPEG":
                np.testing.assert_allclose(item["object/bbox"], [[0.2, 0.1, 0.6, 0.5], [0.3, 0.3, 0.9, 0.9]])
                np.testing.assert_array_equal(item["object/label"], [2, 2])
            else:
                assert item["object/bbox"].shape == (0, 4)
            seen += 1
    assert seen == 9


# -- the embedded digits ------------------------------------------------------------------------


def test_digits_written_atomically_under_kslim_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KSLIM_HOME", str(tmp_path / "home"))
    from kslim.data import _digits

    def crash(folder):
        os.makedirs(folder, exist_ok=True)
        open(os.path.join(folder, "digits_train.tfrecord"), "wb").close()
        raise KeyboardInterrupt

    monkeypatch.setattr(_digits, "write_digits", crash)
    with pytest.raises(KeyboardInterrupt):
        D.get_split("digits", "train")
    parent = tmp_path / "home" / "datasets"
    assert os.listdir(parent) == []  # no half-written dataset, no leftovers
    monkeypatch.undo()
    monkeypatch.setenv("KSLIM_HOME", str(tmp_path / "home"))
    train = D.get_split("digits", "train")
    assert train.dataset_dir == str(parent / "digits")
    assert os.listdir(parent) == ["digits"]
    assert (train.num_samples, train.num_classes) == (1442, 10)
    stamp = os.path.getmtime(train.files[0])
    assert D.get_split("digits", "test").num_samples == 355
    assert os.path.getmtime(train.files[0]) == stamp  # reused, not rewritten
    assert "CC BY 4.0" in (parent / "digits" / "README.md").read_text()


def test_digits_content(tmp_path):
    images, labels = digit_images()
    D.convert("digits", str(tmp_path))
    test = D.get_split("digits", "test", tmp_path)
    got_images, got_labels = read_all(test)
    assert len(got_images) == 355
    # Every fifth image of each class, in file order.
    expected = [i for i in range(len(labels)) if (labels[: i + 1] == labels[i]).sum() % 5 == 0]
    np.testing.assert_array_equal(np.stack(got_images)[..., 0], images[expected])
    assert got_labels == labels[expected].tolist()
    assert np.bincount(got_labels).min() >= 34
    train = D.get_split("digits", "train", tmp_path)
    assert train.num_samples + test.num_samples == len(labels)
    # MNIST framing: the 4-pixel border is empty, the digit fills the 20x20 centre.
    stack = np.stack(got_images)[..., 0]
    assert stack[:, :4].max() == 0 and stack[:, -4:].max() == 0 and stack[:, 4:24, 4:24].max() == 255
