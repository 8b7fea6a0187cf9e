"""Devices and machines: slim's `model_deploy` on `tf.distribute`.

| slim (`deployment/model_deploy.py`)           | kslim                                          |
|-----------------------------------------------|------------------------------------------------|
| `--num_clones N` towers on one machine        | `MirroredStrategy` over N GPUs (N CPUs with `--clone_on_cpu` or no GPU) |
| `--batch_size` per clone                      | per replica: global batch = N x batch_size     |
| per-clone loss / N, gradients summed          | loss scaled by 1/N, gradients all-reduced (sum): the same |
| regularization on the first clone only        | on every replica, scaled by 1/N: the same total |
| BatchNorm updates from the first clone        | every replica updates its (mirrored) moving averages with its own batch |
| `--worker_replicas`, `--task`, parameter servers | `MultiWorkerMirroredStrategy` from `TF_CONFIG` (or `--worker_hosts`/`--task_index`): synchronous all-reduce, no parameter servers |
| chief (`task == 0`) writes checkpoints/summaries | the chief writes; the others only train       |

`create_strategy` picks the strategy; `distribute_dataset` gives each worker its shard
(`tf.distribute.InputContext`), and `prepare_model_for_strategy` works around two places
where Keras 3.15's `fit` fails under `MultiWorkerMirroredStrategy` (see there).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Callable, Sequence

import tensorflow as tf

__all__ = ["Cluster", "cluster_from_env", "create_strategy", "distribute_dataset",
           "ensure_logical_cpus", "is_multi_worker", "prepare_model_for_strategy",
           "tf_config_for"]

log = logging.getLogger("kslim")


@dataclasses.dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-worker job (from `TF_CONFIG`).

    Attributes:
        num_workers: workers (chief included) in the cluster.
        task_type: "worker" or "chief".
        task_index: this task's index within its type.
        has_chief: the cluster has a "chief" task (else worker 0 is the chief).
    """

    num_workers: int = 1
    task_type: str = "worker"
    task_index: int = 0

    @property
    def is_chief(self) -> bool:
        """slim's `is_chief`: the "chief" task, or worker 0 of a cluster without one."""
        if self.task_type == "chief":
            return True
        return self.task_type == "worker" and self.task_index == 0 and not self.has_chief

    has_chief: bool = False


def tf_config_for(worker_hosts: Sequence[str] | str, task_index: int) -> dict:
    """The `TF_CONFIG` of worker `task_index` in a cluster of `worker_hosts`."""
    if isinstance(worker_hosts, str):
        worker_hosts = [h.strip() for h in worker_hosts.split(",") if h.strip()]
    if not worker_hosts:
        raise ValueError("--worker_hosts is empty; give host:port of every worker, "
                         "comma-separated")
    if not 0 <= task_index < len(worker_hosts):
        raise ValueError(f"--task_index {task_index} is not a worker of --worker_hosts "
                         f"({len(worker_hosts)} workers: 0..{len(worker_hosts) - 1})")
    for host in worker_hosts:
        if ":" not in host:
            raise ValueError(f"worker host {host!r} has no port; use host:port")
    return {"cluster": {"worker": list(worker_hosts)},
            "task": {"type": "worker", "index": int(task_index)}}


def cluster_from_env() -> Cluster:
    """This process's `Cluster` from `TF_CONFIG` (a single worker when unset).

    Raises:
        ValueError: `TF_CONFIG` is not JSON or lacks the cluster/task fields.
    """
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return Cluster()
    try:
        config = json.loads(raw)
        cluster = config.get("cluster") or {}
        task = config.get("task") or {}
        workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
        task_type = task.get("type", "worker")
        task_index = int(task.get("index", 0))
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"TF_CONFIG is not a valid cluster description ({e}); expected "
                         '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": '
                         '"worker", "index": N}}') from None
    if task_type not in ("worker", "chief"):
        raise ValueError(f"TF_CONFIG task type {task_type!r} is not supported: "
                         "MultiWorkerMirroredStrategy runs 'chief' and 'worker' tasks only "
                         "(slim's parameter servers are not needed)")
    return Cluster(max(workers, 1), task_type, task_index, bool(cluster.get("chief")))


def ensure_logical_cpus(count: int) -> list[str]:
    """At least `count` CPU devices (logical splits of the CPU) for CPU clones.

    Must run before TensorFlow has initialized its devices (before the first op).

    Raises:
        ValueError: the devices are already initialized with fewer CPUs.
    """
    cpus = tf.config.list_physical_devices("CPU")
    configured = tf.config.get_logical_device_configuration(cpus[0]) or []
    if len(configured) < count:
        try:  # listing logical devices would start the runtime: configure first
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError:
            pass  # already started; the check below says whether that is enough
    existing = tf.config.list_logical_devices("CPU")
    if len(existing) < count:
        raise ValueError(f"--num_clones {count} on CPU needs {count} CPU devices, but "
                         f"TensorFlow already started with {len(existing)}; create the "
                         "strategy before running any TensorFlow op (or call "
                         "tf.config.set_logical_device_configuration at startup)")
    return [d.name for d in tf.config.list_logical_devices("CPU")[:count]]


