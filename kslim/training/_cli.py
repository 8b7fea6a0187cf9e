"""`kslim train`, `kslim eval`, `kslim predict`, `kslim export` and `kslim demo`.

The train/eval/export flags are generated from `TrainConfig`, `EvalConfig` and
`ExportConfig`, so they carry slim's names and defaults. Flags are written as absl wrote
them (`--flag=value` or `--flag value`; booleans also as `--flag`, `--noflag`,
`--flag=false`); an unknown flag stops with a message naming it and the closest known one.
Nothing here imports TensorFlow until a command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import sys

_TRUE = ("1", "true", "t", "yes", "y")
_FALSE = ("0", "false", "f", "no", "n")


class _FlagParser(argparse.ArgumentParser):
    """argparse with absl-like flag errors: unknown flags name their closest match."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            known = [s for action in self._actions for s in action.option_strings
                     if s.startswith("--")]
            problems = []
            for extra in extras:
                flag = extra.split("=", 1)[0]
                if not flag.startswith("-"):
                    problems.append(f"unexpected argument {extra!r}")
                    continue
                close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
                problems.append(f"unknown flag {flag}"
                                + (f" (did you mean {close[0]}?)" if close else ""))
            self.error("; ".join(problems) + f". See `{self.prog} --help` for the flags.")
        return namespace, extras


def _parse_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _optional(kind):
    def parse(text: str):
        if str(text).strip().lower() in ("none", ""):
            return None
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {kind.__name__} (or None), got {text!r}") from None

    parse.__name__ = kind.__name__
    return parse


def _with_default(help_text: str, default) -> str:
    return help_text if "default" in help_text else f"{help_text} (default {default})"


def _add_config_flags(parser: argparse.ArgumentParser, config_class, skip=()) -> None:
    """One flag per field of a config dataclass, with its default and help."""
    for field in dataclasses.fields(config_class):
        if field.name in skip:
            continue
        annotation = str(field.type)
        help_text = field.metadata.get("help", "")
        default = field.default
        if annotation.startswith("bool"):
            parser.add_argument(f"--{field.name}", nargs="?", const=True, default=default,
                                type=_parse_bool, metavar="BOOL",
                                help=_with_default(help_text, default))
            parser.add_argument(f"--no{field.name}", dest=field.name, action="store_false",
                                help=argparse.SUPPRESS)
            continue
        kind = int if annotation.startswith("int") else \
            float if annotation.startswith("float") else str
        optional = "None" in annotation
        # A `const` lets the flag stand alone (export's --quantize, once slim's boolean).
        extra = {"nargs": "?", "const": field.metadata["const"]} \
            if "const" in field.metadata else {}
        parser.add_argument(f"--{field.name}", default=default,
                            type=_optional(kind) if optional else kind,
                            choices=field.metadata.get("choices"),
                            metavar=kind.__name__.upper(),
                            help=_with_default(help_text, default), **extra)


def _config_from(args, config_class):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class)
              if hasattr(args, f.name)}
    return config_class(**values)


def _add_parser(subparsers, name: str, **kwargs) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, allow_abbrev=False, **kwargs)
    parser.__class__ = _FlagParser
    return parser


