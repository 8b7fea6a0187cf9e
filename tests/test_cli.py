"""`kslim inspect`, `kslim convert` and `scripts/convert_ckpt.py`."""

import os
import subprocess
import sys

import numpy as np
import pytest

import kslim
from kslim import compat
from kslim.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFARNET_V1 = os.path.join(ROOT, "tests", "fixtures", "cifarnet-10-32", "ckpt", "model.ckpt")


def run_script(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "convert_ckpt.py"),
                           *args], capture_output=True, text=True, timeout=300)


def test_inspect_model_prints_structure(capsys):
    assert main(["inspect", "--model", "lenet"]) == 0
    out = capsys.readouterr().out
    assert "LeNet/conv1/weights (float32 5x5x1x32) [800, bytes: 3200]" in out
    assert "LeNet/fc4/biases (float32 10) [10, bytes: 40]" in out
    total = sum(int(np.prod(v.shape))
                for v in compat.slim_variables(kslim.models.lenet()).values())
    assert f"Total size of variables: {total}" in out
    assert f"Total bytes of variables: {4 * total}" in out


def test_inspect_checkpoint_with_model(capsys):
    assert main(["inspect", CIFARNET_V1, "--model", "cifarnet"]) == 0
    out = capsys.readouterr().out
    assert "CifarNet/fc3/weights (float32 4096x384) [1572864, bytes: 6291456]" in out
    assert "CifarNet/logits/weights <- CifarNet/logits/weights" in out
    assert "would restore 10 of 10 variables" in out


def test_convert_round_trip_is_exact(tmp_path):
    h5 = tmp_path / "cifarnet.weights.h5"
    result = run_script(CIFARNET_V1, str(h5), "--model", "cifarnet")
    assert result.returncode == 0, result.stderr
    assert "restored 10 of 10 variables" in result.stdout
    back = tmp_path / "back" / "model.ckpt"
    assert main(["convert", str(h5), str(back), "--model", "cifarnet"]) == 0
    original = dict((n, s) for n, s, _ in compat.list_checkpoint(CIFARNET_V1))
    assert dict((n, s) for n, s, _ in compat.list_checkpoint(str(back))) == original
    import tensorflow as tf

    a, b = tf.train.load_checkpoint(CIFARNET_V1), tf.train.load_checkpoint(str(back))
    for name in original:
        np.testing.assert_array_equal(a.get_tensor(name), b.get_tensor(name), err_msg=name)


def test_convert_to_keras_archive_with_options(tmp_path):
    out = tmp_path / "nine.keras"
    assert main(["convert", CIFARNET_V1, str(out), "--model", "cifarnet", "--num_classes",
                 "9", "--label_offset", "1"]) == 0
    model = kslim.models.create_model("cifarnet", num_classes=9, weights=str(out))
    reference = kslim.models.create_model("cifarnet", weights=CIFARNET_V1)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(model(x), reference(x)[:, 1:], rtol=1e-6, atol=1e-6)


def test_convert_refuses_to_overwrite_input(tmp_path):
    source = tmp_path / "in.weights.h5"
    kslim.models.cifarnet().save_weights(str(source))
    before = source.read_bytes()
    result = run_script(str(source), str(source), "--model", "cifarnet")
    assert result.returncode == 1
    assert "refusing to overwrite the input" in result.stderr
    assert source.read_bytes() == before
    # A slim checkpoint as both input and output prefix is refused the same way.
    assert main(["convert", CIFARNET_V1, CIFARNET_V1, "--model", "cifarnet"]) == 1


def test_convert_errors_are_one_clear_line(tmp_path, capsys):
    code = main(["convert", str(tmp_path / "missing.ckpt"), str(tmp_path / "o.weights.h5"),
                 "--model", "cifarnet"])
    assert code == 1
    err = capsys.readouterr().err
    assert "kslim convert: error: no checkpoint at" in err and "missing.ckpt" in err
    assert main(["convert", CIFARNET_V1, str(tmp_path / "o.weights.h5"),
                 "--model", "cifarnett"]) == 1
    assert "did you mean cifarnet" in capsys.readouterr().err


def test_python_dash_m_kslim():
    result = subprocess.run([sys.executable, "-m", "kslim", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0
    assert "inspect" in result.stdout and "convert" in result.stdout


def test_help_and_flag_errors_do_not_import_tensorflow():
    # The parser of every command, its help and its flag errors need no TensorFlow
    # (importing it takes seconds); only running a command loads it.
    code = (
        "import sys, contextlib, io\n"
        "from kslim.cli import build_parser\n"
        "parser = build_parser()\n"
        "for argv in (['--help'], ['zoo', '--help'], ['train', '--help'], ['inspect', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        parser.parse_args(argv)\n"
        "import kslim.compat, kslim.data, kslim.training\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
