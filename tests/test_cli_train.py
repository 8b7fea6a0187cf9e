"""`kslim train` and `kslim demo`: slim's flags, slim-format checkpoints that tf_slim
restores, slim's resume order, warm start with trainable scopes, NaN, bad flags."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

import kslim
from kslim import compat
from slim_harness import assert_close, restore_into_slim
from training_helpers import digits_batch, event_scalars, run_cli, slim_lenet

TRAIN = ("train", "--model_name=lenet", "--dataset_name=digits", "--batch_size=8",
         "--seed=0", "--verbose=0")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """4 steps of LeNet on the embedded digits, from the CLI, with no dataset_dir."""
    train_dir = tmp_path_factory.mktemp("lenet_train")
    code, out, err = run_cli(*TRAIN, f"--train_dir={train_dir}", "--max_number_of_steps=4",
                             "--log_every_n_steps=2", "--moving_average_decay=0.99")
    assert code == 0, err
    return train_dir, out


def test_train_writes_slim_checkpoints_that_tf_slim_restores(first_run, slim):
    train_dir, out = first_run
    assert re.search(r"global step 2: loss = \d+\.\d+ \(\d+\.\d+ sec/step\)", out)
    assert "Finished at global step 4" in out
    prefix = compat.resolve_checkpoint(train_dir=str(train_dir))
    assert os.path.basename(prefix) == "model.ckpt-4"
    names = {n for n, _, _ in compat.list_checkpoint(prefix)}
    assert {"global_step", "LeNet/fc4/weights", "LeNet/fc4/weights/RMSProp",
            "LeNet/fc4/weights/RMSProp_1", "LeNet/fc4/weights/ExponentialMovingAverage"} <= names
    scalars = event_scalars(train_dir)  # TensorBoard: slim's summary names
    assert scalars["total_loss"][-1][0] == 4
    assert scalars["learning_rate"][-1] == (4, pytest.approx(0.01))
    assert "train/accuracy" in scalars

    images, _ = digits_batch(8)
    reference = restore_into_slim(lambda x: slim_lenet(x, 10), images, prefix)
    model = kslim.models.create_model("lenet", num_classes=10, input_shape=(28, 28, 1),
                                      weights=prefix)
    assert_close(model(images, training=False), reference, "LeNet logits after training")
    # the trained weights are not the initial ones
    assert float(np.max(np.abs(reference))) > 0


def test_second_run_resumes_from_train_dir_not_checkpoint_path(first_run, tmp_path):
    train_dir, _ = first_run
    other = kslim.models.create_model("lenet", num_classes=10, input_shape=(28, 28, 1))
    elsewhere = compat.save_slim_checkpoint(other, str(tmp_path / "other" / "model.ckpt"))
    code, out, err = run_cli(*TRAIN, f"--train_dir={train_dir}", "--max_number_of_steps=6",
                             f"--checkpoint_path={elsewhere}", "--moving_average_decay=0.99")
    assert code == 0, err
    assert f"Resuming from {train_dir}{os.sep}model.ckpt-4 at global step 4" in out
    assert "Ignoring --checkpoint_path because a checkpoint already exists" in out
    assert "Finished at global step 6" in out
    state = [os.path.basename(p) for p in
             tf.train.get_checkpoint_state(str(train_dir)).all_model_checkpoint_paths]
    assert state == ["model.ckpt-4", "model.ckpt-6"]
    # already at max_number_of_steps: nothing to do, nothing lost
    code, out, _ = run_cli(*TRAIN, f"--train_dir={train_dir}", "--max_number_of_steps=6")
    assert code == 0 and "nothing to train" in out


def test_warm_start_excludes_logits_and_trains_only_trainable_scopes(first_run, tmp_path):
    train_dir, _ = first_run
    pretrained = compat.resolve_checkpoint(train_dir=str(train_dir))
    reader = tf.train.load_checkpoint(pretrained)
    before = {n: reader.get_tensor(n) for n in compat.slim_variables(
        kslim.models.create_model("lenet", num_classes=10, input_shape=(28, 28, 1)))}
    finetune = tmp_path / "finetune"
    code, out, err = run_cli(*TRAIN[:-2], "--seed=7", "--verbose=0",
                             f"--train_dir={finetune}", "--max_number_of_steps=3",
                             f"--checkpoint_path={train_dir}",
                             "--checkpoint_exclude_scopes=LeNet/fc4",
                             "--trainable_scopes=LeNet/fc4", "--optimizer=sgd",
                             "--learning_rate=0.1")
    assert code == 0, err
    assert re.search(r"Fine-tuning from restored 6 of 6 variables from \S+model.ckpt-\d+ "
                     r"\(2 excluded", out), out
    assert "excluded: LeNet/fc4/weights, LeNet/fc4/biases" in out
    after_reader = tf.train.load_checkpoint(str(finetune / "model.ckpt-3"))
    for name, value in before.items():
        after = after_reader.get_tensor(name)
        if name.startswith("LeNet/fc4/"):
            assert not np.array_equal(after, value), f"{name} was restored or not trained"
        else:
            np.testing.assert_array_equal(after, value, err_msg=f"{name} changed")
    assert "LeNet/conv1/weights/Momentum" not in {
        n for n, _, _ in compat.list_checkpoint(str(finetune))}


def test_nan_loss_stops_training_naming_the_step(tmp_path):
    code, out, err = run_cli(*TRAIN, f"--train_dir={tmp_path}", "--max_number_of_steps=20",
                             "--optimizer=sgd", "--learning_rate=1e30",
                             "--learning_rate_decay_type=fixed")
    assert code == 1
    match = re.search(r"kslim train: error: loss became (nan|inf) at global step (\d+)", err)
    assert match, err
    assert 1 <= int(match.group(2)) < 20
    assert compat.resolve_checkpoint(train_dir=str(tmp_path)) is None  # nothing diverged saved


@pytest.mark.parametrize("flags, message", [
    (["--model_nme=lenet"], r"unknown flag --model_nme \(did you mean --model_name\?\)"),
    (["--optimizer=adamw"], r"argument --optimizer: invalid choice: 'adamw'"),
    (["--batch_size=abc"], r"argument --batch_size: invalid int value: 'abc'"),
    (["--ignore_missing_vars=maybe"], r"expected true or false, got 'maybe'"),
    (["--learning_rat", "0.1"], r"unknown flag --learning_rat \(did you mean --learning_rate\?"),
])
def test_bad_flags_get_a_usage_error(flags, message):
    code, _, err = run_cli("train", "--model_name=lenet", *flags)
    assert code == 2
    assert re.search(message, err), err


@pytest.mark.parametrize("flags, message", [
    (["--batch_size=0"], r"--batch_size must be positive, got 0"),
    (["--model_name=lenett"], r"unknown model name 'lenett'; did you mean lenet"),
    (["--dataset_name=flowers"], r"dataset_dir is required for dataset 'flowers'"),
    (["--num_ps_tasks=2"], r"--num_ps_tasks: parameter servers are not used"),
    (["--trainable_scopes=LeNet/fc5"], r"trainable_scopes LeNet/fc5 match no trainable"),
    (["--checkpoint_path=/no/such/ckpt"], r"no checkpoint at '/no/such/ckpt'"),
])
def test_bad_flag_values_get_a_clear_error(flags, message, tmp_path):
    code, _, err = run_cli("train", "--model_name=lenet", "--dataset_name=digits",
                           f"--train_dir={tmp_path}", "--max_number_of_steps=1",
                           "--verbose=0", *flags)
    assert code == 1
    assert re.search(r"kslim train: error: .*" + message, err), err


def test_absl_style_boolean_flags():
    from kslim.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["train", "--ignore_missing_vars"]).ignore_missing_vars is True
    assert parser.parse_args(["train", "--ignore_missing_vars=false"]).ignore_missing_vars \
        is False
    assert parser.parse_args(["train", "--noclone_on_cpu"]).clone_on_cpu is False
    args = parser.parse_args(["train"])
    # train_image_classifier.py's defaults
    assert (args.model_name, args.dataset_name, args.optimizer, args.learning_rate,
            args.batch_size, args.weight_decay, args.opt_epsilon, args.num_epochs_per_decay,
            args.learning_rate_decay_factor, args.save_interval_secs, args.log_every_n_steps,
            args.max_number_of_steps) == ("inception_v3", "imagenet", "rmsprop", 0.01, 32,
                                          0.00004, 1.0, 2.0, 0.94, 600, 10, None)


def test_demo_reaches_95_percent(tmp_path):
    code, out, err = run_cli("demo", f"--work_dir={tmp_path}")
    assert code == 0, err
    lines = out.strip().splitlines()
    match = re.fullmatch(r"eval/Accuracy=([0-9.]+) eval/Recall_5=([0-9.]+)", lines[-1])
    assert match, lines[-1]
    accuracy = float(match.group(1))
    assert accuracy >= 0.95, out
    # the checkpoint's own evaluation printed the same numbers as the reloaded net
    assert lines.count(lines[-1]) == 2
    assert os.path.exists(tmp_path / "digits" / "digits_train.tfrecord")
    assert os.path.exists(tmp_path / "digits" / "labels.txt")
