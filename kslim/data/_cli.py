"""`kslim data convert` and `kslim data show`.

`convert` is slim's `download_and_convert_data.py` (and `build_imagenet_data.py`) on local
sources; `show` writes a PNG grid of a split's images with their label names.
"""

from __future__ import annotations

import argparse

_DATASETS = ("mnist", "cifar10", "flowers", "imagenet", "image_folder", "digits", "pascalvoc_2007", "pascalvoc_2012", "shapes")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="convert datasets to slim's TFRecord layouts, show a split's images",
        description="Datasets in slim's TFRecord layouts.",
    )
    commands = parser.add_subparsers(dest="data_command", metavar="{convert,show}")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    convert = commands.add_parser(
        "convert",
        help="write slim's TFRecords from raw data",
        description=(
            "Write a dataset in slim's TFRecord layout. Sources: mnist: the idx files (gz or "
            "not) or mnist.npz; cifar10: cifar-10-python.tar.gz or cifar-10-batches-py/; "
            "flowers and image_folder: a folder of class sub-folders or its .tgz; imagenet: "
            "a folder with train/ and validation/ of <synset>/ folders; digits, shapes: none "
            "(embedded); pascalvoc_2007/2012: VOCdevkit/VOC2007 (Annotations, JPEGImages, "
            "ImageSets/Main), written as SSD-Tensorflow's TFRecords with the difficult flags."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    convert.add_argument("--dataset_name", required=True, choices=_DATASETS)
    convert.add_argument("--dataset_dir", required=True, help="output folder")
    convert.add_argument("--source", help="raw data (default: dataset_dir, as slim)")
    convert.add_argument("--download", action="store_true", help="fetch mnist/cifar10/flowers first")
    convert.add_argument("--name", help="image_folder: dataset name and file prefix")
    convert.add_argument(
        "--validation_size", type=float, help="flowers/image_folder: count, or fraction if < 1"
    )
    convert.add_argument("--num_shards", type=int, help="flowers/image_folder: files per split")
    convert.add_argument("--seed", type=int, help="shuffle seed (slim: flowers 0, imagenet 12345)")
    convert.add_argument("--train_shards", type=int, help="imagenet: train files (1024)")
    convert.add_argument("--validation_shards", type=int, help="imagenet: validation files (128)")
    convert.add_argument("--num_threads", type=int, help="worker threads (imagenet: also the shard layout)")
    convert.add_argument("--labels_file", help="imagenet: synsets, one per line")
    convert.add_argument("--metadata_file", help="imagenet: synset<TAB>text lines")
    convert.add_argument("--bounding_box_file", help="imagenet: file,xmin,ymin,xmax,ymax lines")
    convert.add_argument(
        "--split_name", action="append", help="pascalvoc: split to write (repeatable; default: every split found)"
    )
    convert.add_argument(
        "--image_set",
        help="pascalvoc: ImageSets/Main list for the split(s) (default 2007 train=trainval, test=test; "
        "2012 train=trainval), or 'all' for every annotation file as SSD-Tensorflow",
    )
    convert.add_argument(
        "--overwrite", action="store_true", help="replace a dataset already in --dataset_dir (default: refuse)"
    )
    convert.set_defaults(func=run_convert)

    show = commands.add_parser(
        "show",
        help="write a PNG grid of a split's images with their labels",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    show.add_argument("--dataset_name", default="digits")
    show.add_argument("--split_name", default="train")
    show.add_argument("--dataset_dir", help="folder of the TFRecords (optional for digits)")
    show.add_argument("--num", type=int, default=16, help="images to show")
    show.add_argument("--columns", type=int, help="images per row")
    show.add_argument("--shuffle", action="store_true", help="a random sample, not the first images")
    show.add_argument("--seed", type=int)
    show.add_argument("--output", default="grid.png", help="PNG file to write")
    show.set_defaults(func=run_show)


def _converter_options(args) -> dict:
    options = {"overwrite": getattr(args, "overwrite", False) or None}
    if args.dataset_name in ("mnist", "cifar10", "flowers"):
        options["download"] = args.download or None
    elif args.download:
        raise ValueError(f"--download is not available for {args.dataset_name}")
    if args.dataset_name in ("flowers", "image_folder"):
        size = args.validation_size
        if size is not None and size >= 1:
            size = int(size)
        options.update(validation_size=size, num_shards=args.num_shards, seed=args.seed)
    if args.dataset_name == "image_folder":
        options.update(name=args.name, num_threads=args.num_threads)
    if args.dataset_name.startswith("pascalvoc_"):
        splits = args.split_name or (["train"] if args.image_set else None)
        options.update(
            split_names=splits,
            image_sets={s: args.image_set for s in splits} if args.image_set else None,
        )
    elif args.split_name or args.image_set:
        raise ValueError("--split_name and --image_set are for pascalvoc_2007 and pascalvoc_2012")
    if args.dataset_name == "imagenet":
        options.update(
            labels_file=args.labels_file,
            metadata_file=args.metadata_file,
            bounding_box_file=args.bounding_box_file,
            train_shards=args.train_shards,
            validation_shards=args.validation_shards,
            num_threads=args.num_threads,
            seed=args.seed,
        )
    return options


def run_convert(args) -> int:
    from kslim.data import convert, get_spec, get_split

    dataset_dir = convert(args.dataset_name, args.dataset_dir, args.source, **_converter_options(args))
    name = args.name if args.dataset_name == "image_folder" and args.name else args.dataset_name
    spec = get_spec(name, dataset_dir)
    report = _conversion_report(dataset_dir) if spec.detection else {}
    for split_name, _ in spec.splits:
        split = get_split(name, split_name, dataset_dir)
        print(
            f"{name} {split_name}: {split.num_samples} examples in {len(split.files)} file(s), "
            f"{split.num_classes} classes -> {split.file_pattern}"
        )
        if split_name in report:
            r = report[split_name]
            print(
                f"  from ImageSets/Main/{r['image_set']}: {r['objects']} objects, {r['difficult']} difficult, "
                f"{r['images_without_objects']} images without objects"
            )
    return 0


def _conversion_report(dataset_dir: str) -> dict:
    """The per-split counts `convert_pascalvoc` keeps in `kslim_dataset.json`."""
    import json
    import os

    from kslim.data._specs import INFO_FILENAME

    try:
        with open(os.path.join(dataset_dir, INFO_FILENAME)) as f:
            return dict(json.load(f).get("conversion", {}))
    except (OSError, ValueError, TypeError):
        return {}


def run_show(args) -> int:
    from kslim.data import get_split, show

    split = get_split(args.dataset_name, args.split_name, args.dataset_dir)
    captions = show(split, args.output, num=args.num, columns=args.columns, shuffle=args.shuffle, seed=args.seed)
    for i, caption in enumerate(captions):
        print(f"{i}: {caption}")
    print(f"wrote {args.output} ({len(captions)} images of {split.name} {split.split_name})")
    return 0
