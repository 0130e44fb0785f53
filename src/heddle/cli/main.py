"""``heddle``: one command for every node, tool and demo.

Each subcommand lives in its own module under ``heddle.cli`` that exposes
``register(subparsers)``; the module adds its parser and sets ``func`` on it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from heddle.cli import CliError

# Modules under heddle.cli, in the order their commands appear in --help.
_COMMAND_MODULES = [
    "crypto",
    "channel",
    "orderer",
    "osnadmin",
    "peer",
    "up",
    "tcf",
    "bench",
    "demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="heddle",
        description="heddle: a confidential ledger on Hyperledger Fabric's wire protocol.",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="logging level for this command (DEBUG, INFO, WARNING, ERROR); default WARNING",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"heddle.cli.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
