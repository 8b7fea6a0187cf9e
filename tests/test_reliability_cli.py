"""Issue 16, commands and models: zoo archives bounded while streaming, a corrupt newest
checkpoint skipped on resume, train_dir/output_dir/predict/zoo-import errors that name
the cause, model inputs of other dtypes and sizes, Adam's slim epsilon said once."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile

import numpy as np
import pytest

import kslim
from kslim.compat._checkpoint import checkpoints_in_folder
from kslim.models import zoo
from data_helpers import png
from training_helpers import run_cli

TAG = "mobilenet_v1_0.25_224"
TRAIN = ("train", "--model_name=lenet", "--dataset_name=digits", "--batch_size=8", "--seed=0",
         "--verbose=0")


@pytest.fixture
def zoo_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KSLIM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KSLIM_OFFLINE", "1")
    monkeypatch.delenv("KSLIM_ZOO_SHA256", raising=False)
    return tmp_path / "home"


def archive_of(path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def cache_contents() -> list[str]:
    root = zoo.cache_dir()
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


# -- 5. zoo archive members bounded -------------------------------------------------------------


def test_zoo_bound_is_what_the_net_can_hold():
    model = zoo._canonical_model(zoo.get(TAG))
    floats = sum(int(np.prod(v.shape)) for v in model.weights)
    limit = zoo._size_limit(TAG)
    assert 4 * floats * 2 < limit < 4 * floats * 8 + (64 << 20)  # weights + EMA fit


def test_zoo_member_larger_than_the_checkpoint_is_refused(zoo_home, tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "_size_limit", lambda tag: 1 << 20)
    # 3 MiB of zeros: a few KB of archive that would unpack to far more than the bound.
    big = archive_of(tmp_path / "mobilenet_v1_0.25_224.tgz", {
        "mobilenet_v1_0.25_224.ckpt.index": b"i" * 100,
        "mobilenet_v1_0.25_224.ckpt.data-00000-of-00001": bytes(3 << 20)})
    assert os.path.getsize(big) < 64 << 10
    with pytest.raises(zoo.ZooError) as error:
        zoo.import_archive(big)
    message = str(error.value)
    assert "'mobilenet_v1_0.25_224.ckpt.data-00000-of-00001' declares 3145728 bytes" in message
    assert "mobilenet_v1_025 can hold (1048576 bytes per file" in message
    assert "nothing was installed" in message
    assert cache_contents() == []  # no entry, no staging folder left
    # Several members under the per-file bound, over the total (2 MiB) together.
    many = archive_of(tmp_path / "many.tgz", {
        f"part{i}/mobilenet_v1_0.25_224.ckpt.data-00000-of-00001": bytes(800 << 10)
        for i in range(3)})
    with pytest.raises(zoo.ZooError, match=r"part2/.* declares 819200 bytes.*2097152 in all"):
        zoo.import_archive(many, tag=TAG)
    assert cache_contents() == []


def test_zoo_import_reads_the_archive_when_a_copy_is_installed(zoo_home, tmp_path, capsys):
    archive = archive_of(tmp_path / "mobilenet_v1_0.25_224.tgz", {"a.ckpt.index": b"index"})
    digest = hashlib.sha256(open(archive, "rb").read()).hexdigest()
    folder = os.path.join(zoo.cache_dir(), TAG)  # an installed copy, from that archive
    os.makedirs(folder)
    open(os.path.join(folder, "a.ckpt.index"), "wb").write(b"index")
    json.dump({"tag": TAG, "checkpoint": "a.ckpt", "archive_sha256": digest,
               "files": {"a.ckpt.index": 5}}, open(os.path.join(folder, zoo.MARKER), "w"))
    assert run_cli("zoo", "import", archive)[:2] == (
        0, f"{TAG} is already installed from this archive ({archive}) -> "
           f"{os.path.join(folder, 'a.ckpt')}\n")
    broken = tmp_path / "copy" / "mobilenet_v1_0.25_224.tgz"
    broken.parent.mkdir()
    broken.write_bytes(open(archive, "rb").read()[:20])  # cut short: not that archive
    code, out, err = run_cli("zoo", "import", str(broken))
    assert code == 1 and "installed" not in out
    assert f"{broken} is not the archive {TAG} was installed from" in err and "--force" in err
    code, _, err = run_cli("zoo", "import", str(tmp_path / "copy"))
    assert code == 1 and "is a folder" in err
    assert sorted(os.listdir(folder)) == ["a.ckpt.index", zoo.MARKER]


# -- 8, 11, 12. train, export, predict ------------------------------------------------------


def corrupt(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\xde\xad\xbe\xef" * 8)


def test_resume_skips_a_corrupt_newest_checkpoint(tmp_path):
    from kslim.training._state import save_training_checkpoint

    train_dir = tmp_path / "train"
    model = kslim.models.create_model("lenet", num_classes=10, input_shape=(28, 28, 1))
    older = save_training_checkpoint(model, train_dir, 3)
    newest = save_training_checkpoint(model, train_dir, 6)
    corrupt(newest + ".data-00000-of-00001")
    code, out, err = run_cli(*TRAIN, f"--train_dir={train_dir}", "--max_number_of_steps=4")
    assert code == 0, err
    assert f"Resuming from {older} at global step 3" in out
    assert f"the newest checkpoint(s) in {train_dir} cannot be read and were skipped: {newest}" in out
    assert "Finished at global step 4" in out
    # Nothing readable at all: stop, naming every checkpoint, instead of starting afresh.
    for prefix in checkpoints_in_folder(str(train_dir)):
        corrupt(prefix + ".data-00000-of-00001")
    code, out, err = run_cli(*TRAIN, f"--train_dir={train_dir}", "--max_number_of_steps=9")
    assert code == 1 and "no checkpoint in train_dir" in err and older in err


def test_train_dir_that_is_a_file_and_zero_steps(tmp_path):
    not_a_dir = tmp_path / "train_dir"
    not_a_dir.write_text("x")
    code, out, err = run_cli(*TRAIN, f"--train_dir={not_a_dir}", "--max_number_of_steps=5")
    assert code == 1 and f"--train_dir {str(not_a_dir)!r} is a file" in err and out == ""
    code, out, _ = run_cli(*TRAIN, f"--train_dir={tmp_path / 'fresh'}", "--max_number_of_steps=0")
    assert code == 0
    assert "not the chief" not in out and "checkpoint none written (no step was trained)" in out


def test_export_output_dir_that_is_a_file(tmp_path):
    target = tmp_path / "model"
    target.write_text("x")
    code, _, err = run_cli("export", "--model_name=lenet", "--dataset_name=digits",
                           f"--output_dir={target}")
    assert code == 1 and f"export folder {str(target)!r} is a file" in err


def test_predict_takes_a_folder_of_images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("b.png", "a.png"):
        (folder / name).write_bytes(png(rng.integers(0, 255, (28, 28, 1), np.uint8)))
    (folder / "notes.txt").write_text("not an image")
    code, out, err = run_cli("predict", str(folder), "--model=lenet", "--num_classes=10",
                             "--top_k=1", "--json")
    assert code == 0, err
    assert [json.loads(line)["image"] for line in out.splitlines()] == [
        str(folder / "a.png"), str(folder / "b.png")]
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("predict", str(tmp_path / "empty"), "--model=lenet")
    assert code == 1 and "is a folder with no image files" in err


# -- 13. model inputs ---------------------------------------------------------------------------


def test_inputs_of_other_dtypes_and_sizes():
    model = kslim.models.create_model("lenet", num_classes=10)
    pixels = np.random.default_rng(0).integers(0, 255, (2, 28, 28, 1), np.uint8)
    expected = model(pixels.astype(np.float32)).numpy()
    np.testing.assert_array_equal(model(pixels).numpy(), expected)
    forward = model.forward_function()
    np.testing.assert_array_equal(forward(pixels).numpy(), expected)
    np.testing.assert_array_equal(forward(pixels.astype(np.float64)).numpy(), expected)
    import tensorflow as tf

    np.testing.assert_array_equal(forward(tf.constant(pixels, tf.float64)).numpy(), expected)
    with pytest.raises(ValueError) as error:
        model(np.zeros((2, 32, 32, 1), np.float32))
    message = str(error.value)
    assert "lenet (LeNet) was built for inputs of shape (batch, 28, 28, 1), got (2, 32, 32, 1)" \
        in message and "input_shape=(32, 32, 1)" in message
    with pytest.raises(ValueError, match=r"lenet \(LeNet\): input shape \(28, 28, 0\) has a "
                                         r"dimension of 0"):
        kslim.models.create_model("lenet", input_shape=(28, 28, 0))
    # Fully convolutional nets still take other sizes (and uint8).
    net = kslim.models.create_model("mobilenet_v1_025", num_classes=10, input_shape=(64, 64, 3))
    assert net(np.zeros((1, 96, 96, 3), np.uint8)).shape == (1, 10)


# -- 15. Adam with slim's epsilon -------------------------------------------------------------


def test_adam_with_slims_epsilon_is_said_once(monkeypatch, caplog):
    from kslim.training import _optimizers

    monkeypatch.setattr(_optimizers, "_adam_epsilon_noted", False)
    with caplog.at_level(logging.WARNING, logger="kslim"):
        _optimizers.create_optimizer("adam", 0.01, opt_epsilon=1e-8)
        assert not caplog.records
        first = _optimizers.create_optimizer("adam", 0.01)
        _optimizers.create_optimizer("adam", 0.01)
    assert first.epsilon == 1.0  # slim's default is kept
    [record] = caplog.records
    assert "--opt_epsilon=1.0" in record.getMessage() and "1e-8" in record.getMessage()
