"""kslim.compat: partial restore, checkpoint order, slim-format saving, bad input."""

import os
import shutil

import numpy as np
import pytest

import kslim
from kslim import compat
from kslim.compat import CheckpointError
from slim_harness import assert_close, recipe_inputs, recipe_value, restore_into_slim
from test_vgg import slim_vgg, vgg_reference  # noqa: F401  (session fixture)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
CIFARNET_V1 = os.path.join(FIXTURES, "cifarnet-10-32", "ckpt", "model.ckpt")


def snapshot(model):
    return {name: np.array(v.numpy()) for name, v in compat.slim_variables(model).items()}


def assert_unchanged(model, before):
    after = snapshot(model)
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)


@pytest.fixture
def cifarnet():
    return kslim.models.create_model("cifarnet", num_classes=10)


@pytest.fixture
def cifarnet_v2(tmp_path, cifarnet):
    """The fixture's slim-written V1 checkpoint, re-saved as V2 by kslim."""
    compat.restore(cifarnet, CIFARNET_V1)
    return compat.save_slim_checkpoint(cifarnet, str(tmp_path / "v2" / "model.ckpt"))


# -- the seed's partial restore ------------------------------------------------------------

@pytest.mark.parametrize("how", ["map", "callable"])
def test_ssd_backbone_restored_by_rename(vgg_reference, how):
    inputs, run = vgg_reference("vgg_16", 1000, "V2")
    model = kslim.models.create_model("vgg_16", name="ssd_vgg_512")
    assert "ssd_vgg_512/conv1/conv1_1/weights" in compat.slim_variables(model)
    if how == "map":
        rename = {"ssd_vgg_512": "vgg_16"}
    else:
        def rename(name):  # the seed's name_in_checkpoint
            return name.replace("ssd_vgg_512", "vgg_16")
    report = compat.restore(model, run.checkpoint, rename=rename)
    assert len(report.loaded) == len(run.variables) and not report.missing
    assert report.sources["ssd_vgg_512/fc8/biases"] == "vgg_16/fc8/biases"
    assert_close(model(inputs), run.output, "ssd_vgg_512 logits")


def test_new_head_excluded(vgg_reference):
    inputs, run = vgg_reference("vgg_16", 1000, "V2")
    model = kslim.models.create_model("vgg_16", num_classes=5)
    head = snapshot(model)
    report = compat.restore(model, run.checkpoint, exclude=["vgg_16/fc8"])
    assert sorted(report.excluded) == ["vgg_16/fc8/biases", "vgg_16/fc8/weights"]
    assert not report.missing and not report.mismatched and not report.unused
    assert "2 excluded" in str(report)
    after = snapshot(model)
    for name in report.excluded:
        np.testing.assert_array_equal(after[name], head[name])
    assert_close(model.endpoints(inputs)["vgg_16/fc7"], run.end_points["vgg_16/fc7"], "fc7")


def test_class_count_mismatch_reported_or_raised(vgg_reference):
    _, run = vgg_reference("vgg_16", 1000, "V2")
    model = kslim.models.create_model("vgg_16", num_classes=5)
    before = snapshot(model)
    with pytest.raises(CheckpointError, match=r"(?s)no weight was changed.*vgg_16/fc8/weights.*"
                                              r"\[1, 1, 4096, 1000\], model \[1, 1, 4096, 5\]"):
        compat.restore(model, run.checkpoint, strict=True)
    assert_unchanged(model, before)
    report = compat.restore(model, run.checkpoint)  # not strict: the head stays as it was
    assert sorted(report.mismatched) == ["vgg_16/fc8/biases", "vgg_16/fc8/weights"]
    assert "left as initialized" in str(report)
    after = snapshot(model)
    np.testing.assert_array_equal(after["vgg_16/fc8/weights"], before["vgg_16/fc8/weights"])
    assert not np.array_equal(after["vgg_16/fc7/weights"], before["vgg_16/fc7/weights"])