def is_multi_worker(strategy) -> bool:
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._num_workers > 1)


def create_strategy(num_clones: int = 1, clone_on_cpu: bool = False,
                    worker_hosts: Sequence[str] | str | None = None,
                    task_index: int | None = None):
    """The `tf.distribute` strategy for slim's deployment flags.

    Args:
        num_clones: replicas on this machine (slim's `--num_clones`).
        clone_on_cpu: put the clones on CPU devices even when GPUs exist.
        worker_hosts: `host:port` of every worker; with `task_index` this writes
            `TF_CONFIG` (otherwise an existing `TF_CONFIG` is used).
        task_index: this worker's index in `worker_hosts`.

    Returns:
        `(strategy, cluster)`: a `MultiWorkerMirroredStrategy` when the cluster has
        several workers, a `MirroredStrategy` for `num_clones > 1`, else the default
        strategy; and this process's `Cluster`.
    """
    if num_clones < 1:
        raise ValueError(f"--num_clones must be at least 1, got {num_clones}")
    if worker_hosts:
        os.environ["TF_CONFIG"] = json.dumps(tf_config_for(worker_hosts, task_index or 0))
    elif task_index:
        raise ValueError("--task_index needs --worker_hosts (or set TF_CONFIG)")
    cluster = cluster_from_env()
    gpus = tf.config.list_physical_devices("GPU")
    if cluster.num_workers > 1:
        if num_clones > 1 and not gpus:
            ensure_logical_cpus(num_clones)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        log.info("MultiWorkerMirroredStrategy: task %s:%d of %d workers, %d replicas",
                 cluster.task_type, cluster.task_index, cluster.num_workers,
                 strategy.num_replicas_in_sync)
        return strategy, cluster
    if num_clones == 1:
        return tf.distribute.get_strategy(), cluster
    if gpus and not clone_on_cpu:
        if len(gpus) < num_clones:
            raise ValueError(f"--num_clones {num_clones} needs {num_clones} GPUs; this "
                             f"machine has {len(gpus)} (use --clone_on_cpu to run the "
                             "clones on CPU)")
        devices = [f"/gpu:{i}" for i in range(num_clones)]
        return tf.distribute.MirroredStrategy(devices), cluster
    devices = ensure_logical_cpus(num_clones)
    return tf.distribute.MirroredStrategy(
        devices, cross_device_ops=tf.distribute.ReductionToOneDevice()), cluster


def distribute_dataset(strategy, dataset_fn: Callable[[tf.distribute.InputContext],
                                                      tf.data.Dataset]):
    """`dataset_fn(input_context)` per worker, each yielding per-replica batches.

    Without a strategy (one replica) the function is called with a single-pipeline
    context and its dataset is returned as is.
    """
    if strategy.num_replicas_in_sync == 1 and not is_multi_worker(strategy):
        return dataset_fn(tf.distribute.InputContext(1, 0, 1))
    return strategy.distribute_datasets_from_function(dataset_fn)


def prepare_model_for_strategy(model, strategy, element_spec) -> None:
    """Builds a compiled model's loss/metric state under `strategy` and works around
    Keras 3.15's `fit` under `MultiWorkerMirroredStrategy`.

    Call after `compile`, with the (per-replica) batch `element_spec`; then run `fit`
    inside `with strategy.scope():`.

    - `fit` starts with `_maybe_symbolic_build`, which pulls a batch out of the
      distributed iterator, reduces it with `strategy.reduce` (an error under
      MultiWorkerMirroredStrategy, tensorflow/tensorflow#72388) and then re-creates the
      iterator (a reseeded shuffle). Building here from the element spec instead, and
      letting `fit` find the strategy from the enclosing scope, skips that path.
    - Under MultiWorkerMirroredStrategy `fit` reduces every logged scalar with
      `strategy.reduce("MEAN", value, axis=0)`, which fails on scalars
      (tensorflow/tensorflow#72388); logs are returned as `[1]` vectors so the reduce
      averages them over the replicas.
    """
    if not isinstance(strategy, (tf.distribute.MirroredStrategy,
                                 tf.distribute.MultiWorkerMirroredStrategy)):
        return  # the default strategy: fit needs no help
    with strategy.scope():
        model._symbolic_build(data_batch=element_spec)
        optimizer = model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(model.trainable_variables)
    model._distribute_strategy = None
    if is_multi_worker(strategy):
        train_step = model.train_step

        def vector_logs_train_step(data):
            logs = train_step(data)
            return {key: tf.reshape(value, [1]) for key, value in logs.items()}

        model.train_step = vector_logs_train_step
