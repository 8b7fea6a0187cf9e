"""Several devices and several machines: `--num_clones` on MirroredStrategy, and two
worker processes on MultiWorkerMirroredStrategy surviving a killed worker."""

import json
import re
import signal
import socket
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

import kslim
from kslim import compat, training
from training_helpers import kslim_process, run_cli


@pytest.fixture(scope="module")
def start_checkpoint(tmp_path_factory):
    model = kslim.models.create_model("lenet", num_classes=10, input_shape=(28, 28, 1))
    folder = tmp_path_factory.mktemp("start")
    return compat.save_slim_checkpoint(model, str(folder / "model.ckpt"))


def _train(train_dir, start, **flags):
    options = dict(model_name="lenet", dataset_name="digits", train_dir=str(train_dir),
                   checkpoint_path=start, dropout_keep_prob=1.0, seed=3,
                   max_number_of_steps=3, optimizer="momentum", learning_rate=0.01,
                   save_interval_secs=0, verbose="0")
    return training.train(**{**options, **flags})


def test_two_clones_match_one_clone_with_the_doubled_batch(tmp_path, start_checkpoint):
    one = _train(tmp_path / "one", start_checkpoint, num_clones=1, batch_size=8)
    # the same through the command line: two clones of 4 on the two logical CPUs
    code, out, err = run_cli(
        "train", "--model_name=lenet", "--dataset_name=digits", f"--train_dir={tmp_path}/two",
        f"--checkpoint_path={start_checkpoint}", "--dropout_keep_prob=1.0", "--seed=3",
        "--max_number_of_steps=3", "--optimizer=momentum", "--learning_rate=0.01",
        "--save_interval_secs=0", "--verbose=0", "--log_every_n_steps=1", "--num_clones=2",
        "--batch_size=4")
    assert code == 0, err
    logged = {int(step): float(loss)
              for step, loss in re.findall(r"global step (\d+): loss = (\S+) ", out)}
    assert sorted(one.losses) == sorted(logged) == [1, 2, 3]
    np.testing.assert_allclose([logged[s] for s in (1, 2, 3)],
                               [one.losses[s] for s in (1, 2, 3)], rtol=1e-5, atol=1e-4)
    a = tf.train.load_checkpoint(one.checkpoint)
    b = tf.train.load_checkpoint(str(tmp_path / "two" / "model.ckpt-3"))
    for name in compat.slim_variables(one.model):
        np.testing.assert_allclose(b.get_tensor(name), a.get_tensor(name), rtol=1e-4,
                                   atol=1e-6, err_msg=name)


def test_two_clones_run_on_a_mirrored_strategy(tmp_path, start_checkpoint):
    two = _train(tmp_path, start_checkpoint, num_clones=2, batch_size=4,
                 max_number_of_steps=1)
    assert isinstance(two.strategy, tf.distribute.MirroredStrategy)
    assert two.strategy.num_replicas_in_sync == 2
    assert sorted(two.strategy.extended.worker_devices) == [
        "/job:localhost/replica:0/task:0/device:CPU:0",
        "/job:localhost/replica:0/task:0/device:CPU:1"]


# -- two machines ---------------------------------------------------------------------------

def test_cluster_from_tf_config_and_worker_flags(monkeypatch):
    from kslim.training._distribute import cluster_from_env, tf_config_for

    config = tf_config_for("10.0.0.1:2222,10.0.0.2:2222", 1)
    assert config == {"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
                      "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    cluster = cluster_from_env()
    assert (cluster.num_workers, cluster.task_index, cluster.is_chief) == (2, 1, False)
    monkeypatch.setenv("TF_CONFIG", json.dumps({**config, "task": {"type": "worker",
                                                                    "index": 0}}))
    assert cluster_from_env().is_chief
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker",
                                                                     "index": 0}}))
    assert not cluster_from_env().is_chief and cluster_from_env().num_workers == 2
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not a valid cluster description"):
        cluster_from_env()
    with pytest.raises(ValueError, match="--task_index 2 is not a worker of --worker_hosts"):
        tf_config_for("a:1,b:1", 2)
    with pytest.raises(ValueError, match="worker host 'a' has no port"):
        tf_config_for("a,b:1", 0)