def test_missing_variables_fail_unless_ignored(vgg_reference):
    _, run = vgg_reference("vgg_16", 1000, "V2")
    model = kslim.models.create_model("vgg_19")
    before = snapshot(model)
    with pytest.raises(CheckpointError, match=r"(?s)vgg_19/conv3/conv3_4/weights: not in the "
                                              r"checkpoint \(looked for 'vgg_16/conv3/"):
        compat.restore(model, run.checkpoint, rename={"vgg_19": "vgg_16"})
    assert_unchanged(model, before)
    report = compat.restore(model, run.checkpoint, rename={"vgg_19": "vgg_16"},
                            ignore_missing=True)
    assert len(report.missing) == 6 and len(report.loaded) == 32


def test_rename_that_maps_nothing(cifarnet):
    before = snapshot(cifarnet)
    with pytest.raises(CheckpointError, match=r"no variable of model 'CifarNet' was found.*"
                                              r"rename="):
        compat.restore(cifarnet, CIFARNET_V1, rename={"CifarNet": "LeNet"})
    assert_unchanged(cifarnet, before)


def test_label_offset_drops_background_class(cifarnet):
    compat.restore(cifarnet, CIFARNET_V1)
    nine = kslim.models.create_model("cifarnet", num_classes=9)
    report = compat.restore(nine, CIFARNET_V1, label_offset=1)
    assert not report.mismatched
    x = recipe_inputs(2, 32)
    np.testing.assert_allclose(nine(x), cifarnet(x)[:, 1:], rtol=1e-6, atol=1e-6)


def test_optimizer_slots_and_moving_averages(tmp_path, cifarnet):
    names = compat.slim_variables(cifarnet)
    tensors = {name: recipe_value(name, v.shape) for name, v in names.items()}
    tensors.update({f"{n}/Momentum": np.zeros(v.shape, np.float32) for n, v in names.items()})
    tensors.update({f"{n}/ExponentialMovingAverage": 2 * tensors[n] for n in names})
    tensors["global_step"] = np.int64(7)
    prefix = compat.write_checkpoint(str(tmp_path / "zoo.ckpt"), tensors)
    report = compat.restore(cifarnet, prefix)
    assert not report.unused and not report.missing
    np.testing.assert_array_equal(cifarnet.logits.kernel.numpy(),
                                  tensors["CifarNet/logits/weights"])
    report = compat.restore(cifarnet, prefix, use_moving_average=True)
    assert report.sources["CifarNet/logits/weights"].endswith("/ExponentialMovingAverage")
    np.testing.assert_array_equal(cifarnet.logits.kernel.numpy(),
                                  2 * tensors["CifarNet/logits/weights"])


def test_weights_argument_initializes_what_it_does_not_load():
    """`weights=` skips drawing initial values it overwrites, but a head the checkpoint
    cannot fill still gets its initializer's values (not zeros)."""
    model = kslim.models.create_model("cifarnet", num_classes=5, weights=CIFARNET_V1)
    head = model.logits.kernel.numpy()
    assert np.std(head) > 0.5 / 192 and np.abs(head).max() <= 2 / 192 + 1e-6  # trunc normal
    reference = kslim.models.create_model("cifarnet", weights=CIFARNET_V1)
    np.testing.assert_array_equal(model.fc4.kernel.numpy(), reference.fc4.kernel.numpy())


def test_include_and_glob_patterns(cifarnet):
    report = compat.restore(cifarnet, CIFARNET_V1, include=["CifarNet/conv*"])
    assert sorted(report.loaded) == ["CifarNet/conv1/biases", "CifarNet/conv1/weights",
                                     "CifarNet/conv2/biases", "CifarNet/conv2/weights"]
    report = compat.restore(cifarnet, CIFARNET_V1, exclude="CifarNet/fc3,CifarNet/logits")
    assert len(report.excluded) == 4 and len(report.loaded) == 6
    report = compat.restore(cifarnet, CIFARNET_V1, exclude=["CifarNet/fc"])  # not a prefix
    assert not report.excluded  # 'CifarNet/fc' is no scope of 'CifarNet/fc3/...'


