"""Issue 16, checkpoints: saves that survive `kill -9` and each other, stale temporaries
cleaned up, unwritable folders named; restore's shared, exact-name and dtype cases.

The kills are real: a child process saves the same prefix in a loop and is killed with
SIGKILL at random moments; a deterministic hook also stops a save at each of its renames.
"""

import glob
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

import kslim
from kslim import compat
from kslim.compat import CheckpointError
from kslim.compat import _save
from kslim.compat._checkpoint import check_readable, reading_lock

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
CIFARNET_V1 = os.path.join(FIXTURES, "cifarnet-10-32", "ckpt", "model.ckpt")
NAMES = [f"block{i}/weights" for i in range(4)]

# One child imports TensorFlow once and forks a saver per request (`prefix version count`:
# save `prefix` `count` times, every tensor holding the save's version number), so the
# test pays one TensorFlow start for all its kills. `wait pid` reaps one and prints its
# status. No TensorFlow op runs before a fork.
ZYGOTE = textwrap.dedent("""
    import os
    import sys
    import numpy as np
    from kslim.compat._save import write_checkpoint

    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[0] == "wait":
            print(os.waitpid(int(words[1]), 0)[1], flush=True)
            continue
        prefix, version, count = words[0], int(words[1]), int(words[2])
        pid = os.fork()
        if pid == 0:
            for _ in range(count):
                version += 1
                tensors = {f"block{i}/weights": np.full((128, 256), version, np.float32)
                           for i in range(4)}
                tensors["version"] = np.int64(version)
                write_checkpoint(prefix, tensors)
            os._exit(0)
        print(pid, flush=True)
""")


class Savers:
    def __init__(self):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
        self.process = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        env=env)
        assert self._ask("") == "ready"

    def _ask(self, line: str) -> str:
        if line:
            self.process.stdin.write(line.encode() + b"\n")
            self.process.stdin.flush()
        return self.process.stdout.readline().decode().strip()

    def start(self, prefix: str, version: int, count: int = 10**6) -> int:
        return int(self._ask(f"{prefix} {version} {count}"))

    def wait(self, pid: int) -> int:
        return int(self._ask(f"wait {pid}"))

    def close(self):
        self.process.stdin.close()
        self.process.wait(30)


@pytest.fixture(scope="module")
def savers():
    savers = Savers()
    yield savers
    savers.close()


def tensors_of(version: int) -> dict:
    tensors = {name: np.full((128, 256), version, np.float32) for name in NAMES}
    tensors["version"] = np.int64(version)
    return tensors


def read_version(prefix: str) -> int:
    """The version of the checkpoint at `prefix`; fails unless every tensor reads (CRCs
    checked) and all come from one save. Reads as kslim's restore does: under the
    folder's shared lock, so no save swaps files in the middle of the read."""
    check_readable(prefix)
    with reading_lock(prefix):
        reader = tf.train.load_checkpoint(prefix)
        version = int(reader.get_tensor("version"))
        for name in NAMES:
            values = np.unique(reader.get_tensor(name))
            assert values.tolist() == [version], f"{name} holds {values} in checkpoint {version}"
    return version


def temporaries(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if ".kslim-tmp-" in n)


# -- 3. a save never destroys the previous checkpoint -----------------------------------------


def test_save_killed_at_random_moments_keeps_a_whole_checkpoint(tmp_path, savers):
    prefix = str(tmp_path / "model.ckpt")
    compat.write_checkpoint(prefix, tensors_of(0))
    rng = random.Random(16)
    seen = [0]
    for kill in range(1, 4):
        pid = savers.start(prefix, kill * 100_000)  # versions stay exact in float32
        time.sleep(rng.uniform(0.3, 1.2))  # each save takes milliseconds: any moment
        os.kill(pid, signal.SIGKILL)
        assert savers.wait(pid) == signal.SIGKILL
        version = read_version(prefix)  # old or new, never missing, never mixed
        assert version >= seen[-1]
        seen.append(version)
    assert seen[-1] > 0, "the child never completed a save"
    # The next save removes what the killed ones left, and the prefix stays one pair.
    compat.write_checkpoint(prefix, tensors_of(7))
    assert read_version(prefix) == 7
    assert temporaries(tmp_path) == []
    data = glob.glob(prefix + ".data-*")
    assert len({name.rsplit("-of-", 1)[1] for name in data}) == 1, data


