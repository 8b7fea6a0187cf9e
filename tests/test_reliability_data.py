"""Issue 16, datasets: conversions that never clobber or half-replace a dataset, and
corrupt TFRecords read past (on_error="skip") or named with their file and offset.

The corruption is real: bytes flipped in the middle of a copy of the digits TFRecords;
the failing conversion is real: an unreadable image in the validation split.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import struct

import numpy as np
import pytest
import tensorflow as tf

import kslim.data as D
from kslim import cli
from kslim.data import _records, _split
from data_helpers import png


def record_offsets(path) -> list[int]:
    data = open(path, "rb").read()
    offsets, offset = [], 0
    while offset < len(data):
        offsets.append(offset)
        offset += 16 + struct.unpack("<Q", data[offset:offset + 8])[0]
    return offsets


def flip(path, position):
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)
        f.seek(position)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.fixture
def digits_copy(tmp_path):
    """A copy of the digits dataset (1442 train records in one file) and its records."""
    source = D.get_split("digits", "train")
    folder = tmp_path / "digits"
    shutil.copytree(source.dataset_dir, folder)
    path = str(folder / os.path.basename(source.files[0]))
    records = [r.numpy() for r in tf.data.TFRecordDataset(path)]
    return str(folder), path, records


def labels_of(dataset) -> list[int]:
    return [int(label) for _, label in dataset]


def expected_labels(records) -> list[int]:
    return [tf.train.Example.FromString(r).features.feature["image/class/label"].int64_list.value[0]
            for r in records]


# -- 2. on_error="skip" reads on past a corrupt record ------------------------------------


def test_skip_reads_past_a_corrupt_record(digits_copy):
    folder, path, records = digits_copy
    offsets = record_offsets(path)
    flip(path, offsets[100] + 12 + 30)  # inside record 100's data: its CRC fails
    split = D.get_split("digits", "train", folder)
    got = list(split.dataset(on_error="skip"))
    assert [int(label) for _, label in got] == expected_labels(records[:100] + records[101:])
    first_after = tf.io.parse_single_example(records[101], split._features())
    np.testing.assert_array_equal(got[100][0], split.decode_image(first_after))
    [skipped] = split.skipped
    assert (skipped.file, skipped.record, skipped.offset) == (path, 100, offsets[100])
    assert "fails its CRC" in skipped.reason and f"byte {offsets[100]}" in skipped.reason


def test_skip_after_a_corrupt_length_says_the_rest_is_lost(digits_copy):
    folder, path, records = digits_copy
    offsets = record_offsets(path)
    flip(path, offsets[700] + 3)  # record 700's length field: nothing after it can be framed
    split = D.get_split("digits", "train", folder)
    assert labels_of(split.dataset(on_error="skip")) == expected_labels(records[:700])
    [skipped] = split.skipped
    assert (skipped.file, skipped.record) == (path, 700)
    size = os.path.getsize(path)
    assert "corrupt length field" in skipped.reason
    assert f"{size - offsets[700]} bytes" in skipped.reason  # never a silent drop
    # Without the up-front header walk the reader itself reports it, with the offset.
    split = D.get_split("digits", "train", folder)
    assert labels_of(split.dataset(on_error="skip", check_files=False)) == expected_labels(
        records[:700])
    [skipped] = split.skipped
    assert skipped.offset == offsets[700] and "the remaining" in skipped.reason


# -- 10. a corrupt record named with its file and offset --------------------------------------


def test_corrupt_record_is_named_when_read(digits_copy, monkeypatch, tmp_path):
    folder, path, _ = digits_copy
    offsets = record_offsets(path)
    flip(path, offsets[250] + 12 + 5)
    split = D.get_split("digits", "train", folder)
    with pytest.raises(ValueError) as error:
        list(split.dataset())
    message = str(error.value)
    assert f"{path}, record 250: cannot be read (the record at byte {offsets[250]}:" in message
    assert "on_error='skip'" in message
    # A split too big for the up-front check: TensorFlow's reader raises without the
    # file; the drivers name it.
    with pytest.raises(tf.errors.DataLossError) as raw:
        list(split.dataset(check_files=False))
    assert path not in str(raw.value)
    named = _records.data_loss_message(split.files, raw.value)
    assert f"{path}, record 250: cannot be read (the record at byte {offsets[250]}:" in named

    # `kslim eval` on it, with the up-front check off (as for a split over 2 GiB).
    import kslim
    from kslim.training._eval import evaluate

    monkeypatch.setattr(_split, "_AUTO_CHECK_BYTES", 0)
    model = kslim.models.create_model("lenet", num_classes=10)
    checkpoint = kslim.compat.save_slim_checkpoint(model, str(tmp_path / "ckpt" / "model.ckpt"))
    with pytest.raises(ValueError) as error:
        evaluate(model_name="lenet", dataset_name="digits", dataset_split_name="train",
                 dataset_dir=folder, checkpoint_path=checkpoint, eval_dir=str(tmp_path / "eval"),
                 batch_size=64)
    assert path in str(error.value) and f"byte {offsets[250]}" in str(error.value)


# -- 1. conversions over an existing dataset -----------------------------------------------


@pytest.fixture
def photo_tree(tmp_path):
    rng = np.random.default_rng(16)
    root = tmp_path / "photos"
    for cls in ("ash", "elm", "oak"):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            (root / cls / f"{i}.png").write_bytes(png(rng.integers(0, 255, (6, 5, 3), np.uint8)))
    return root


def convert(source, out, *extra) -> int:
    return cli.main(["data", "convert", "--dataset_name", "image_folder", "--name", "trees",
                     "--source", str(source), "--dataset_dir", str(out), "--validation_size", "4",
                     *extra])


def snapshot(folder) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
            for name in sorted(os.listdir(folder)) if (folder / name).is_file()}


def test_convert_refuses_an_existing_dataset_and_replaces_it_whole(photo_tree, tmp_path, capsys):
    out = tmp_path / "trees"
    assert convert(photo_tree, out, "--num_shards", "3") == 0
    before = snapshot(out)
    assert sum(n.startswith("trees_train_") for n in before) == 3
    capsys.readouterr()
    assert convert(photo_tree, out, "--num_shards", "2") == 1
    err = capsys.readouterr().err
    assert "already holds a dataset (trees_train_00000-of-00003.tfrecord" in err
    assert "nothing was changed" in err and "--overwrite" in err
    assert snapshot(out) == before
    # --overwrite with another shard count: the old shards go, the split is exact.
    assert convert(photo_tree, out, "--num_shards", "2", "--overwrite") == 0
    names = sorted(os.listdir(out))
    assert [n for n in names if n.endswith(".tfrecord")] == [
        f"trees_{s}_{i:05d}-of-00002.tfrecord" for s in ("train", "validation") for i in range(2)]
    assert not [n for n in names if n.startswith(".")]  # no staging left
    for split_name, size in (("train", 8), ("validation", 4)):
        split = D.get_split("trees", split_name, str(out))
        assert split.num_samples == size == len(list(split.dataset()))


def test_failed_conversion_leaves_the_previous_dataset_as_it_was(photo_tree, tmp_path, capsys):
    out = tmp_path / "trees"
    assert convert(photo_tree, out, "--num_shards", "3") == 0
    before = snapshot(out)
    # The validation split (written after train) gets an unreadable image.
    files = sorted(f"{c}/{n}" for c in ("ash", "elm", "oak") for n in os.listdir(photo_tree / c))
    random.Random(0).shuffle(files)  # the converter's split (seed 0, first 4 to validation)
    (photo_tree / files[0]).write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    capsys.readouterr()
    assert convert(photo_tree, out, "--num_shards", "2", "--overwrite") == 1
    assert f"{files[0]} is not a readable image" in capsys.readouterr().err
    assert snapshot(out) == before  # every byte, and no new or staged file
    assert sorted(os.listdir(out)) == sorted(before)