def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _checkpoint_steps(train_dir):
    state = tf.train.get_checkpoint_state(str(train_dir))
    if state is None:
        return []
    return sorted(int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths)


def _wait(condition, seconds, what, processes=()):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        for p in processes:
            if p.poll() not in (None, 0):
                raise AssertionError(f"a worker exited with {p.returncode} while waiting "
                                     f"for {what}")
        time.sleep(0.25)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


class _Workers:
    """Two `kslim train` worker processes whose output goes to files."""

    def __init__(self, tmp_path, flags, ports, run):
        hosts = [f"127.0.0.1:{p}" for p in ports]
        self.logs = [tmp_path / f"worker{i}-run{run}.log" for i in range(2)]
        self.processes = []
        for index, log in enumerate(self.logs):
            tf_config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
            with open(log, "w") as out:
                self.processes.append(kslim_process(
                    ["train", *flags], env={"TF_CONFIG": json.dumps(tf_config)}, stdout=out))

    def output(self, index):
        return self.logs[index].read_text()

    def kill_all(self):
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(10)


def test_two_workers_survive_a_killed_worker(tmp_path):
    train_dir = tmp_path / "train"
    dataset_dir = kslim.data.convert("digits", str(tmp_path / "digits"))
    flags = ["--model_name=lenet", "--dataset_name=digits", f"--dataset_dir={dataset_dir}",
             f"--train_dir={train_dir}", "--batch_size=4", "--max_number_of_steps=36",
             "--optimizer=sgd", "--learning_rate=0.01", "--seed=0", "--verbose=0",
             "--save_interval_secs=0", "--save_every_n_steps=4", "--backup_every_n_steps=4",
             "--log_every_n_steps=1", "--max_to_keep=100"]
    ports = _free_ports(2)
    first = _Workers(tmp_path, flags, ports, run=1)
    try:
        # Let the chief write a few checkpoints, then kill worker 1 in the middle of a run.
        _wait(lambda: len(_checkpoint_steps(train_dir)) >= 3, 240, "three checkpoints",
              first.processes)
        first.processes[1].send_signal(signal.SIGKILL)
        first.processes[1].wait(10)
        killed_at = _checkpoint_steps(train_dir)
        # The chief loses its peer: its collectives fail and it exits (non-zero). Should it
        # hang instead, it is stopped as an operator would before restarting the job.
        try:
            first.processes[0].wait(90)
        except subprocess.TimeoutExpired:
            first.processes[0].send_signal(signal.SIGKILL)
            first.processes[0].wait(10)
        assert first.processes[0].returncode != 0
    finally:
        first.kill_all()
    chief_log = first.output(0)
    assert "Finished" not in chief_log, chief_log[-2000:]
    completed = _checkpoint_steps(train_dir)
    assert completed[: len(killed_at)] == killed_at
    assert max(completed) < 36
    for step in completed:  # every completed checkpoint is intact
        assert compat.list_checkpoint(str(train_dir / f"model.ckpt-{step}"))
    assert (train_dir / "backup").is_dir()

    # Restart the workers: they resume from the chief's backup (not from step 0).
    ports = _free_ports(2)
    second = _Workers(tmp_path, flags, ports, run=2)
    try:
        for p in second.processes:
            p.wait(300)
    finally:
        second.kill_all()
    out0, out1 = second.output(0), second.output(1)
    assert [p.returncode for p in second.processes] == [0, 0], out0[-3000:] + out1[-3000:]
    resumed = [int(re.search(r"Restored the backup in \S+ at global step (\d+)", out).group(1))
               for out in (out0, out1)]
    assert resumed[0] == resumed[1] >= max(completed)
    assert "Finished at global step 36" in out0
    assert "not the chief: no checkpoint written" in out1
    final = _checkpoint_steps(train_dir)
    assert final[-1] == 36
    assert set(completed) <= set(final)  # no completed checkpoint was lost
    for step in completed:
        assert compat.list_checkpoint(str(train_dir / f"model.ckpt-{step}"))
    assert not (train_dir / "backup").exists()  # removed once training completed
    # the chief logged every step from the resumed one on
    steps = [int(s) for s in re.findall(r"global step (\d+): loss", out0)]
    assert steps[0] == resumed[0] + 1 and steps[-1] == 36
