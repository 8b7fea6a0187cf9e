"""`kslim inspect` and `kslim convert` (also `scripts/convert_ckpt.py`)."""

from __future__ import annotations

import argparse
import os
import sys

KERAS_SUFFIXES = (".weights.h5", ".keras")


def register(subparsers) -> None:
    inspect = subparsers.add_parser(
        "inspect", help="list a checkpoint's variables, or a net's slim variables",
        description="Lists a slim checkpoint's variables (name, shape, dtype). With "
                    "--model, shows what maps where; with --model and no checkpoint, "
                    "prints the net's variables and sizes as slim.model_analyzer did.")
    inspect.add_argument("checkpoint", nargs="?", help="checkpoint prefix, file or folder")
    inspect.add_argument("--model", help="a kslim model name (kslim.models.list_models())")
    inspect.add_argument("--num_classes", type=int, default=None)
    inspect.set_defaults(func=run_inspect)

    convert = subparsers.add_parser(
        "convert", help="convert a slim checkpoint to .weights.h5/.keras and back",
        description="Converts between slim checkpoints and Keras files. The direction "
                    "follows the file names: a .weights.h5 or .keras output means slim -> "
                    "Keras, a .weights.h5 or .keras input means Keras -> slim.")
    add_convert_arguments(convert)
    convert.set_defaults(func=run_convert)


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="slim checkpoint (prefix/file/folder) or Keras file")
    parser.add_argument("output", help="Keras file (.weights.h5/.keras) or checkpoint prefix")
    parser.add_argument("--model", required=True, help="kslim model name, e.g. vgg_16")
    parser.add_argument("--num_classes", type=int, default=None,
                        help="classifier outputs (default: the net's)")
    parser.add_argument("--rename", action="append", default=[], metavar="MODEL=CKPT",
                        help="map a model scope prefix to a checkpoint prefix "
                             "(e.g. ssd_vgg_512=vgg_16); repeatable")
    parser.add_argument("--exclude", default=None,
                        help="comma-separated scopes to leave out (checkpoint_exclude_scopes)")
    parser.add_argument("--label_offset", type=int, default=None,
                        help="1 takes a 1001-class checkpoint into a 1000-class model")
    parser.add_argument("--use_moving_average", action="store_true",
                        help="read the ExponentialMovingAverage shadows")
    parser.add_argument("--ignore_missing", action="store_true",
                        help="restore what the checkpoint has (ignore_missing_vars)")
    parser.add_argument("--name", default=None, help="the model's top-level scope")
    parser.add_argument("--global_step", type=int, default=None,
                        help="Keras -> slim: the global_step to write")


def _rename_map(pairs: list[str]) -> dict[str, str] | None:
    if not pairs:
        return None
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--rename takes MODEL_PREFIX=CHECKPOINT_PREFIX, got {pair!r}")
        model_prefix, checkpoint_prefix = pair.split("=", 1)
        out[model_prefix] = checkpoint_prefix
    return out


def _same_target(source: str, output: str) -> bool:
    """True when writing `output` would overwrite (part of) `source`."""
    from kslim.compat._checkpoint import CheckpointError, checkpoint_prefix

    candidates = {os.path.abspath(source)}
    try:
        candidates.add(os.path.abspath(checkpoint_prefix(source)))
    except CheckpointError:
        pass
    return os.path.abspath(output) in candidates