# -- which checkpoint --------------------------------------------------------------------

def test_resolve_checkpoint_order(tmp_path, cifarnet):
    train_dir, other = tmp_path / "train", tmp_path / "pretrained"
    assert compat.resolve_checkpoint(str(train_dir), None) is None
    older = compat.save_slim_checkpoint(cifarnet, str(other / "a.ckpt"))
    newer = compat.save_slim_checkpoint(cifarnet, str(other / "b.ckpt"))
    os.remove(other / "checkpoint")  # the newest by time, with no state file
    os.utime(older + ".index", (1, 1))
    assert compat.resolve_checkpoint(None, str(other)) == newer
    assert compat.resolve_checkpoint(str(train_dir), older) == older  # a prefix
    assert compat.resolve_checkpoint(str(train_dir), CIFARNET_V1) == CIFARNET_V1  # a V1 file
    resumed = compat.save_slim_checkpoint(cifarnet, str(train_dir / "model.ckpt"),
                                          global_step=3)
    assert resumed.endswith("model.ckpt-3")
    assert compat.resolve_checkpoint(str(train_dir), older) == resumed  # train_dir wins
    assert compat.resolve_checkpoint(None, str(tmp_path / "nothing")) is None


# -- saving --------------------------------------------------------------------------------

def test_saved_checkpoint_restores_into_tf_slim(vgg_reference, slim, tmp_path):
    inputs, run = vgg_reference("vgg_16", 1000, "V2")
    model = kslim.models.create_model("vgg_16", weights=run.checkpoint)
    prefix = compat.save_slim_checkpoint(model, str(tmp_path / "model.ckpt"), global_step=10)
    names = {name for name, _, _ in compat.list_checkpoint(prefix)}
    assert names == {name for name, _ in run.variables} | {"global_step"}
    logits = restore_into_slim(slim_vgg(slim, "vgg_16", 1000), inputs, prefix)
    np.testing.assert_array_equal(logits, run.output)


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, cifarnet, monkeypatch):
    compat.restore(cifarnet, CIFARNET_V1)
    first = compat.save_slim_checkpoint(cifarnet, str(tmp_path / "model.ckpt"), global_step=1)
    files = sorted(os.listdir(tmp_path))
    real_replace = os.replace

    def crash_on_index(src, dst):
        if dst.endswith(".index"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_index)
    for v in compat.slim_variables(cifarnet).values():
        v.assign(np.zeros(v.shape, np.float32))
    with pytest.raises(OSError, match="disk full"):
        compat.save_slim_checkpoint(cifarnet, str(tmp_path / "model.ckpt"), global_step=2)
    monkeypatch.undo()
    assert compat.resolve_checkpoint(str(tmp_path)) == first
    leftovers = set(os.listdir(tmp_path)) - set(files)
    assert not any(".tmp-" in f or f.endswith(".index") for f in leftovers), leftovers
    fresh = kslim.models.create_model("cifarnet", weights=str(tmp_path))
    x = recipe_inputs(2, 32)
    reference = kslim.models.create_model("cifarnet", weights=CIFARNET_V1)
    np.testing.assert_array_equal(fresh(x), reference(x))


def test_max_to_keep(tmp_path, cifarnet):
    for step in range(1, 5):
        compat.save_slim_checkpoint(cifarnet, str(tmp_path / "model.ckpt"),
                                    global_step=step, max_to_keep=2)
    indexes = sorted(f for f in os.listdir(tmp_path) if f.endswith(".index"))
    assert indexes == ["model.ckpt-3.index", "model.ckpt-4.index"]


# -- bad input -----------------------------------------------------------------------------

