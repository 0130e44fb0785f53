"""``python -m heddle.bench``: the same as ``heddle bench``."""

from __future__ import annotations

import argparse
import logging
import sys

from heddle.cli import CliError
from heddle.cli import bench as bench_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m heddle.bench")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench_cli.register(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