@pytest.mark.parametrize("published_shards", [1, 2])
def test_save_stopped_at_each_rename(tmp_path, monkeypatch, published_shards):
    """A deterministic kill between the renames: at every step either the old or the
    new checkpoint reads, whole."""
    prefix = str(tmp_path / "model.ckpt")
    for version in range(published_shards):  # the second save publishes two shards
        compat.write_checkpoint(prefix, tensors_of(version))
    old = published_shards - 1
    assert {n.rsplit("-of-", 1)[1] for n in glob.glob(prefix + ".data-*")} == {
        f"{published_shards:05d}"}
    real_replace = os.replace

    class Killed(BaseException):
        pass

    step = 0
    while True:
        calls = []

        def dying_replace(src, dst):
            if len(calls) == step:
                raise Killed
            calls.append(dst)
            return real_replace(src, dst)

        monkeypatch.setattr(_save.os, "replace", dying_replace)
        try:
            compat.write_checkpoint(prefix, tensors_of(100 + step))
            finished = True
        except Killed:
            finished = False
        monkeypatch.setattr(_save.os, "replace", real_replace)
        version = read_version(prefix)
        if finished:
            assert version == 100 + step
            break
        assert version == old, f"killed before rename {step}: read checkpoint {version}"
        step += 1
    # Killed at least before and after a data rename (an orphaned data file from such a
    # kill only makes the next save pick yet another shard count).
    assert step >= 2
    assert {n.rsplit("-of-", 1)[1] for n in glob.glob(prefix + ".data-*")} != {
        f"{published_shards:05d}"}


def test_concurrent_saves_never_publish_a_mixed_pair(tmp_path, savers):
    import threading

    prefix = str(tmp_path / "model.ckpt")
    compat.write_checkpoint(prefix, tensors_of(0))
    pids = [savers.start(prefix, base, count=25) for base in (1000, 2000)]
    statuses = []
    waiter = threading.Thread(target=lambda: statuses.extend(savers.wait(p) for p in pids))
    waiter.start()
    reads = 0
    while waiter.is_alive():
        version = read_version(prefix)  # every state between two publishes is whole
        assert version == 0 or 1000 < version <= 1025 or 2000 < version <= 2025
        reads += 1
    waiter.join()
    assert statuses == [0, 0]
    assert read_version(prefix) in (1025, 2025)  # the last complete save wins
    assert temporaries(tmp_path) == []
    print(f"{reads} consistent reads during 50 concurrent saves")


def test_lock_serializes_writers(tmp_path):
    """While another process holds the folder's lock, a save waits for it."""
    import fcntl
    import threading

    prefix = str(tmp_path / "model.ckpt")
    compat.write_checkpoint(prefix, tensors_of(1))
    fd = os.open(str(tmp_path / _save.LOCK_NAME), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    saver = threading.Thread(target=compat.write_checkpoint, args=(prefix, tensors_of(2)))
    saver.start()
    saver.join(1.0)
    assert saver.is_alive()
    assert int(tf.train.load_checkpoint(prefix).get_tensor("version")) == 1
    os.close(fd)
    saver.join(30)
    assert not saver.is_alive() and read_version(prefix) == 2


# -- 6. temporaries of killed saves ------------------------------------------------------------


def test_stale_temporaries_are_removed_by_the_next_save(tmp_path):
    prefix = str(tmp_path / "model.ckpt")
    # What a save killed inside SaveV2 leaves, with kslim's naming, and an old-style one.
    stale = [f".model.ckpt.kslim-tmp-{os.getpid()}-0123abcd.data-00000-of-00001",
             f".model.ckpt.kslim-tmp-{os.getpid()}-0123abcd.index.tempstate123",
             ".model.ckpt-5.tmp-89abcdef.index"]
    for name in stale:
        (tmp_path / name).write_bytes(b"x" * 1000)
    aged = time.time() - 2 * 3600
    os.utime(tmp_path / stale[2], (aged, aged))
    keep = tmp_path / "notes.tmp-12345678.txt"  # not a hidden kslim temporary
    keep.write_text("mine")
    compat.write_checkpoint(prefix, tensors_of(3))
    assert sorted(os.listdir(tmp_path)) == sorted(
        [_save.LOCK_NAME, "model.ckpt.index", "model.ckpt.data-00000-of-00001", keep.name])
    # Training start cleans up too (kslim train calls it on train_dir).
    (tmp_path / stale[0]).write_bytes(b"x")
    assert _save.remove_stale_temporaries(str(tmp_path)) == [str(tmp_path / stale[0])]


# -- 9. an unwritable folder ---------------------------------------------------------------


def test_unwritable_folder_is_named(tmp_path, monkeypatch):
    folder = tmp_path / "readonly"
    folder.mkdir()
    prefix = str(folder / "model.ckpt")
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
    else:  # root writes anywhere: let TensorFlow's writer refuse as it would
        def refuse(**kwargs):
            raise tf.errors.PermissionDeniedError(
                None, None, f"{kwargs['prefix']}_temp/part-00000; Permission denied")

        monkeypatch.setattr(_save.tf.raw_ops, "SaveV2", refuse)
    try:
        with pytest.raises(PermissionError) as error:
            compat.write_checkpoint(prefix, tensors_of(1))
    finally:
        os.chmod(folder, 0o755)
    message = str(error.value)
    assert repr(prefix) in message and repr(str(folder)) in message
    assert "not writable" in message
    assert temporaries(folder) == [] and not glob.glob(prefix + "*")


def test_prefix_that_is_a_folder_or_under_a_file(tmp_path):
    (tmp_path / "model.ckpt").mkdir()
    with pytest.raises(CheckpointError, match="is a folder"):
        compat.write_checkpoint(str(tmp_path / "model.ckpt"), tensors_of(1))
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="is a file, not a folder"):
        compat.write_checkpoint(str(tmp_path / "file" / "model.ckpt"), tensors_of(1))


