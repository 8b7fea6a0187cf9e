"""The slim model zoo: weights="slim", the download cache, offline use, the mirror.

No test reaches the internet: every test runs with `KSLIM_OFFLINE=1` and a fresh
`$KSLIM_HOME` unless it serves archives itself from a loopback HTTP server
(tests/zoo_helpers.py) through `KSLIM_ZOO_MIRROR`.
"""

import functools
import gzip
import hashlib
import json
import os
import re
import shutil
import time
import zlib

import numpy as np
import pytest
import tensorflow as tf

import kslim
from kslim import compat
from kslim.cli import main
from kslim.models import zoo
from slim_harness import assert_close, recipe_inputs, recipe_value, run_slim, with_scope
from zoo_helpers import add_bytes, add_link, serve, write_archive

ROOT = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(ROOT, "fixtures")
MOBILENET_FIXTURE = os.path.join(FIXTURES, "mobilenet_v1_025-1001-224")
MOBILENET_TAG = "mobilenet_v1_0.25_224"


@pytest.fixture(autouse=True)
def isolated_zoo(tmp_path, monkeypatch):
    """A fresh, empty cache per test, offline unless the test serves archives."""
    home = tmp_path / "kslim_home"
    monkeypatch.setenv("KSLIM_HOME", str(home))
    monkeypatch.setenv("KSLIM_OFFLINE", "1")
    monkeypatch.delenv("KSLIM_ZOO_MIRROR", raising=False)
    monkeypatch.delenv("KSLIM_ZOO_SHA256", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return home


def go_online(monkeypatch, base_url):
    monkeypatch.delenv("KSLIM_OFFLINE")
    monkeypatch.setenv("KSLIM_ZOO_MIRROR", base_url)


def cache_leftovers():
    """Everything in the zoo cache folder (names), or [] if it does not exist."""
    root = zoo.cache_dir()
    return sorted(os.listdir(root)) if os.path.isdir(root) else []


# -- archives --------------------------------------------------------------------------------


def _fast_value(name, shape):
    """The recipe's distributions in float32 (VGG-16's 138M weights in a few seconds)."""
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    shape = tuple(int(s) for s in shape)
    if name.endswith("/weights"):
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(
            np.sqrt(2.0 / np.prod(shape[:-1])))
    return np.float32(0.1) * rng.standard_normal(shape, dtype=np.float32)


@pytest.fixture(scope="session")
def vgg_zoo(slim, tmp_path_factory):
    """The 2016 zoo archive shape: `vgg_16.ckpt` (a V1 checkpoint tf_slim's vgg_16 wrote
    with a Saver) in `vgg_16_2016_08_28.tar.gz`; with slim's logits on an input."""
    from tf_slim.nets import vgg

    work = tmp_path_factory.mktemp("vgg_zoo")
    inputs = recipe_inputs(1, 224, seed=16)
    run = run_slim(lambda x: with_scope(vgg.vgg_arg_scope(), vgg.vgg_16, x, 1000,
                                        is_training=False),
                   inputs, checkpoint=str(work / "ckpt" / "vgg_16.ckpt"), write_version="V1",
                   value_fn=_fast_value)
    served = work / "served"
    served.mkdir()
    entry = zoo.get("vgg_16")
    # gzip level 0 (stored blocks): still a real gzip stream, without ~10 s of deflate.
    write_archive(served / entry.archive, {"vgg_16.ckpt": run.checkpoint}, compresslevel=0)
    shutil.rmtree(work / "ckpt")
    return served, inputs, run.output


def _mobilenet_manifest():
    with open(os.path.join(MOBILENET_FIXTURE, "manifest.json")) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def mobilenet_zoo(tmp_path_factory):
    """A zoo-shaped `mobilenet_v1_0.25_224.tgz`: the 2018 layout (V2 checkpoint
    `mobilenet_v1_0.25_224.ckpt.*` beside a frozen graph, a TFLite file and an info
    file) and global_step. The fixture's recipe weights (whose slim logits are
    expected.npz's) are the ExponentialMovingAverage shadows; the raw variables hold
    other values (half of them), as a checkpoint trained with moving averages does.
    Returns (folder, archive path, tensors)."""
    manifest = _mobilenet_manifest()
    tensors = {}
    for name, shape in manifest["variables"]:
        value = recipe_value(name, shape)
        tensors[name + "/ExponentialMovingAverage"] = value
        tensors[name] = value * np.float32(0.5)
    tensors["global_step"] = recipe_value("global_step", ())
    work = tmp_path_factory.mktemp("mobilenet_zoo")
    prefix = compat.write_checkpoint(str(work / "ckpt" / f"{MOBILENET_TAG}.ckpt"), tensors)
    files = {f"{MOBILENET_TAG}.ckpt.index": prefix + ".index",
             f"{MOBILENET_TAG}.ckpt.data-00000-of-00001": prefix + ".data-00000-of-00001"}

    def extras(tar):
        add_bytes(tar, f"{MOBILENET_TAG}.ckpt.meta", b"\x0a\x00meta graph")
        add_bytes(tar, f"{MOBILENET_TAG}_frozen.pb", b"\x0a\x00frozen graph")
        add_bytes(tar, f"{MOBILENET_TAG}.tflite", b"TFL3")
        add_bytes(tar, f"{MOBILENET_TAG}_info.txt", b"Model: mobilenet_v1_0.25_224\n")

    served = work / "served"
    served.mkdir()
    archive = write_archive(served / zoo.get(MOBILENET_TAG).archive, files, extras)
    return served, archive, tensors


def mobilenet_inputs():
    manifest = _mobilenet_manifest()
    return recipe_inputs(manifest["batch"], manifest["image_size"], manifest["input_seed"])


# -- 1. download, cache, parity --------------------------------------------------------------


def test_vgg16_downloads_caches_and_matches_slim(vgg_zoo, monkeypatch):
    served, inputs, slim_logits = vgg_zoo
    entry = zoo.get("vgg_16")
    with serve(served) as (server, url):
        go_online(monkeypatch, url)
        model = kslim.models.vgg16(weights="slim")
        assert server.requests == [entry.archive]
    diff = assert_close(model(inputs, training=False), slim_logits, "vgg_16 zoo logits")
    print(f"vgg_16 zoo logits: max |kslim - slim| = {diff:.3g}")
    prefix = zoo.cached_checkpoint(entry)
    assert prefix == os.path.join(zoo.cache_dir(), "vgg_16", "vgg_16.ckpt")
    assert cache_leftovers() == ["vgg_16"]  # no work folder, no archive left behind
    marker = json.load(open(os.path.join(zoo.cache_dir(), "vgg_16", zoo.MARKER)))
    assert marker["origin"] == url + entry.archive and len(marker["archive_sha256"]) == 64
    del model
    # The server is gone and the mirror still points at it: a second load reads only
    # the cache (any network use would fail).
    again = kslim.models.create_model("vgg_16", weights="slim")
    assert_close(again(inputs, training=False), slim_logits, "vgg_16 from the cache")


# -- 2. offline, drop folder, import -----------------------------------------------------------


def test_offline_fails_fast_then_import_makes_it_work(mobilenet_zoo, monkeypatch, capsys):
    served, archive, _ = mobilenet_zoo
    entry = zoo.get(MOBILENET_TAG)
    with serve(served) as (server, url):
        monkeypatch.setenv("KSLIM_ZOO_MIRROR", url)  # offline wins over the mirror
        start = time.perf_counter()
        with pytest.raises(zoo.ZooError) as error:
            kslim.models.mobilenet_v1_025(weights="slim")
        elapsed = time.perf_counter() - start
        assert server.requests == []
    message = str(error.value)
    assert url + entry.archive in message  # the URL it would fetch
    assert zoo.drop_path(entry) in message  # where to put the file
    assert f"kslim zoo import {entry.archive}" in message
    assert elapsed < 30, f"offline failure took {elapsed:.1f}s"
    assert zoo.cached_checkpoint(entry) is None

    assert main(["zoo", "import", archive]) == 0
    assert "installed" in capsys.readouterr().out
    model = kslim.models.mobilenet_v1_025(weights="slim")
    expected = np.load(os.path.join(MOBILENET_FIXTURE, "expected.npz"))
    # The archive carries moving-average shadows: the zoo loads them (slim's evaluation
    # weights, as eval_image_classifier with --moving_average_decay).
    diff = assert_close(model(mobilenet_inputs(), training=False), expected["logits"],
                        "mobilenet_v1_025 zoo logits")
    print(f"mobilenet_v1_025 zoo logits: max |kslim - slim| = {diff:.3g}")
    # Only the checkpoint is kept (not the frozen graph, TFLite or info files).
    kept = sorted(os.listdir(os.path.join(zoo.cache_dir(), entry.tag)))
    assert kept == sorted([f"{MOBILENET_TAG}.ckpt.data-00000-of-00001",
                           f"{MOBILENET_TAG}.ckpt.index", zoo.MARKER])


def test_dropped_archive_installs_offline(mobilenet_zoo):
    _, archive, tensors = mobilenet_zoo
    entry = zoo.get(MOBILENET_TAG)
    os.makedirs(os.path.dirname(zoo.drop_path(entry)))
    shutil.copy(archive, zoo.drop_path(entry))
    prefix = zoo.fetch(MOBILENET_TAG)
    assert prefix == zoo.cached_checkpoint(entry)
    assert not os.path.exists(zoo.drop_path(entry))  # installed, so removed
    name = "MobilenetV1/Conv2d_0/weights/ExponentialMovingAverage"
    np.testing.assert_array_equal(tf.train.load_checkpoint(prefix).get_tensor(name),
                                  tensors[name])


def test_local_folder_mirror_and_cli_fetch(mobilenet_zoo, monkeypatch, capsys):
    served, _, _ = mobilenet_zoo
    monkeypatch.setenv("KSLIM_ZOO_MIRROR", str(served))  # a folder: no network needed
    assert main(["zoo", "fetch", "mobilenet_v1_025"]) == 0  # a net name: its default entry
    out = capsys.readouterr().out
    assert out.startswith(f"{MOBILENET_TAG}: ") and zoo.cache_dir() in out
    assert main(["zoo", "list", "mobilenet_v1_025"]) == 0
    listing = capsys.readouterr().out
    row = next(line for line in listing.splitlines() if line.startswith(MOBILENET_TAG + " "))
    assert "mobilenet_v1_025" in row and "49.8" in row and "74.2" in row
    assert row.endswith("* cached")


# -- 3. unsafe archives, truncated downloads, sha256 pins ---------------------------------------


def _mobilenet_files(tmp_path, tensors):
    prefix = compat.write_checkpoint(str(tmp_path / "ckpt" / "m.ckpt"), tensors)
    return {f"{MOBILENET_TAG}.ckpt.index": prefix + ".index",
            f"{MOBILENET_TAG}.ckpt.data-00000-of-00001": prefix + ".data-00000-of-00001"}


EVIL = {
    "dotdot": lambda tar: add_bytes(tar, "../escaped.txt", b"outside"),
    "nested_dotdot": lambda tar: add_bytes(tar, "ok/../../escaped.txt", b"outside"),
    "absolute": lambda tar: add_bytes(tar, "/tmp/kslim_zoo_escaped.txt", b"outside"),
    "symlink_out": lambda tar: add_link(tar, "link", "../../../etc"),
    "symlink_absolute": lambda tar: add_link(tar, "link", "/etc/passwd"),
    "hardlink_out": lambda tar: add_link(tar, "hard", "../outside.txt", hard=True),
}


@pytest.mark.parametrize("kind", sorted(EVIL))
def test_malicious_archive_is_refused(kind, mobilenet_zoo, tmp_path):
    _, _, tensors = mobilenet_zoo
    archive = write_archive(tmp_path / zoo.get(MOBILENET_TAG).archive,
                            _mobilenet_files(tmp_path, tensors), EVIL[kind])
    with pytest.raises(zoo.UnsafeArchiveError, match="refused"):
        zoo.import_archive(archive)
    assert cache_leftovers() == []
    assert not os.path.exists(os.path.join(zoo.cache_dir(), "escaped.txt"))
    assert not os.path.exists(os.path.join(os.path.dirname(zoo.cache_dir()), "escaped.txt"))
    assert not os.path.exists("/tmp/kslim_zoo_escaped.txt")


@pytest.mark.parametrize("send_length", [True, False], ids=["content_length", "no_length"])
def test_truncated_download_leaves_no_cache_entry(send_length, mobilenet_zoo, monkeypatch):
    served, _, _ = mobilenet_zoo
    with serve(served, truncate=0.5, send_length=send_length) as (server, url):
        go_online(monkeypatch, url)
        with pytest.raises(zoo.ZooError) as error:
            zoo.fetch(MOBILENET_TAG)
        assert server.requests == [zoo.get(MOBILENET_TAG).archive]
    # Announced length: urlretrieve notices the short read; no length: the archive
    # check finds the gzip stream cut short.
    assert ("could not download" if send_length else "not a complete tar archive") in str(
        error.value)
    assert cache_leftovers() == []
    with serve(served) as (_, url):  # the same fetch then works
        monkeypatch.setenv("KSLIM_ZOO_MIRROR", url)
        assert zoo.fetch(MOBILENET_TAG) == zoo.cached_checkpoint(MOBILENET_TAG)


def test_sha256_pins(mobilenet_zoo, monkeypatch):
    served, archive, _ = mobilenet_zoo
    good = hashlib.sha256(open(archive, "rb").read()).hexdigest()
    wrong = "0" * 64
    with serve(served) as (_, url):
        go_online(monkeypatch, url)
        monkeypatch.setenv("KSLIM_ZOO_SHA256", f"vgg_16={good},{MOBILENET_TAG}={wrong}")
        with pytest.raises(zoo.ZooError, match=f"has sha256 {good}, but the pin"):
            kslim.models.mobilenet_v1_025(weights="slim")
        assert cache_leftovers() == []
        with pytest.raises(zoo.ZooError, match="pin"):
            zoo.import_archive(archive)
        assert cache_leftovers() == []
        # The right pin (by archive file name, or as an argument) installs.
        monkeypatch.setenv("KSLIM_ZOO_SHA256", f"{os.path.basename(archive)}={good}")
        kslim.models.mobilenet_v1_025(weights="slim", sha256=good)
    # A cached copy from another archive than the pinned one is refused too.
    with pytest.raises(zoo.ZooError, match="was installed from an archive"):
        zoo.fetch(MOBILENET_TAG, sha256=wrong)
    monkeypatch.setenv("KSLIM_ZOO_SHA256", f"{MOBILENET_TAG}=xyz")
    with pytest.raises(zoo.ZooError, match="64 hex digits"):
        zoo.fetch(MOBILENET_TAG)


def test_archive_without_the_checkpoint_is_refused(tmp_path):
    archive = write_archive(tmp_path / zoo.get(MOBILENET_TAG).archive, {},
                            lambda tar: add_bytes(tar, "README.txt", b"no checkpoint here"))
    with pytest.raises(zoo.ZooError, match="no checkpoint 'mobilenet_v1_0.25_224.ckpt'"):
        zoo.import_archive(archive)
    not_tar = tmp_path / "mobilenet_v1_0.5_224.tgz"
    not_tar.write_bytes(b"<html>403 Forbidden</html>")
    with pytest.raises(zoo.ZooError, match="not a complete tar archive"):
        zoo.import_archive(not_tar)
    assert cache_leftovers() == []


def test_good_archive_is_kept_when_the_model_does_not_fit(mobilenet_zoo, monkeypatch):
    """A model built with other options than the checkpoint's gets a restore error
    naming the shapes, but the (good) archive is installed, not thrown away."""
    served, _, _ = mobilenet_zoo
    monkeypatch.setenv("KSLIM_ZOO_MIRROR", str(served))
    other = kslim.models.create_model("mobilenet_v1_050")
    with pytest.raises(compat.CheckpointError, match="has shape"):
        zoo.load_weights(other, MOBILENET_TAG)
    assert zoo.cached_checkpoint(MOBILENET_TAG) is not None


def test_checkpoint_of_another_net_is_refused(mobilenet_zoo, tmp_path):
    """An archive whose checkpoint does not fit the net (here: mobilenet 0.25 weights
    named as the 0.5 archive) fails the dry-run restore and is not installed."""
    _, archive, _ = mobilenet_zoo
    wrong = tmp_path / "mobilenet_v1_0.5_224.tgz"
    shutil.copy(archive, wrong)
    with pytest.raises(zoo.ZooError, match="does not fit mobilenet_v1_050"):
        zoo.import_archive(wrong)  # its member name differs too: the only checkpoint is used
    assert cache_leftovers() == []


# -- 4. class counts -----------------------------------------------------------------------------


def test_label_offset_and_other_class_counts(mobilenet_zoo):
    _, archive, _ = mobilenet_zoo
    zoo.import_archive(archive)
    images = mobilenet_inputs()
    full = kslim.models.mobilenet_v1_025(weights="slim")
    assert full.num_classes == 1001  # the entry's count is the default
    logits = np.asarray(full(images, training=False))
    thousand = kslim.models.mobilenet_v1_025(weights="slim", num_classes=1000)
    np.testing.assert_allclose(np.asarray(thousand(images, training=False)), logits[:, 1:],
                               rtol=0, atol=1e-6)

    with pytest.warns(UserWarning, match=r"except its classifier \(MobilenetV1/Logits\)"):
        ten = kslim.models.mobilenet_v1_025(weights="slim", num_classes=10)
    variables = compat.slim_variables(ten)
    reference = compat.slim_variables(full)
    for name, variable in variables.items():
        if not name.startswith("MobilenetV1/Logits/"):
            np.testing.assert_array_equal(variable.numpy(), reference[name].numpy(), name)
    with pytest.raises(zoo.ZooError, match="strict=True"):
        kslim.models.mobilenet_v1_025(weights="slim", num_classes=10, strict=True)

    features = kslim.models.mobilenet_v1_025(weights="slim", include_top=False)
    np.testing.assert_allclose(np.asarray(features(images)),
                               np.asarray(full.endpoints(images)["AvgPool_1a"]), atol=1e-5)
    renamed = kslim.models.mobilenet_v1_025(weights="slim", name="backbone")
    np.testing.assert_allclose(np.asarray(renamed(images)), logits, atol=1e-5)


# -- lookups and the table ---------------------------------------------------------------------


def test_lookup_errors_and_spec_entries():
    with pytest.raises(zoo.ZooError, match="no zoo checkpoint for 'lenet'"):
        kslim.models.lenet(weights="slim")
    with pytest.raises(zoo.ZooError, match="checkpoint of 'mobilenet_v2_140'"):
        zoo.lookup("mobilenet_v2", "slim:mobilenet_v2_1.4_224")
    with pytest.raises(zoo.ZooError, match="did you mean mobilenet_v1_0.5_224"):
        zoo.get("mobilenet_v1_0.55_224")
    assert zoo.get("vgg_16_2016_08_28.tar.gz").tag == "vgg_16"
    assert zoo.get("vgg_16_2016_08_28") is zoo.get("vgg_16")
    assert zoo.lookup("vgg_16", "slim").url.endswith("/vgg_16_2016_08_28.tar.gz")
    assert kslim.models.get_spec("vgg16").zoo == (zoo.get("vgg_16"),)
    tags = [e.tag for e in kslim.models.get_spec("mobilenet_v1_050").zoo]
    assert tags == [f"mobilenet_v1_0.5_{s}{q}" for q in ("", "_quant")
                    for s in (224, 192, 160, 128)]
    with pytest.raises(ValueError, match="unknown option strict"):
        kslim.models.lenet(strict=True)  # zoo options need zoo weights


# Every net family kslim has or will have, with the nets slim published checkpoints for.
ZOO_NETS = {
    "inception_v1", "inception_v2", "inception_v3", "inception_v4", "inception_resnet_v2",
    "resnet_v1_50", "resnet_v1_101", "resnet_v1_152", "resnet_v2_50", "resnet_v2_101",
    "resnet_v2_152", "vgg_16", "vgg_19", "mobilenet_v1", "mobilenet_v1_075",
    "mobilenet_v1_050", "mobilenet_v1_025", "mobilenet_v2", "mobilenet_v2_140",
    "mobilenet_v2_035", "mobilenet_v3_small", "mobilenet_v3_large",
    "mobilenet_v3_small_minimalistic", "mobilenet_v3_large_minimalistic", "mobilenet_edgetpu",
    "mobilenet_edgetpu_075", "nasnet_mobile", "nasnet_large", "pnasnet_mobile", "pnasnet_large",
}


def test_table_is_complete_and_consistent():
    rows = zoo.entries()
    assert len(rows) == 63 + 16 + 22  # + the MobileNet v1 and v2 _quant rows (issue 15)
    assert {e.net for e in rows} == ZOO_NETS
    assert {e.net for e in rows if e.default} == ZOO_NETS  # one default each (checked on load)
    assert len({e.archive for e in rows}) == len(rows)
    for e in rows:
        assert e.num_classes == (1000 if e.net.startswith(("vgg", "resnet_v1")) else 1001), e
        assert e.preprocessing == ("vgg" if e.num_classes == 1000 else "inception"), e
        assert e.url.startswith(("http://download.tensorflow.org/models/",
                                 "https://storage.googleapis.com/")), e
        # The v2 README gives the uint8 checkpoints no accuracy of their own.
        assert e.top1 is not None or e.quantized, e
        assert e.top1 is None or e.top5 is None or e.top5 > e.top1, e
    assert zoo.get("resnet_v2_50").image_size == 299  # evaluated at 299, Inception style
    assert zoo.get("mobilenet_v2_1.0_96").image_size == 96


# -- 5. every row fits its net ----------------------------------------------------------------


def _config(entry):
    kwargs = ",".join(f"{k}={v}" for k, v in sorted(entry.kwargs.items()))
    return f"{entry.net}({kwargs})" if kwargs else entry.net


@functools.lru_cache(maxsize=1)
def _reference_lists():
    """{config: [[name, shape]]}: slim's variable lists of every zoo configuration (see
    the file's "about": tf_slim's nets, research/slim's MobileNets checked against the
    fixtures, and the fixture manifests)."""
    with gzip.open(os.path.join(FIXTURES, "zoo_variables.json.gz"), "rt") as f:
        return json.load(f)["variables"]


def _tf_slim_variables(module_name, fn_name, scope_name, num_classes, size):
    import importlib

    module = importlib.import_module(f"tf_slim.nets.{module_name}")
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, [1, size, size, 3])
        with_scope(getattr(module, scope_name)(), getattr(module, fn_name), images,
                   num_classes, is_training=False)
        return [[v.op.name, v.shape.as_list()] for v in tf.compat.v1.global_variables()]


