"""The walkthrough's "Reading Data with TF-Slim": a dataset split and a look at its images.

slim's `Dataset` (a description: files, decoder, sizes, label names) and
`DatasetDataProvider` (the reader) are `kslim.data.get_split` and `split.dataset()` on
tf.data; the walkthrough's "display some data" is `kslim.data.show`, a PNG grid captioned
with the label names (the seed tutorial's open question: how to look at the images).

    python examples/read_dataset.py                                   # embedded digits
    python examples/read_dataset.py --dataset_name flowers --dataset_dir /data/flowers
"""

from __future__ import annotations

import argparse
import os

import kslim


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_name", default="digits")
    parser.add_argument("--split_name", default="train")
    parser.add_argument("--dataset_dir", default=None, help="optional for digits")
    parser.add_argument("--count", type=int, default=4, help="examples to print")
    parser.add_argument("--output", default="dataset.png", help="PNG grid to write")
    parser.add_argument("--num", type=int, default=16, help="images in the grid")
    args = parser.parse_args(argv)

    split = kslim.data.get_split(args.dataset_name, args.split_name, args.dataset_dir)
    print(f"{split.name}/{split.split_name}: {split.num_samples} examples, "
          f"{split.num_classes} classes, files {', '.join(map(os.path.basename, split.files))}")
    print("labels_to_names:", split.labels_to_names)
    examples = []
    for image, label in split.dataset().take(args.count):
        name = split.labels_to_names[int(label)] if split.labels_to_names else str(int(label))
        examples.append((tuple(image.shape), int(label), name))
        print(f"image {tuple(image.shape)} {image.dtype.name}, label {int(label)} ({name})")
    captions = kslim.data.show(split, args.output, num=args.num)
    print(f"wrote {args.output}: {len(captions)} images, {', '.join(captions[:6])}, ...")
    return {"num_samples": split.num_samples, "num_classes": split.num_classes,
            "examples": examples, "captions": captions, "grid": args.output}


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