def register(subparsers) -> None:
    from kslim.training._eval import EvalConfig
    from kslim.training._infer import ExportConfig
    from kslim.training._train import TrainConfig

    train = _add_parser(
        subparsers, "train", help="train a net with slim's train_image_classifier.py flags",
        description="Trains a net with model.fit, taking research/slim "
                    "train_image_classifier.py's flags (same names and defaults). "
                    "Checkpoints (slim format) and TensorBoard logs go to --train_dir; a "
                    "checkpoint already there resumes the run. --num_clones N runs N "
                    "replicas (MirroredStrategy); several machines run one worker each, "
                    "described by TF_CONFIG or --worker_hosts/--task_index "
                    "(MultiWorkerMirroredStrategy).")
    _add_config_flags(train, TrainConfig)
    train.set_defaults(func=run_train)

    evaluate = _add_parser(
        subparsers, "eval", help="Accuracy and Recall@5 of a checkpoint over a split",
        description="Evaluates a checkpoint with research/slim eval_image_classifier.py's "
                    "flags; --wait_for_checkpoints evaluates each new checkpoint of a "
                    "train_dir (slim's evaluation_loop). The last line printed is "
                    "'eval/Accuracy=<float> eval/Recall_5=<float>'.")
    _add_config_flags(evaluate, EvalConfig)
    evaluate.set_defaults(func=run_eval)

    predict = _add_parser(
        subparsers, "predict", help="top-k classes of image files",
        description="Classifies image files with a net: its eval preprocessing, then the "
                    "top-k classes with their names and probabilities.")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG/PNG/GIF/BMP files, or folders of them")
    predict.add_argument("--model", "--model_name", dest="model", default=None,
                         help="net name (kslim.models.list_models()); not with --tflite")
    predict.add_argument("--tflite", default=None, metavar="FILE",
                         help="run a .tflite file written by `kslim export --format=tflite` "
                              "(LiteRT when installed, else TensorFlow's interpreter)")
    predict.add_argument("--num_threads", type=int, default=None,
                         help="--tflite: interpreter threads")
    predict.add_argument("--weights", default=None,
                         help="slim checkpoint (prefix or folder), .weights.h5/.keras, "
                              "slim or slim:<tag> (zoo)")
    predict.add_argument("--labels", default=None,
                         help="class names: labels.txt, a folder with one, 'imagenet' or a "
                              "dataset name (default: ImageNet names for 1000/1001 classes)")
    predict.add_argument("--top_k", type=int, default=5, help="classes shown per image")
    predict.add_argument("--num_classes", type=int, default=None,
                         help="classifier size (default: from the checkpoint)")
    predict.add_argument("--image_size", type=int, default=None,
                         help="input size (default: the net's)")
    predict.add_argument("--preprocessing_name", default=None,
                         help="preprocessing (default: the net's)")
    predict.add_argument("--json", action="store_true", help="print JSON lines")
    predict.set_defaults(func=run_predict)

    export = _add_parser(
        subparsers, "export", help="write a SavedModel, a .tflite file or a frozen graph "
                                   "(export_inference_graph)",
        description="Writes a SavedModel with a serving signature taking encoded images "
                    "(decoding and the net's eval preprocessing inside) and one taking "
                    "preprocessed float batches. It loads with tf.saved_model.load, "
                    "without kslim. Flags of research/slim export_inference_graph.py, plus "
                    "--weights and --output_dir. --format=tflite writes a TensorFlow Lite "
                    "file (--quantize=float16|dynamic|int8; int8 calibrates on "
                    "--num_steps images of --dataset_name/--dataset_split_name/"
                    "--dataset_dir); --format=frozen_graph the GraphDef with the weights "
                    "frozen in (input placeholder `input`, slim's output node names).")
    _add_config_flags(export, ExportConfig)
    export.set_defaults(func=run_export)

    demo = _add_parser(
        subparsers, "demo", help="the main job on the embedded digits, in about a minute",
        description="Writes the embedded UCI digits in slim's MNIST layout, trains LeNet "
                    "with model.fit, evaluates the slim checkpoint, reloads it through "
                    "weights= and prints 'eval/Accuracy=<float> eval/Recall_5=<float>'.")
    demo.add_argument("--work_dir", default=None,
                      help="folder for the data, checkpoints and logs (default: a new "
                           "temporary folder)")
    demo.add_argument("--max_number_of_steps", type=int, default=None,
                      help="training steps (default 300; detection 1600)")
    demo.add_argument("--batch_size", type=int, default=None, help="default 32 (detection 16)")
    demo.add_argument("--learning_rate", type=float, default=None, help="default 0.01 (detection 0.003)")
    demo.add_argument("--optimizer", default=None, help="default rmsprop (detection adam)")
    demo.add_argument("--seed", type=int, default=None, help="default 0")
    demo.add_argument("--task", default="classification",
                      choices=("classification", "detection"),
                      help="classification (LeNet on digits) or detection (a small SSD "
                           "on the embedded shapes set, VOC mAP; a few minutes on CPU)")
    demo.set_defaults(func=run_demo)

    detect = _add_parser(
        subparsers, "detect", help="boxes an SSD net finds in image files",
        description="Runs an SSD net (ssd_300_vgg, ssd_512_vgg, ssd_demo) on image files: "
                    "SSD-Tensorflow's eval preprocessing, per-class selection and NMS; "
                    "prints class name, score and pixel box (ymin, xmin, ymax, xmax) per "
                    "detection, and with --output writes each image as a PNG with its "
                    "boxes drawn.")
    detect.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG/PNG/GIF/BMP files")
    detect.add_argument("--model", "--model_name", dest="model", default="ssd_300_vgg",
                        help="SSD net name (default ssd_300_vgg)")
    detect.add_argument("--weights", "--checkpoint_path", dest="weights", required=True,
                        help="SSD checkpoint (prefix or folder), .weights.h5/.keras")
    detect.add_argument("--output", "--output_dir", dest="output", default=None,
                        help="folder for the PNGs with the boxes drawn")
    detect.add_argument("--labels", default=None,
                        help="class names: a dataset name (pascalvoc_2007, shapes), "
                             "labels.txt or a folder with one (default: VOC names for 21 "
                             "classes)")
    detect.add_argument("--num_classes", type=int, default=None,
                        help="classes with background (default: from the checkpoint)")
    detect.add_argument("--image_size", type=int, default=None,
                        help="network input size (default: the net's)")
    detect.add_argument("--select_threshold", type=float, default=0.5,
                        help="minimum class score of a box (default 0.5)")
    detect.add_argument("--nms_threshold", type=float, default=0.45, help="default 0.45")
    detect.add_argument("--max_detections", type=int, default=100,
                        help="boxes per image at most (default 100)")
    detect.add_argument("--json", action="store_true", help="print JSON lines")
    detect.set_defaults(func=run_detect)


