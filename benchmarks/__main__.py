"""kslim benchmarks: `python -m benchmarks [--nets ...]` writes benchmarks/RESULTS.md and .csv.

Measures, in one run on one machine, the numbers the performance issue asks for:
model throughput (kslim, kslim+XLA, the slim TF1 graph, keras.applications), the
machine's matmul peak, and checkpoint loading against a raw read. Benchmarks are not
tests: nothing here asserts; the table says how kslim compares.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import math
import os
import sys

from benchmarks import loading, models
from benchmarks._common import HERE, command_line, fmt, machine, matmul_peak, write_csv


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return "-"
    return f"{a / b:.2f}x"


def model_table(rows, peak: float) -> list[str]:
    lines = ["| net | mode | batch | kslim | kslim+XLA | slim TF1 | slim graph as TF2 function | "
             "keras.applications | kslim/slim | kslim+XLA/slim | kslim / slim as TF2 function | "
             "kslim/keras | kslim GFLOP/s (% of sgemm peak) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r.net, r.mode, r.batch) for r in rows},
                  key=lambda k: (list(models.NETS).index(k[0]), k[1], k[2]))
    for net, mode, batch in keys:
        by = {r.impl: r for r in rows if (r.net, r.mode, r.batch) == (net, mode, batch)}

        def rate(impl):
            row = by.get(impl)
            return None if row is None or math.isnan(row.images_per_s) else row.images_per_s

        k, kx, s, ka = rate("kslim"), rate("kslim+xla"), rate("slim"), rate("keras.applications")
        s2 = rate("slim (TF2 function)")
        gflops = by["kslim"].gflops if "kslim" in by else None
        share = f"{fmt(gflops, 1)} ({100 * gflops / peak:.0f}%)" if gflops and peak else "-"
        lines.append(f"| {net} | {mode} | {batch} | {fmt(k)} | {fmt(kx)} | {fmt(s)} | "
                     f"{fmt(s2)} | {fmt(ka)} | {_ratio(k, s)} | {_ratio(kx, s)} | "
                     f"{_ratio(k, s2)} | {_ratio(k, ka)} | {share} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--nets", default=",".join(models.NETS),
                        help=f"comma-separated, from {', '.join(models.NETS)}")
    parser.add_argument("--batches", default="1,8", help="inference batch sizes")
    parser.add_argument("--train_batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0, help="per timing round")
    parser.add_argument("--no_xla", action="store_true", help="skip the XLA rows")
    parser.add_argument("--research_slim", default=os.environ.get("RESEARCH_SLIM"),
                        help="folder holding research/slim's nets/ (for the slim baseline "
                             "of nets tf_slim lacks)")
    parser.add_argument("--skip_models", action="store_true")
    parser.add_argument("--skip_loading", action="store_true")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    parser.add_argument("--deploy", action="store_true",
                        help="run the deployment benchmark instead (benchmarks/deploy.py: "
                             "slim Session vs forward_function vs .tflite; RESULTS_deploy.md)")
    parser.add_argument("--ssd", action="store_true",
                        help="run the SSD benchmark instead (benchmarks/ssd.py: ssd_300_vgg "
                             "vs SSD-Tensorflow's graph, needs --ssd_tensorflow DIR; "
                             "RESULTS_ssd.md)")
    given = sys.argv[1:] if argv is None else list(argv)
    for flag, name in (("--deploy", "deploy"), ("--ssd", "ssd")):
        if flag in given:  # every other flag is that module's (its --seconds, ...)
            module = importlib.import_module(f"benchmarks.{name}")
            return module.main([a for a in given if a != flag])
    args = parser.parse_args(given)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    facts = machine()
    peak = matmul_peak()
    print(f"machine: {facts}; matmul peak {peak}")
    lines = [f"# kslim benchmark results ({datetime.date.today().isoformat()})", "",
             f"Command: `python -m benchmarks {command_line(argv or sys.argv[1:])}`", "",
             f"Machine: {facts['cpu']}, {facts['cores']} cores; GPUs: {facts['gpus']}; "
             f"TensorFlow {facts['tensorflow']}, Keras {facts['keras']}, "
             f"Python {facts['python']}.",
             f"Measured float32 matmul peak: numpy/BLAS sgemm "
             f"{peak['numpy_sgemm_gflops']:.0f} GFLOP/s, TensorFlow MatMul "
             f"{peak['tf_matmul_gflops']:.0f} GFLOP/s.", ""]
    if not args.skip_models:
        nets = [n.strip() for n in args.nets.split(",") if n.strip()]
        unknown = sorted(set(nets) - set(models.NETS))
        if unknown:
            parser.error(f"unknown nets {unknown}; choose from {list(models.NETS)}")
        rows = models.run(nets, tuple(int(b) for b in args.batches.split(",")),
                          args.train_batch, args.seconds, xla=not args.no_xla,
                          research_slim=args.research_slim)
        write_csv(rows, os.path.splitext(args.output)[0] + ".csv")
        lines += ["## Throughput (images/s, best of 3 rounds)", "",
                  "Inference is kslim's `model.forward_function()` (the call traced once as a "
                  "concrete `tf.function`, as slim's graph is built once), keras.applications' "
                  "`model(x, training=False)` under `tf.function`; \"slim graph as TF2 "
                  "function\" is slim's inference graph run by TF2's function runtime "
                  "(`tf.compat.v1.wrap_function`), the runtime kslim runs in; the training "
                  "step is momentum SGD (`train_on_batch` for Keras models, "
                  "`create_train_op` + `Session.run` for slim). GFLOP/s counts the forward "
                  "FLOPs (x3 for a training step) from TensorFlow's profiler.", ""]
        lines += model_table(rows, peak["numpy_sgemm_gflops"]) + [""]
        research = [n for n in nets if models.NETS[n].research]
        if research:
            lines += [f"The slim baselines of {', '.join(research)} (nets tf_slim does not ship) "
                      + ("ran research/slim's `nets/` from a checkout of tensorflow/models "
                         "(`--research_slim DIR`), imported with tf_slim." if args.research_slim else
                         "were skipped: pass `--research_slim DIR`."), ""]
    if not args.skip_loading:
        result = loading.run()
        lines += ["## Checkpoint loading (vgg_16)", "",
                  "| checkpoint | raw read (tf.train.load_checkpoint, every tensor) | "
                  "kslim create_model(weights=) | ratio | peak memory raw / kslim | "
                  "budget (ckpt + weights + 10%) |", "|---|---|---|---|---|---|",
                  f"| {result['checkpoint_mb']:.0f} MB | {result['raw_seconds']:.2f} s | "
                  f"{result['kslim_seconds']:.2f} s | {result['time_ratio']:.2f}x | "
                  f"{result['raw_peak_mb']:.0f} / {result['kslim_peak_mb']:.0f} MB | "
                  f"{result['memory_budget_mb']:.0f} MB |", ""]
    with open(args.output, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