@pytest.mark.parametrize("net,args", [
    ("vgg_16", ("vgg", "vgg_16", "vgg_arg_scope", 1000, 224)),
    ("inception_v1", ("inception", "inception_v1", "inception_v3_arg_scope", 1001, 224)),
])
def test_stored_variable_lists_are_tf_slims(slim, net, args):
    """The stored lists of the tf_slim nets are what tf_slim builds (two spot checks;
    the rest were written the same way)."""
    assert _tf_slim_variables(*args) == _reference_lists()[net]


# NASNet/PNASNet build their auxiliary head only in slim's training graph (the fixture
# manifests are eval graphs); the zoo checkpoints, trained, hold it, and so do kslim's
# models by default. The row check compares the rest and requires the head's variables
# to sit under one aux_<cell>/aux_logits scope.
_AUX_IN_TRAINING_ONLY = ("nasnet_mobile", "nasnet_large", "pnasnet_mobile", "pnasnet_large")


@functools.lru_cache(maxsize=None)
def _kslim_variables(net, kwargs, num_classes, image_size):
    """{slim name: shape} of the kslim net, built without initializing its weights
    (a StatelessScope defers them: only names and shapes are needed here)."""
    import keras
    from keras.src.backend.common import global_state

    try:
        with keras.StatelessScope(initialize_variables=False):
            model = kslim.models.create_model(net, num_classes=num_classes,
                                              input_shape=(image_size, image_size, 3),
                                              **dict(kwargs))
        return {name: tuple(v.shape) for name, v in compat.slim_variables(model).items()}
    finally:  # never initialize these later (keras keeps a list of deferred variables)
        global_state.set_global_attribute("uninitialized_variables", [])


