"""The `kslim` command line (also `python -m kslim`).

Each sub-command lives beside the code it drives, in a `_cli` module that exposes
`register(subparsers)`; those modules import TensorFlow only when a command runs, so
`kslim --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that add sub-commands, in the order `kslim --help` lists them.
_COMMAND_MODULES = (
    "kslim.compat._cli",  # inspect, convert
    "kslim.data._cli",  # data convert, data show
    "kslim.training._cli",  # train, eval, predict, export, demo
    "kslim._zoo_cli",  # zoo list|fetch|import (outside kslim.models, whose import loads every net)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kslim",
        description="TF-Slim's image models, checkpoints and training on Keras 3.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, PermissionError,
            KeyError) as e:  # user errors: one clear line
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"kslim {args.command}: error: {message}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
