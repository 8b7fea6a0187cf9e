"""Checkpoint loading: `create_model(..., weights=ckpt)` against a raw read of the same tensors.

Each measurement runs in a fresh subprocess, after the same code path has run once on a
small (LeNet) checkpoint; memory is the peak (`VmHWM`) above the process's footprint
just before the load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

_CHILD = r"""
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf, kslim
def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
def raw(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}
mode, net, prefix, warm = sys.argv[1:5]
# Warm up the same code path on a small checkpoint: first-call costs (tracing
# machinery, reader set-up) are not part of loading a big one.
raw(warm) if mode == "raw" else kslim.models.create_model("lenet", weights=warm)
base = status("VmRSS")
start = time.perf_counter()
if mode == "raw":
    tensors = raw(prefix)
else:
    model = kslim.models.create_model(net, weights=prefix)
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "peak_mb": status("VmHWM") - base, "base_mb": base}))
"""

def _measure(mode: str, net: str, prefix: str, warm: str) -> dict:
    result = subprocess.run([sys.executable, "-c", _CHILD, mode, net, prefix, warm],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def make_checkpoint(net: str, folder: str) -> str:
    """A V2 slim checkpoint of `net` (kslim's initial weights) in `folder`."""
    import kslim

    model = kslim.models.create_model(net)
    return kslim.compat.save_slim_checkpoint(model, os.path.join(folder, f"{net}.ckpt"))


def run(net: str = "vgg_16", checkpoint: str | None = None, repeats: int = 3,
        log=print) -> dict:
    """Best-of-`repeats` time and peak memory of both ways of loading."""
    import kslim

    with tempfile.TemporaryDirectory() as folder:
        prefix = checkpoint or make_checkpoint(net, folder)
        warm = make_checkpoint("lenet", folder)
        size_mb = sum(os.path.getsize(os.path.join(os.path.dirname(prefix), f))
                      for f in os.listdir(os.path.dirname(prefix) or ".")
                      if f.startswith(os.path.basename(prefix) + ".")
                      or f == os.path.basename(prefix)) / 2 ** 20
        model = kslim.models.create_model(net)
        weights_mb = sum(v.numpy().nbytes for v in model.weights) / 2 ** 20
        del model
        raw = min((_measure("raw", net, prefix, warm) for _ in range(repeats)),
                  key=lambda r: r["seconds"])
        kslim_load = min((_measure("kslim", net, prefix, warm) for _ in range(repeats)),
                         key=lambda r: r["seconds"])
    result = {
        "net": net, "checkpoint_mb": size_mb, "model_weights_mb": weights_mb,
        "raw_seconds": raw["seconds"], "raw_peak_mb": raw["peak_mb"],
        "kslim_seconds": kslim_load["seconds"], "kslim_peak_mb": kslim_load["peak_mb"],
        "time_ratio": kslim_load["seconds"] / raw["seconds"],
        "memory_budget_mb": 1.1 * (size_mb + weights_mb),
    }
    log(f"{net}: checkpoint {size_mb:.0f} MB; raw read {raw['seconds']:.2f} s "
        f"(peak +{raw['peak_mb']:.0f} MB); kslim create_model(weights=) "
        f"{kslim_load['seconds']:.2f} s (peak +{kslim_load['peak_mb']:.0f} MB); "
        f"ratio {result['time_ratio']:.2f}x; memory budget {result['memory_budget_mb']:.0f} MB")
    return result
