#!/usr/bin/env python
"""Converts slim checkpoints to Keras files and back (the same as `kslim convert`).

    python scripts/convert_ckpt.py vgg_16.ckpt vgg_16.weights.h5 --model vgg_16
    python scripts/convert_ckpt.py vgg_16.weights.h5 out/model.ckpt --model vgg_16
    python scripts/convert_ckpt.py inception_v3.ckpt iv3_1000.weights.h5 \\
        --model inception_v3 --num_classes 1000 --label_offset 1

The slim -> Keras direction prints the restore report (loaded, missing, mismatched,
excluded, unused); the script refuses to overwrite its input.
"""

import argparse
import sys

from kslim.compat._cli import add_convert_arguments, run_convert


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_convert_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_convert(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"convert_ckpt.py: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