# -- 4, 7, 14. restore -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cifarnet_ckpt():
    reader = tf.train.load_checkpoint(CIFARNET_V1)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def logits(model):
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    return model(x, training=False).numpy()


def test_rename_exact_variable_name(tmp_path, cifarnet_ckpt):
    tensors = dict(cifarnet_ckpt)
    tensors["Head/bias"] = tensors.pop("CifarNet/logits/biases")
    prefix = compat.write_checkpoint(str(tmp_path / "renamed.ckpt"), tensors)
    model = kslim.models.create_model("cifarnet")
    report = compat.restore(model, prefix, rename={"CifarNet/logits/biases": "Head/bias"})
    assert report.sources["CifarNet/logits/biases"] == "Head/bias"
    assert not report.missing and not report.unused
    reference = kslim.models.create_model("cifarnet", weights=CIFARNET_V1)
    np.testing.assert_array_equal(logits(model), logits(reference))


def test_two_variables_onto_one_tensor_is_an_error(tmp_path, cifarnet_ckpt):
    model = kslim.models.create_model("cifarnet")
    before = [v.numpy() for v in model.weights]
    # conv1 and conv2 biases both have 64 entries: a slip in rename= that loads both.
    rename = {"CifarNet/conv2/biases": "CifarNet/conv1/biases"}
    with pytest.raises(CheckpointError) as error:
        compat.restore(model, CIFARNET_V1, rename=rename)
    message = str(error.value)
    assert "CifarNet/conv1/biases and CifarNet/conv2/biases" in message
    assert "allow_shared=True" in message
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, model.weights))
    report = compat.restore(model, CIFARNET_V1, rename=rename, allow_shared=True)
    assert report.sources["CifarNet/conv2/biases"] == "CifarNet/conv1/biases"
    np.testing.assert_array_equal(compat.slim_variables(model)["CifarNet/conv2/biases"].numpy(),
                                  cifarnet_ckpt["CifarNet/conv1/biases"])


def test_float64_checkpoint_names_the_dtype(tmp_path, cifarnet_ckpt):
    tensors = {n: (v.astype(np.float64) if v.dtype == np.float32 else v)
               for n, v in cifarnet_ckpt.items()}
    prefix = compat.write_checkpoint(str(tmp_path / "f64.ckpt"), tensors)
    model = kslim.models.create_model("cifarnet")
    with pytest.raises(CheckpointError) as error:
        compat.restore(model, prefix)
    message = str(error.value)
    assert "no variable of model" not in message
    assert "CifarNet/conv1/weights: checkpoint 'CifarNet/conv1/weights' is float64" in message
    assert "float64 -> float32" in message
