"""The walkthrough examples (examples/*.py) run with short settings; their results are
checked."""

import importlib.util
import os

import numpy as np
import tensorflow as tf

import kslim
from kslim import compat, training
from slim_harness import recipe_value
from training_helpers import IMAGES, REPO

PHOTOS = [os.path.join(IMAGES, name) for name in ("chelsea.png", "coffee.jpg")]


def example(name):
    path = os.path.join(REPO, "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"examples_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regression_mlp(tmp_path, capsys):
    result = example("regression").main(["--steps", "3000", "--train_dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert result["variables"] == [
        f"deep_regression/{layer}/{leaf}" for layer in ("fc1", "fc2", "prediction")
        for leaf in ("bias", "kernel")]
    assert "end point fc1: (1, 32)" in out and "end point out: (1, 1)" in out
    assert result["restored_equal"]
    assert os.path.basename(result["checkpoint"]) == "model.ckpt-3000"
    # y = sin(x) + 5 + noise: a constant prediction has an MSE of about 0.59, the curve
    # itself 0.09 (the noise); 3000 steps of the walkthrough's 5000 get well below the first
    _, y_test = kslim.data.produce_batch(200, seed=1)
    assert result["mse"] < 0.6 * float(np.var(y_test)), out
    assert result["mae"] < 0.5, out


def test_read_and_show_a_dataset(tmp_path, capsys):
    grid = tmp_path / "digits.png"
    result = example("read_dataset").main(["--output", str(grid), "--num", "12"])
    out = capsys.readouterr().out
    assert result["num_classes"] == 10
    assert [e[0] for e in result["examples"]] == [(28, 28, 1)] * 4
    assert result["captions"][:3] == ["0:zero", "1:one", "2:two"]
    assert "labels_to_names: {0: 'zero'" in out
    image = tf.io.decode_png(grid.read_bytes())
    assert image.shape[0] > 28 and image.shape[-1] == 3


def test_small_cnn(tmp_path, capsys):
    result = example("small_cnn").main(["--steps", "60", "--train_dir", str(tmp_path)])
    np.testing.assert_allclose(result["row_sums"], 1.0, rtol=1e-5)
    assert result["accuracy"] > 0.8, capsys.readouterr().out
    assert result["recall_5"] >= result["accuracy"]
    names = {n for n, _, _ in compat.list_checkpoint(result["checkpoint"])}
    assert "my_cnn/conv1/kernel" in names and "global_step" in names


def test_pretrained_inference(tmp_path, capsys):
    # A local "pretrained" 1001-class MobileNet checkpoint stands in for the zoo download.
    model = kslim.models.create_model("mobilenet_v1_025")
    for name, variable in compat.slim_variables(model).items():
        variable.assign(recipe_value(name, variable.shape))
    prefix = compat.save_slim_checkpoint(model, str(tmp_path / "mobilenet.ckpt"))
    result = example("pretrained_inference").main(
        ["--model", "mobilenet_v1_025", "--weights", prefix, *PHOTOS])
    out = capsys.readouterr().out
    assert result["num_classes"] == 1001
    names = set(kslim.models.imagenet.class_names(1001))
    for path in PHOTOS:
        top = result["predictions"][path]
        assert len(top) == 5 and {name for _, name, _ in top} <= names
        scores = [score for _, _, score in top]
        assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
        assert path in out


def test_finetune_with_the_logits_excluded(tmp_path, capsys):
    pretrained = training.train(model_name="lenet", dataset_name="digits",
                                train_dir=str(tmp_path / "pretrain"), max_number_of_steps=60,
                                batch_size=32, optimizer="adam", opt_epsilon=1e-8,
                                learning_rate=0.001, seed=1, verbose="0")
    result = example("finetune").main([
        "--model_name", "lenet", "--dataset_name", "digits",
        "--checkpoint_path", pretrained.checkpoint, "--train_dir", str(tmp_path / "finetune"),
        "--steps", "40", "--batch_size", "32", "--learning_rate", "0.003"])
    out = capsys.readouterr().out
    assert result["scopes"] == "LeNet/fc4"
    before = tf.train.load_checkpoint(pretrained.checkpoint)
    after = tf.train.load_checkpoint(result["result"].checkpoint)
    for name in compat.slim_variables(pretrained.model):
        if name.startswith("LeNet/fc4/"):
            assert not np.array_equal(after.get_tensor(name), before.get_tensor(name))
        else:
            np.testing.assert_array_equal(after.get_tensor(name), before.get_tensor(name),
                                          err_msg=name)
    assert result["accuracy"] > 0.6, out  # a new head on pretrained features
    assert len(result["shown"]) == 5 and "ground truth: " in out