def test_truncated_data_file(tmp_path, cifarnet, cifarnet_v2):
    data = cifarnet_v2 + ".data-00000-of-00001"
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 2)
    fresh = kslim.models.create_model("cifarnet")
    before = snapshot(fresh)
    with pytest.raises(CheckpointError, match=r"cannot read variable 'CifarNet/.*' from "
                                              r"checkpoint '.*model.ckpt'.*truncated"):
        compat.restore(fresh, cifarnet_v2)
    assert_unchanged(fresh, before)


def test_truncated_v1_file(tmp_path):
    broken = tmp_path / "model.ckpt"
    shutil.copy(CIFARNET_V1, broken)
    with open(broken, "r+b") as f:
        f.truncate(os.path.getsize(broken) // 3)
    model = kslim.models.create_model("cifarnet")
    before = snapshot(model)
    with pytest.raises(CheckpointError, match=str(broken)):
        compat.restore(model, str(broken))
    assert_unchanged(model, before)


def test_missing_index(cifarnet_v2, cifarnet):
    os.remove(cifarnet_v2 + ".index")
    with pytest.raises(CheckpointError, match=r"index file '.*model.ckpt.index' is missing"):
        compat.restore(cifarnet, cifarnet_v2)


def test_not_a_checkpoint(tmp_path, cifarnet):
    junk = tmp_path / "notes.txt"
    junk.write_text("these are not the weights you are looking for\n" * 20)
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint '.*notes.txt': it is "
                                              r"not a TensorFlow checkpoint"):
        compat.restore(cifarnet, str(junk))
    with pytest.raises(CheckpointError, match=r"no checkpoint at '.*nowhere'"):
        compat.restore(cifarnet, str(tmp_path / "nowhere"))
    with pytest.raises(CheckpointError, match=r"no checkpoint in folder"):
        compat.restore(cifarnet, str(tmp_path))


def test_wrong_dtype_and_shape(tmp_path, cifarnet):
    names = compat.slim_variables(cifarnet)
    tensors = {name: recipe_value(name, v.shape) for name, v in names.items()}
    tensors["CifarNet/conv2/biases"] = tensors["CifarNet/conv2/biases"].astype(np.float64)
    bad_dtype = compat.write_checkpoint(str(tmp_path / "dtype.ckpt"), tensors)
    before = snapshot(cifarnet)
    with pytest.raises(CheckpointError, match=r"CifarNet/conv2/biases: checkpoint "
                                              r"'CifarNet/conv2/biases' is float64, the "
                                              r"model's variable is float32"):
        compat.restore(cifarnet, bad_dtype)
    tensors["CifarNet/conv2/biases"] = np.zeros([65], np.float32)
    bad_shape = compat.write_checkpoint(str(tmp_path / "shape.ckpt"), tensors)
    with pytest.raises(CheckpointError, match=r"(?s)CifarNet/conv2/biases: checkpoint .* shape "
                                              r"\[65\], model \[64\]"):
        compat.restore(cifarnet, bad_shape)  # outside the head: an error even when not strict
    assert_unchanged(cifarnet, before)


def test_list_checkpoint_v1_and_v2(cifarnet_v2):
    v1 = compat.list_checkpoint(CIFARNET_V1)
    v2 = compat.list_checkpoint(cifarnet_v2)
    assert v1 == v2
    assert ("CifarNet/fc3/weights", (4096, 384), "float32") in v1


def test_eval_graph_checkpoint_loads_without_training_only_aux_head(tmp_path):
    """Slim builds NASNet's aux head only when training: eval-graph checkpoints lack it."""
    eval_graph = kslim.models.create_model("nasnet_cifar", use_aux_head=False)
    prefix = compat.save_slim_checkpoint(eval_graph, str(tmp_path / "model.ckpt"))
    model = kslim.models.create_model("nasnet_cifar", weights=prefix)
    report = compat.restore(model, prefix)
    assert report.missing and all(n.startswith("aux_") for n in report.missing)
    x = recipe_inputs(1, 32)
    np.testing.assert_allclose(model(x), eval_graph(x), rtol=1e-5, atol=1e-4)
    with pytest.raises(CheckpointError, match="aux_"):
        compat.restore(model, prefix, strict=True)
