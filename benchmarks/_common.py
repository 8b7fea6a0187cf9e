"""Shared benchmark machinery: timing, machine facts, result tables."""

from __future__ import annotations

import csv
import dataclasses
import os
import platform
import time
from typing import Callable

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def throughput(step: Callable[[], object], batch: int, seconds: float = 3.0,
               rounds: int = 3, warmup: int = 2) -> float:
    """Images per second of `step()` (one batch), best of `rounds` runs of about
    `seconds` each after `warmup` calls. Best-of, because other processes on a
    shared machine only ever make a round slower."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    step()
    once = max(time.perf_counter() - start, 1e-4)
    iters = max(2, int(seconds / once))
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iters):
            step()
        best = max(best, iters * batch / (time.perf_counter() - start))
    return best


def compare(steps: dict[str, Callable[[], object]], batch: int, seconds: float = 3.0,
            rounds: int = 3, warmup: int = 2) -> dict[str, float]:
    """Images per second of each `step()` (one batch each), best of `rounds` rounds of
    about `seconds`, the implementations taking turns within every round."""
    iters = {}
    for impl, step in steps.items():
        for _ in range(warmup):
            step()
        start = time.perf_counter()
        step()
        iters[impl] = max(2, int(seconds / max(time.perf_counter() - start, 1e-4)))
    best = dict.fromkeys(steps, 0.0)
    for _ in range(rounds):
        for impl, step in steps.items():
            start = time.perf_counter()
            for _ in range(iters[impl]):
                step()
            best[impl] = max(best[impl], iters[impl] * batch / (time.perf_counter() - start))
    return best


def machine() -> dict:
    """CPU model, core count and library versions, for the results header."""
    import keras
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {"cpu": cpu, "cores": os.cpu_count(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "python": platform.python_version(),
            "gpus": ", ".join(gpus) or "none"}


def matmul_peak(n: int = 2048, seconds: float = 1.5) -> dict:
    """Measured float32 matmul GFLOP/s: numpy (the BLAS it links) and TensorFlow."""
    import tensorflow as tf

    a = np.random.default_rng(0).standard_normal((n, n), np.float32)
    flops = 2.0 * n ** 3
    numpy_rate = throughput(lambda: a @ a, 1, seconds, rounds=2) * flops / 1e9
    ta = tf.constant(a)
    mm = tf.function(lambda: tf.matmul(ta, ta))
    tf_rate = throughput(lambda: mm().numpy(), 1, seconds, rounds=2) * flops / 1e9
    return {"numpy_sgemm_gflops": numpy_rate, "tf_matmul_gflops": tf_rate}


@dataclasses.dataclass
class Row:
    net: str
    mode: str          # "infer" or "train"
    batch: int
    impl: str          # "kslim", "kslim+xla", "slim", "keras.applications"
    images_per_s: float
    gflops: float | None = None   # achieved GFLOP/s (forward FLOPs x 1 or x 3 for train)
    note: str = ""


def write_csv(rows: list[Row], path: str) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([field.name for field in dataclasses.fields(Row)])
        for row in rows:
            writer.writerow(dataclasses.astuple(row))


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# Flags whose value is a folder of the machine the benchmark ran on: results show DIR.
PATH_FLAGS = ("--research_slim", "--ssd_tensorflow")


def command_line(argv) -> str:
    """The command as run, for the results file, with the value of each `PATH_FLAGS`
    flag written as DIR: the results say where such a copy came from, not a path."""
    words, hide = [], False
    for word in argv:
        flag = word.split("=", 1)[0]
        if hide:
            word = "DIR"
        elif "=" in word and flag in PATH_FLAGS:
            word = f"{flag}=DIR"
        words.append(word)
        hide = not hide and word in PATH_FLAGS
    return " ".join(words)
