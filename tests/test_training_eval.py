"""`kslim eval`: slim's Accuracy and Recall@5 against a hand computation, labels_offset,
moving averages, and the evaluation loop picking up new checkpoints."""

import io
import re
import threading
import time

import numpy as np
import pytest

import kslim
from kslim import compat, training
from slim_harness import recipe_value
from training_helpers import event_scalars, run_cli


def _lenet(num_classes=10):
    model = kslim.models.create_model("lenet", num_classes=num_classes,
                                      input_shape=(28, 28, 1))
    for name, variable in compat.slim_variables(model).items():
        variable.assign(recipe_value(name, variable.shape))  # not a flat, random net
    return model


@pytest.fixture(scope="module")
def test_split():
    """The digits test split, preprocessed by hand as slim's lenet_preprocessing."""
    split = kslim.data.get_split("digits", "test")
    images, labels = [], []
    for image, label in split.dataset():
        images.append((image.numpy().astype(np.float32) - 128.0) / 128.0)
        labels.append(int(label))
    return np.stack(images), np.array(labels)


def _by_hand(model, images, labels):
    logits = np.asarray(model(images, training=False))
    accuracy = np.mean(np.argmax(logits, axis=1) == labels)
    top5 = np.argsort(-logits, axis=1)[:, :5]
    valid = (labels >= 0)[:, None]
    recall = np.mean(np.any((top5 == labels[:, None]) & valid, axis=1))
    return accuracy, recall


def _parse(out):
    last = out.strip().splitlines()[-1]
    match = re.fullmatch(r"eval/Accuracy=(\S+) eval/Recall_5=(\S+)", last)
    assert match, out
    return float(match.group(1)), float(match.group(2))


@pytest.mark.parametrize("labels_offset", [0, 1])
def test_eval_equals_hand_computation(tmp_path, test_split, labels_offset):
    images, labels = test_split
    model = _lenet(10 - labels_offset)
    prefix = compat.save_slim_checkpoint(model, str(tmp_path / "model.ckpt"), global_step=7)
    code, out, err = run_cli("eval", "--model_name=lenet", "--dataset_name=digits",
                             f"--checkpoint_path={tmp_path}", f"--eval_dir={tmp_path}/eval",
                             "--batch_size=50", f"--labels_offset={labels_offset}")
    assert code == 0, err
    assert f"{prefix} (global step 7, {len(labels)} examples of digits/test)" in out
    accuracy, recall = _by_hand(model, images, labels - labels_offset)
    assert 0.0 < recall < 1.0
    assert _parse(out) == pytest.approx((accuracy, recall), abs=1e-12)
    scalars = event_scalars(tmp_path / "eval")
    assert scalars["eval/Accuracy"] == [(7, pytest.approx(accuracy))]
    assert scalars["eval/Recall_5"] == [(7, pytest.approx(recall))]


def test_eval_of_moving_averages_and_max_num_batches(tmp_path, test_split):
    images, labels = test_split
    model = _lenet()
    averaged = {f"{n}/ExponentialMovingAverage": recipe_value(n + "/avg", v.shape)
                for n, v in compat.slim_variables(model).items()}
    compat.save_slim_checkpoint(model, str(tmp_path / "model.ckpt"), global_step=3,
                                extra=averaged)
    shadow = _lenet()
    for name, variable in compat.slim_variables(shadow).items():
        variable.assign(averaged[f"{name}/ExponentialMovingAverage"])
    results = training.evaluate(model_name="lenet", dataset_name="digits",
                                checkpoint_path=str(tmp_path), eval_dir=str(tmp_path),
                                batch_size=40, max_num_batches=2, moving_average_decay=0.99,
                                stream=io.StringIO())
    assert results[0].num_examples == 80
    expected = _by_hand(shadow, images[:80], labels[:80])
    assert (results[0].accuracy, results[0].recall_5) == pytest.approx(expected, abs=1e-12)


def test_eval_loop_picks_up_new_checkpoints(tmp_path):
    model = _lenet()
    compat.save_slim_checkpoint(model, str(tmp_path / "model.ckpt"), global_step=1)
    stream = io.StringIO()
    results = []

    def loop():
        results.extend(training.evaluate(
            model_name="lenet", dataset_name="digits", checkpoint_path=str(tmp_path),
            eval_dir=str(tmp_path / "eval"), batch_size=120, wait_for_checkpoints=True,
            eval_interval_secs=0, timeout=30, max_number_of_evaluations=2, stream=stream))

    thread = threading.Thread(target=loop)
    thread.start()
    deadline = time.time() + 60
    while "eval/Accuracy" not in stream.getvalue() and time.time() < deadline:
        time.sleep(0.2)
    assert "eval/Accuracy" in stream.getvalue(), "the first checkpoint was not evaluated"
    for variable in model.weights:  # a "newer" checkpoint: different weights
        variable.assign(variable.numpy() * 0.5)
    compat.save_slim_checkpoint(model, str(tmp_path / "model.ckpt"), global_step=2)
    thread.join(90)
    assert not thread.is_alive()
    assert [r.global_step for r in results] == [1, 2]
    assert [r.checkpoint.rsplit("-", 1)[-1] for r in results] == ["1", "2"]
    assert stream.getvalue().count("eval/Accuracy=") == 2


def test_eval_loop_times_out_without_checkpoints(tmp_path):
    code, _, err = run_cli("eval", "--model_name=lenet", "--dataset_name=digits",
                           f"--checkpoint_path={tmp_path}", f"--eval_dir={tmp_path}",
                           "--wait_for_checkpoints", "--timeout=1", "--eval_interval_secs=0")
    assert code == 1
    assert "no checkpoint appeared in" in err


def test_eval_of_a_checkpoint_of_another_net_fails_clearly(tmp_path):
    compat.save_slim_checkpoint(kslim.models.create_model("cifarnet", num_classes=10),
                                str(tmp_path / "model.ckpt"))
    code, _, err = run_cli("eval", "--model_name=lenet", "--dataset_name=digits",
                           f"--checkpoint_path={tmp_path}", f"--eval_dir={tmp_path}")
    assert code == 1
    assert "kslim eval: error: no variable of model 'LeNet' was found in checkpoint" in err
