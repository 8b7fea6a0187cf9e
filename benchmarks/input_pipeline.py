"""Input-pipeline throughput: kslim's tf.data pipeline against slim's queue-based reader.

    python -m benchmarks.input_pipeline [--num_images 800] [--batches 30] [--trials 3]

Both read the same TFRecords (flowers layout: JPEG photos in 5 shards, made from the test
photographs with random crops and sizes like the flowers set's) and do the same work per
image: decode, inception preprocessing in training mode at 224x224 (fast mode), batch 32.

* kslim: `kslim.data.input_pipeline(split, 32, "inception", is_training=True)`.
* slim: tf_slim's `DatasetDataProvider` + `tf.compat.v1.train.batch` with queue runners in
  a TF1 session, slim's reader and thread settings (see `benchmarks/input_slim.py`).

Each measurement runs in a fresh process (no threads left over from the other pipeline);
trials alternate between the two, and the table reports each one's best trial. Results go
to `benchmarks/RESULTS_input.md`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PHOTOS = os.path.join(ROOT, "tests", "fixtures", "images")


def make_records(folder: str, num_images: int, seed: int = 0) -> str:
    """Writes `num_images` JPEG photos in slim's flowers layout (5 shards) into `folder`."""
    import numpy as np
    import tensorflow as tf

    from kslim.data import image_to_tfexample

    done = os.path.join(folder, "done.json")
    if os.path.exists(done) and json.load(open(done)).get("num_images") == num_images:
        return folder
    os.makedirs(folder, exist_ok=True)
    photos = [
        tf.io.decode_image(tf.io.read_file(os.path.join(PHOTOS, name)), channels=3, expand_animations=False)
        for name in sorted(os.listdir(PHOTOS))
        if name.endswith((".png", ".jpg"))
    ]
    rng = np.random.default_rng(seed)
    shards = 5
    writers = [
        tf.io.TFRecordWriter(os.path.join(folder, f"flowers_train_{i:05d}-of-{shards:05d}.tfrecord"))
        for i in range(shards)
    ]
    for n in range(num_images):
        photo = photos[n % len(photos)]
        h, w = int(photo.shape[0]), int(photo.shape[1])
        ch, cw = int(rng.integers(h // 2, h + 1)), int(rng.integers(w // 2, w + 1))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        short = int(rng.integers(240, 400))  # the flowers photos are mostly 240-400 px high
        scale = short / min(ch, cw)
        size = [max(1, round(ch * scale)), max(1, round(cw * scale))]
        image = tf.image.resize(photo[y : y + ch, x : x + cw], size, antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        if rng.random() < 0.5:
            image = image[:, ::-1]
        data = tf.io.encode_jpeg(image, quality=90).numpy()
        example = image_to_tfexample(data, "jpg", size[0], size[1], n % 5)
        writers[n % shards].write(example.SerializeToString())
    for writer in writers:
        writer.close()
    json.dump({"num_images": num_images}, open(done, "w"))
    return folder


def measure_kslim(folder: str, batch_size: int, image_size: int, batches: int, warmup: int, training: bool) -> dict:
    import kslim.data

    split = kslim.data.get_split("flowers", "train", folder)
    ds = kslim.data.input_pipeline(split, batch_size, "inception", image_size=image_size, is_training=training)
    return _time(ds.repeat(), batch_size, batches, warmup)


def _jpeg_records(folder: str):
    """The records, in file order, forever (for the decode and floor rows)."""
    import glob

    import tensorflow as tf

    return tf.data.TFRecordDataset(sorted(glob.glob(os.path.join(folder, "flowers_train_*.tfrecord")))).repeat()


def _jpeg_bytes(record):
    """A record's `image/encoded` bytes (parsed inside each row's parallel map)."""
    import tensorflow as tf

    return tf.io.parse_single_example(record, {"image/encoded": tf.io.FixedLenFeature([], tf.string)})["image/encoded"]


def _time(ds, batch_size: int, batches: int, warmup: int) -> dict:
    """`_rates` of `batches` batches of `ds` after `warmup` untimed ones."""
    iterator = iter(ds)
    for _ in range(warmup):
        next(iterator)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    return _rates(batches * batch_size, time.perf_counter() - start, time.process_time() - cpu)


def measure_decode(folder: str, batch_size: int, batches: int, warmup: int) -> dict:
    """The floor under any pipeline that decodes these JPEGs whole (slim's eval path, and
    kslim's, which must match slim's pixels): read, parse and `tf.io.decode_jpeg` only,
    parallel, with nothing after it."""
    import tensorflow as tf

    def decode(record):
        return tf.shape(tf.io.decode_jpeg(_jpeg_bytes(record), channels=3))

    ds = (_jpeg_records(folder)
          .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
          .batch(batch_size).prefetch(tf.data.AUTOTUNE))
    return _time(ds, batch_size, batches, warmup)


def measure_floor(folder: str, batch_size: int, image_size: int, batches: int, warmup: int, training: bool) -> dict:
    """The per-image kernels alone: kslim's preprocessing of each image's bytes (training:
    the crop-window decode and the XLA colour function; eval: whole decode, then slim's
    exact crop, float conversion, TF1 bilinear resize and scaling), batched, with none of
    the pipeline around them (no label, checks, interleave or shuffle)."""
    import tensorflow as tf

    from kslim.preprocess import inception

    def work(record, seed):
        encoded = _jpeg_bytes(record)
        if training:
            return inception.preprocess_jpeg_for_train(encoded, image_size, image_size, seed=seed)
        return inception.preprocess_for_eval(tf.io.decode_jpeg(encoded, channels=3), image_size, image_size)

    seeds = tf.data.Dataset.random(seed=0).batch(2, drop_remainder=True)
    ds = (tf.data.Dataset.zip(_jpeg_records(folder), seeds)
          .map(work, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
          .batch(batch_size).prefetch(tf.data.AUTOTUNE))
    return _time(ds, batch_size, batches, warmup)


def _rates(images: int, wall: float, cpu: float) -> dict:
    """Images per wall-clock second, and per CPU-second of the whole process (all threads):
    the second barely moves when other programs load the machine."""
    return {"images_per_s": images / wall, "images_per_cpu_s": images / cpu}


def _worker(args) -> None:
    training = args.mode == "train"
    if args.worker == "kslim":
        rates = measure_kslim(args.records, args.batch_size, args.image_size, args.batches, args.warmup, training)
    elif args.worker == "decode":
        rates = measure_decode(args.records, args.batch_size, args.batches, args.warmup)
    elif args.worker == "floor":
        rates = measure_floor(args.records, args.batch_size, args.image_size, args.batches, args.warmup, training)
    else:
        from benchmarks.input_slim import measure

        pattern = os.path.join(args.records, "flowers_train_*.tfrecord")
        wall, cpu = measure(pattern, args.num_images, args.batch_size, args.image_size, args.batches, args.warmup, training)
        rates = _rates(args.batches * args.batch_size, wall, cpu)
    print(json.dumps(rates))


def _run_worker(kind: str, mode: str, args) -> dict:
    command = [
        sys.executable, "-m", "benchmarks.input_pipeline", "--worker", kind, "--mode", mode, "--records", args.records,
        "--num_images", str(args.num_images), "--batch_size", str(args.batch_size),
        "--image_size", str(args.image_size), "--batches", str(args.batches), "--warmup", str(args.warmup),
    ]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{kind} {mode} benchmark failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _machine() -> str:
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores; TensorFlow {tf.__version__}, Python {platform.python_version()}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", default=os.path.join(HERE, "out", "input_records"))
    parser.add_argument("--num_images", type=int, default=800)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--batches", type=int, default=60, help="timed batches per trial")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches first")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--mode", choices=["train", "eval", "both"], default="both")
    parser.add_argument("--results", default=os.path.join(HERE, "RESULTS_input.md"))
    parser.add_argument("--worker", choices=["kslim", "slim", "decode", "floor"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args)
        return 0

    make_records(args.records, args.num_images)
    modes = ["train", "eval"] if args.mode == "both" else [args.mode]
    rates = {(kind, mode): [] for mode in modes for kind in ("kslim", "slim")}
    for trial in range(args.trials):
        for mode in modes:
            for kind in ("slim", "kslim") if trial % 2 else ("kslim", "slim"):
                rates[kind, mode].append(_run_worker(kind, mode, args))
                got = rates[kind, mode][-1]
                print(
                    f"trial {trial}: {kind} {mode}: {got['images_per_s']:.1f} images/s, "
                    f"{got['images_per_cpu_s']:.1f} images per CPU-second",
                    flush=True,
                )
    decode = [_run_worker("decode", "eval", args) for _ in range(args.trials)]
    print(f"decode only: {max(r['images_per_cpu_s'] for r in decode):.1f} images per CPU-second", flush=True)
    floors = {mode: [_run_worker("floor", mode, args) for _ in range(args.trials)] for mode in modes}
    for mode in modes:
        print(f"{mode} floor: {max(r['images_per_cpu_s'] for r in floors[mode]):.1f} images per CPU-second", flush=True)
    text = report(args, argv, modes, rates, decode, floors)
    with open(args.results, "w") as f:
        f.write(text)
    print(text)
    return 0


def report(args, argv, modes, rates, decode, floors) -> str:
    command = "python -m benchmarks.input_pipeline " + " ".join(argv if argv is not None else sys.argv[1:])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# Input pipeline: kslim (tf.data) vs slim (queue runners)",
        "",
        f"Measured {datetime.date.today().isoformat()} on {_machine()}; 1-minute load average at "
        f"the end {load:.1f}.",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Same TFRecords for both: {args.num_images} JPEG photos, 5 shards (flowers layout). Work "
        f"per image: decode, inception preprocessing to {args.image_size}x{args.image_size} "
        f"(training: fast mode, random crop/flip/colour; eval: central crop), batch "
        f"{args.batch_size}. {args.batches} timed batches after {args.warmup}; best of "
        f"{args.trials} trials, each in a fresh process, kslim and slim alternating.",
        "",
        "Images per CPU-second counts the CPU time of the whole process (every thread): on a",
        "machine shared with other work it is the steadier figure; with 2 dedicated cores and a",
        "saturating pipeline, images/s would be about twice it.",
        "",
        "| mode | pipeline | images/s (best) | images/s, all trials | images per CPU-second (best) "
        "| kslim / slim, images/s | kslim / slim, per CPU-second |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in modes:
        best = {
            (kind, key): max(r[key] for r in rates[kind, mode])
            for kind in ("kslim", "slim")
            for key in ("images_per_s", "images_per_cpu_s")
        }
        for kind, label in (("kslim", "kslim `input_pipeline` (tf.data)"), ("slim", "slim `DatasetDataProvider` + `train.batch`")):
            trials = ", ".join(f"{r['images_per_s']:.0f}" for r in rates[kind, mode])
            wall = cpu = ""
            if kind == "kslim":
                wall = f"{best['kslim', 'images_per_s'] / best['slim', 'images_per_s']:.2f}x"
                cpu = f"{best['kslim', 'images_per_cpu_s'] / best['slim', 'images_per_cpu_s']:.2f}x"
            lines.append(
                f"| {mode} | {label} | {best[kind, 'images_per_s']:.1f} | {trials} | "
                f"{best[kind, 'images_per_cpu_s']:.1f} | {wall} | {cpu} |"
            )
    floor = max(r["images_per_cpu_s"] for r in decode)
    decode_trials = ", ".join(f"{r['images_per_s']:.0f}" for r in decode)
    for mode in modes:
        got = floors[mode]
        trials = ", ".join(f"{r['images_per_s']:.0f}" for r in got)
        lines.append(
            f"| {mode} | floor: kslim's per-image preprocessing kernels only (no pipeline) | "
            f"{max(r['images_per_s'] for r in got):.1f} | {trials} | "
            f"{max(r['images_per_cpu_s'] for r in got):.1f} | | |"
        )
    lines += [
        f"| - | decode only (read + parse + `decode_jpeg`, whole images) | "
        f"{max(r['images_per_s'] for r in decode):.1f} | {decode_trials} | {floor:.1f} | | |",
        "",
        "The floor rows run only the per-image work the output needs, batched, with nothing "
        "of the pipeline around it (no labels, record checks, interleave or shuffle). With "
        "both cores busy all the time, no pipeline built on these kernels can pass twice "
        "that row's images per CPU-second: "
        + ", ".join(
            f"{mode} {2 * max(r['images_per_cpu_s'] for r in floors[mode]):.0f} images/s = "
            f"{2 * max(r['images_per_cpu_s'] for r in floors[mode]) / max(r['images_per_s'] for r in rates['slim', mode]):.2f}x "
            f"slim's best {mode} images/s"
            for mode in modes
        )
        + ".",
        "",
        "The decode-only row bounds what any pipeline that decodes these JPEGs whole can reach: "
        + ", ".join(
            f"{floor / max(r['images_per_cpu_s'] for r in rates['slim', mode]):.2f}x slim's "
            f"{mode} pipeline per CPU-second"
            for mode in modes
        )
        + ". kslim's eval path decodes whole images, and its output equals slim's pixel for "
        "pixel; decoding only the central window (`decode_and_crop_jpeg`, exact when the "
        "window is widened by one column on each side) measured no faster, because the "
        "whole file is still entropy-decoded. Its training path decodes only the crop window.",
    ]
    lines += [
        "",
        "Where kslim's time goes, and slim's: both spend most of it decoding JPEGs and in the",
        "per-image preprocessing ops. kslim's training path decodes only the random crop window",
        "(`tf.image.decode_and_crop_jpeg`), converts to float after cropping, and runs the flip,",
        "colour and scaling arithmetic as one XLA-compiled function (saturation without the HSV",
        "round trip); its eval path crops before the float conversion. slim decodes and converts",
        "whole images and runs each op separately, from Python queue-runner threads.",
        "",
        "Wall-clock images/s on a machine shared with other jobs favour the pipeline with more",
        "runnable threads (slim's readers and batch threads, about ten; tf.data sizes its pool",
        "to the 2 cores), so trials swing widely; images per CPU-second is the comparison that",
        "carries over to dedicated cores. Target in the issue: 2x slim; "
        + ", ".join(
            f"{mode}: {max(r['images_per_cpu_s'] for r in rates['kslim', mode]) / max(r['images_per_cpu_s'] for r in rates['slim', mode]):.2f}x per CPU-second"
            for mode in modes
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