@pytest.mark.parametrize("tag", [e.tag for e in zoo.entries()])
def test_zoo_row_fits_its_net(tag):
    entry = zoo.get(tag)
    assert entry.net in kslim.models.list_models(), f"{entry.net} is not registered yet"
    assert entry in kslim.models.get_spec(entry.net).zoo
    # Variables do not depend on the image size: one build per configuration.
    first = next(e for e in zoo.entries_for(entry.net) if _config(e) == _config(entry))
    ours = dict(_kslim_variables(entry.net, tuple(sorted(entry.kwargs.items())),
                                 entry.num_classes, first.image_size))
    reference = {name: tuple(shape) for name, shape in _reference_lists()[_config(entry)]}
    if entry.net in _AUX_IN_TRAINING_ONLY:
        aux = {name for name in ours if name not in reference}
        assert len({name.split("/")[0] for name in aux}) == 1, sorted(aux)
        assert all(re.match(r"aux_\d+/aux_logits/", name) for name in aux), sorted(aux)
        ours = {name: shape for name, shape in ours.items() if name not in aux}
    missing, extra = sorted(set(reference) - set(ours)), sorted(set(ours) - set(reference))
    assert not missing and not extra, (
        f"{_config(entry)}: missing {missing[:5]} ({len(missing)}), extra {extra[:5]} "
        f"({len(extra)})")
    wrong = {n: (ours[n], reference[n]) for n in reference if ours[n] != reference[n]}
    assert not wrong, f"{_config(entry)}: shapes (kslim, slim) differ: {list(wrong.items())[:5]}"