def run_train(args) -> int:
    from kslim.training._callbacks import LossDivergedError
    from kslim.training._train import TrainConfig, train

    config = _config_from(args, TrainConfig)
    try:
        result = train(config)
    except LossDivergedError as e:
        print(f"kslim train: error: {e}", file=sys.stderr)
        return 1
    if result.checkpoint:
        where = result.checkpoint
    elif result.global_step == result.start_step:
        where = "none written (no step was trained)"
    else:
        where = "(not the chief: no checkpoint written)"
    print(f"Finished at global step {result.global_step}; checkpoint {where}", flush=True)
    return 0


def run_eval(args) -> int:
    from kslim.training._eval import EvalConfig, evaluate

    results = evaluate(_config_from(args, EvalConfig))
    if not results:
        print("kslim eval: error: no checkpoint appeared in "
              f"{args.checkpoint_path} before the timeout", file=sys.stderr)
        return 1
    return 0


def run_predict(args) -> int:
    from kslim.training._infer import predict

    if args.tflite:
        from kslim.export import TFLiteRunner

        if args.model or args.weights:
            raise ValueError("--tflite runs the net in the file: leave out --model and "
                             "--weights")
        predictions = TFLiteRunner(args.tflite, num_threads=args.num_threads).predict(
            args.images, top_k=args.top_k, labels=args.labels,
            preprocessing_name=args.preprocessing_name)
    elif not args.model:
        raise ValueError("give the net: --model NAME (with --weights), or --tflite FILE")
    else:
        predictions = predict(args.images, args.model, args.weights, labels=args.labels,
                              top_k=args.top_k, num_classes=args.num_classes,
                              image_size=args.image_size,
                              preprocessing_name=args.preprocessing_name)
    for p in predictions:
        if args.json:
            print(json.dumps(p.as_dict()))
            continue
        print(p.image)
        for rank, (index, prob, name) in enumerate(zip(p.classes, p.probabilities, p.names)):
            print(f"  {rank + 1}. {prob:.4f}  {index:>4}  {name}")
    return 0


def run_export(args) -> int:
    from kslim.training._infer import ExportConfig, export

    config = _config_from(args, ExportConfig)
    folder = export(config)
    if config.format != "saved_model":
        print(f"Wrote {config.format} {folder}", flush=True)
        return 0
    print(f"Wrote SavedModel {folder} (signatures serving_default = encoded_images: "
          "string images -> logits, probabilities, classes, top_k_*; float_images: "
          "preprocessed float32 inputs)")
    return 0


def run_demo(args) -> int:
    from kslim.training._demo import demo

    overrides = {k: v for k, v in (("max_number_of_steps", args.max_number_of_steps),
                                   ("batch_size", args.batch_size),
                                   ("learning_rate", args.learning_rate),
                                   ("optimizer", args.optimizer), ("seed", args.seed))
                 if v is not None}
    demo(args.work_dir, task=args.task, **overrides)
    return 0


def run_detect(args) -> int:
    from kslim.detection._export import detect_images

    results = detect_images(args.images, args.model, args.weights,
                            num_classes=args.num_classes, image_size=args.image_size,
                            labels=args.labels, select_threshold=args.select_threshold,
                            nms_threshold=args.nms_threshold,
                            max_detections=args.max_detections, output_dir=args.output)
    for result in results:
        if args.json:
            print(json.dumps(result.as_dict()))
            continue
        drawn = f" -> {result.drawn}" if result.drawn else ""
        print(f"{result.image} ({result.width}x{result.height}): "
              f"{len(result.detections)} boxes{drawn}")
        for d in result.detections:
            ymin, xmin, ymax, xmax = d.box
            print(f"  {d.name:<14} {d.score:.3f}  ymin={ymin:.1f} xmin={xmin:.1f} "
                  f"ymax={ymax:.1f} xmax={xmax:.1f}")
    return 0
