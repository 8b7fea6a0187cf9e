"""`kslim zoo list|fetch|import`: the slim model-zoo table and its download cache."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    zoo = subparsers.add_parser(
        "zoo", help="the slim model-zoo checkpoints: list, fetch, import",
        description="The TF-Slim model-zoo checkpoints kslim loads with weights='slim' or "
                    "weights='slim:<tag>'. The cache is $KSLIM_HOME/zoo (default "
                    "~/.keras/models/kslim/zoo). KSLIM_OFFLINE=1 never downloads; "
                    "KSLIM_ZOO_MIRROR=<base URL or folder> fetches archives by file name "
                    "from a mirror; KSLIM_ZOO_SHA256='tag=hex,...' pins archives.")
    commands = zoo.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")

    listing = commands.add_parser(
        "list", help="print the zoo table",
        description="Prints every zoo checkpoint: tag, net and options, classes, image size, "
                    "preprocessing, published top-1/top-5; '*' marks the entry "
                    "weights='slim' picks, 'cached' the installed ones.")
    listing.add_argument("pattern", nargs="?", default="*",
                         help="fnmatch pattern over tags and nets (default: all)")
    listing.add_argument("--urls", action="store_true",
                         help="also print each archive's URL and checkpoint member")
    listing.set_defaults(func=run_list)

    fetch = commands.add_parser(
        "fetch", help="download, check and cache zoo checkpoints",
        description="Downloads (or takes from the mirror or the drop folder), checks and "
                    "installs zoo checkpoints, so later loads need no network. TAG is a "
                    "tag, an archive file name, or a net name (its default checkpoint).")
    fetch.add_argument("tags", nargs="+", metavar="TAG")
    fetch.add_argument("--sha256", default=None,
                       help="pin the archive's sha256 (with one TAG)")
    fetch.set_defaults(func=run_fetch)

    imp = commands.add_parser(
        "import", help="install a zoo archive downloaded by hand",
        description="Checks and installs a zoo archive brought from elsewhere (the same "
                    "checks as a download: complete archive, safe members, readable "
                    "checkpoint that fits the net, sha256 when pinned).")
    imp.add_argument("archive", help="the .tar.gz/.tgz file")
    imp.add_argument("--tag", default=None,
                     help="its zoo tag (default: found from the file name)")
    imp.add_argument("--sha256", default=None, help="pin the archive's sha256")
    imp.add_argument("--force", action="store_true", help="replace an installed copy")
    imp.set_defaults(func=run_import)

    zoo.set_defaults(func=lambda args: _usage(zoo))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _options(entry) -> str:
    return ", ".join(f"{k}={v}" for k, v in entry.kwargs.items())


def run_list(args) -> int:
    from kslim.models import zoo

    rows = zoo.entries(args.pattern)
    if not rows:
        raise ValueError(f"no zoo checkpoint matches {args.pattern!r}")
    header = ("TAG", "NET", "OPTIONS", "CLASSES", "SIZE", "PREPROCESSING", "TOP-1", "TOP-5",
              "")
    table = []
    for entry in rows:
        flags = " ".join(flag for flag, on in (("*", entry.default), (
            "cached", zoo.cached_checkpoint(entry) is not None)) if on)
        table.append((entry.tag, entry.net, _options(entry) or "-", str(entry.num_classes),
                      str(entry.image_size), entry.preprocessing,
                      "-" if entry.top1 is None else f"{entry.top1:.1f}",
                      "-" if entry.top5 is None else f"{entry.top5:.1f}", flags))
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if args.urls and row is not header:
            entry = rows[table.index(row)]
            member = entry.member or "(the archive's only checkpoint)"
            print(f"    {entry.url}  [{member}]")
    print(f"{len(rows)} checkpoints; '*' = the net's weights='slim' default; cache: "
          f"{zoo.cache_dir()}")
    return 0


def run_fetch(args) -> int:
    from kslim.models import zoo

    if args.sha256 and len(args.tags) > 1:
        raise ValueError("--sha256 pins one archive: give one TAG with it")
    for tag in args.tags:
        prefix = zoo.fetch(tag, sha256=args.sha256)
        print(f"{zoo.get(tag).tag}: {prefix}")
    return 0


def run_import(args) -> int:
    from kslim.models import zoo

    entry = zoo.archive_entry(args.archive, args.tag)
    kept = None if args.force else zoo.cached_checkpoint(entry, args.sha256)
    prefix = zoo.import_archive(args.archive, tag=args.tag, sha256=args.sha256,
                                force=args.force)
    if kept:  # import_archive read the file and found it is the installed one
        print(f"{entry.tag} is already installed from this archive ({args.archive}) -> "
              f"{prefix}")
    else:
        print(f"installed {args.archive} -> {prefix}")
    return 0