def convert(source: str, output: str, model: str, num_classes: int | None = None,
            rename: dict | None = None, exclude=None, label_offset: int | None = None,
            use_moving_average: bool = False, ignore_missing: bool = False,
            name: str | None = None, global_step: int | None = None, log=print):
    """Converts a slim checkpoint to a Keras file or a Keras file to a slim checkpoint.

    Returns the `RestoreReport` (slim -> Keras) or the prefix written (Keras -> slim).
    """
    import kslim
    from kslim import compat

    source, output = os.fspath(source), os.fspath(output)
    if _same_target(source, output):
        raise ValueError(f"refusing to overwrite the input {source!r}; choose another output")
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if name:
        kwargs["name"] = name
    if source.endswith(KERAS_SUFFIXES):
        if output.endswith(KERAS_SUFFIXES):
            raise ValueError("both files are Keras files; one side must be a slim checkpoint")
        net = kslim.models.create_model(model, weights=source, **kwargs)
        prefix = compat.save_slim_checkpoint(net, output, global_step=global_step)
        log(f"wrote slim checkpoint {prefix} ({len(compat.slim_variables(net))} variables)")
        return prefix
    if not output.endswith(KERAS_SUFFIXES):
        raise ValueError(f"output {output!r} must end in .weights.h5 or .keras (slim -> "
                         "Keras), or the input must be a Keras file (Keras -> slim)")
    net = kslim.models.create_model(model, **kwargs)
    report = compat.restore(net, source, exclude=exclude, rename=rename,
                            label_offset=label_offset, use_moving_average=use_moving_average,
                            ignore_missing=ignore_missing)
    log(str(report))
    folder = os.path.dirname(os.path.abspath(output))
    os.makedirs(folder, exist_ok=True)
    temp = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(output)}")
    try:
        if output.endswith(".keras"):
            net.save(temp)
        else:
            net.save_weights(temp)
        os.replace(temp, output)
    finally:
        if os.path.exists(temp):
            os.remove(temp)
    log(f"wrote {output}")
    return report


def run_convert(args) -> int:
    convert(args.source, args.output, args.model, num_classes=args.num_classes,
            rename=_rename_map(args.rename), exclude=args.exclude,
            label_offset=args.label_offset, use_moving_average=args.use_moving_average,
            ignore_missing=args.ignore_missing, name=args.name, global_step=args.global_step)
    return 0


def analyze_vars(named_shapes, out=None) -> tuple[int, int]:
    """Prints `name (dtype shape) [size, bytes: n]` lines and totals, as
    `slim.model_analyzer.analyze_vars` did; returns (total size, total bytes)."""
    import numpy as np

    out = out or sys.stdout
    print("---------", file=out)
    print("Variables: name (type shape) [size]", file=out)
    print("---------", file=out)
    total_size = total_bytes = 0
    for name, shape, dtype in named_shapes:
        size = int(np.prod(shape)) if shape else 1
        nbytes = size * np.dtype(dtype).itemsize
        total_size += size
        total_bytes += nbytes
        dims = "x".join(str(d) for d in shape) or "scalar"
        print(f"{name} ({dtype} {dims}) [{size}, bytes: {nbytes}]", file=out)
    print(f"Total size of variables: {total_size}", file=out)
    print(f"Total bytes of variables: {total_bytes}", file=out)
    return total_size, total_bytes


def run_inspect(args) -> int:
    import kslim
    from kslim import compat

    if not args.checkpoint and not args.model:
        raise ValueError("give a checkpoint, --model NAME, or both")
    net = None
    if args.model:
        kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
        net = kslim.models.create_model(args.model, **kwargs)
    if not args.checkpoint:
        spec = kslim.models.get_spec(args.model)
        frames = f", clips of {spec.num_frames} frames" if spec.num_frames else ""
        print(f"{spec.name}: image size {spec.image_size}{frames}, {net.num_classes} classes, "
              f"'{spec.preprocessing}' preprocessing, scope '{spec.scope}'")
        analyze_vars([(name, tuple(v.shape), v.dtype)
                      for name, v in compat.slim_variables(net).items()])
        return 0
    entries = compat.list_checkpoint(args.checkpoint)
    print(f"checkpoint {compat.checkpoint_prefix(args.checkpoint)}")
    analyze_vars(entries)
    if net is not None:
        print()
        try:
            report = compat.restore(net, args.checkpoint, ignore_missing=True, dry_run=True)
        except compat.CheckpointError as e:
            print(e)
            return 1
        for slim_name, source in report.sources.items():
            print(f"{slim_name} <- {source}")
        print(str(report).replace("restored", "would restore", 1))
    return 0
