"""`kslim data convert|show`, the PNG grid, and `produce_batch`."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import kslim.data as D
from kslim import cli


def test_data_convert_and_show_commands(tmp_path, capsys):
    out = tmp_path / "digits"
    assert cli.main(["data", "convert", "--dataset_name", "digits", "--dataset_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "digits train: 1442 examples in 1 file(s), 10 classes" in printed
    assert "digits test: 355 examples" in printed
    grid = tmp_path / "grid.png"
    args = ["data", "show", "--dataset_name", "digits", "--split_name", "test", "--dataset_dir", str(out)]
    assert cli.main(args + ["--num", "6", "--columns", "3", "--output", str(grid)]) == 0
    printed = capsys.readouterr().out
    labels = D.get_split("digits", "test", out)
    first = [int(y) for _, y in labels.dataset().take(6).as_numpy_iterator()]
    assert printed.splitlines()[:6] == [f"{i}: {y}:{labels.labels_to_names[y]}" for i, y in enumerate(first)]
    image = tf.io.decode_png(grid.read_bytes()).numpy()
    assert image.shape[2] == 3 and image.shape[1] > image.shape[0]  # 3 columns, 2 rows


def test_data_command_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["data", "show", "--dataset_name", "mnist", "--output", str(tmp_path / "x.png")]) == 1
    assert "kslim data: error: dataset_dir is required for dataset 'mnist'" in capsys.readouterr().err
    assert cli.main(["data", "convert", "--dataset_name", "image_folder", "--dataset_dir", str(tmp_path)]) == 1
    assert "--source is required" in capsys.readouterr().err
    assert cli.main(["data", "convert", "--dataset_name", "imagenet", "--dataset_dir", str(tmp_path), "--download"]) == 1
    assert "--download is not available" in capsys.readouterr().err


def test_registering_the_data_command_does_not_import_tensorflow():
    code = (
        "import argparse, sys; from kslim.data import _cli; "
        "_cli.register(argparse.ArgumentParser().add_subparsers()); print('tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_show_grid_captions(tmp_path):
    split = D.get_split("digits", "train")
    captions = D.show(split, str(tmp_path / "g.png"), num=4, shuffle=True, seed=1)
    assert len(captions) == 4 and all(":" in c for c in captions)
    grid = D.make_grid([np.zeros((300, 200, 3), np.uint8), np.full((8, 8, 1), 255, np.uint8)], ["big", "small"])
    assert grid.dtype == np.uint8 and grid.ndim == 3
    # Captions are drawn: the strip under each image has ink.
    from kslim.data._show import _CAPTION_HEIGHT, _CELL, _PAD

    assert grid[_PAD + _CELL : _PAD + _CELL + _CAPTION_HEIGHT].max() == 235
    with pytest.raises(ValueError, match="no images"):
        D.make_grid([], [])


def test_produce_batch():
    xs, ys = D.produce_batch(2000, seed=0)
    assert xs.shape == ys.shape == (2000, 1) and xs.dtype == ys.dtype == np.float32
    assert xs.min() >= 0 and xs.max() < 10
    residual = ys - np.sin(xs) - 5
    assert abs(residual.mean()) < 0.03 and abs(residual.std() - 0.3) < 0.03
    np.testing.assert_array_equal(D.produce_batch(5, seed=3)[0], D.produce_batch(5, seed=3)[0])
    quiet = D.produce_batch(100, noise=0.0, seed=1)
    np.testing.assert_allclose(quiet[1], np.sin(quiet[0]) + 5, atol=1e-6)


def test_public_api_is_explicit():
    assert set(D.__all__) <= set(dir(D))
    for name in D.__all__:
        assert getattr(D, name) is not None
    with pytest.raises(AttributeError):
        D.no_such_thing  # noqa: B018
    assert os.path.basename(D.kslim_home()) != ""
