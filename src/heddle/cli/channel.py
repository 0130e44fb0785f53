"""``heddle channel``: genesis blocks from configtx.yaml (configtxgen) and inspecting them."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from fabric_protos.common import common_pb2
from google.protobuf.message import DecodeError

from heddle.channelconfig import ConfigError, genesis_block, load_configtx, parse_config_block
from heddle.channelconfig.configtx import CONFIGTX_FILENAME
from heddle.channelconfig.parse import describe_config
from heddle.cli import CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "channel", help="channel configuration: genesis blocks (configtxgen) and inspection"
    )
    sub = parser.add_subparsers(dest="channel_command", metavar="SUBCOMMAND")
    gen = sub.add_parser(
        "genesis",
        help="write a channel's genesis config block from a configtx.yaml profile",
        description=(
            "Write the genesis config block of a channel from a profile of a configtx.yaml "
            "(Fabric's format), as configtxgen -outputBlock does. Relative paths in the "
            "file resolve against the file's directory."
        ),
    )
    gen.add_argument("--profile", required=True, help="profile name under Profiles")
    gen.add_argument("--channel", "--channelID", dest="channel", required=True, help="channel ID")
    gen.add_argument(
        "--output", "--outputBlock", dest="output", required=True, help="file to write the block to"
    )
    where = gen.add_mutually_exclusive_group()
    where.add_argument("--config", help="path of the configtx.yaml")
    where.add_argument(
        "--configPath",
        help="directory holding configtx.yaml "
        "(like configtxgen's FABRIC_CFG_PATH; default: $FABRIC_CFG_PATH or .)",
    )
    gen.set_defaults(func=_genesis)

    inspect = sub.add_parser(
        "inspect",
        help="print the channel config carried by a config block",
        description="Parse a config block (e.g. a genesis block) and print its channel config.",
    )
    inspect.add_argument("file", help="a serialized common.Block")
    inspect.add_argument(
        "--format", choices=("json", "text"), default="json", help="json (default) or readable text"
    )
    inspect.set_defaults(func=_inspect)
    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _configtx_path(args: argparse.Namespace) -> Path:
    if args.config:
        return Path(args.config)
    directory = args.configPath or os.environ.get("FABRIC_CFG_PATH") or "."
    return Path(directory) / CONFIGTX_FILENAME


def _genesis(args: argparse.Namespace) -> int:
    path = _configtx_path(args)
    try:
        configtx = load_configtx(path)
        block = genesis_block(configtx, args.profile, args.channel, path.parent)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    try:
        Path(args.output).write_bytes(block.SerializeToString())
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    print(f"wrote genesis block of channel {args.channel} ({args.profile}) to {args.output}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    try:
        raw = Path(args.file).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
    block = common_pb2.Block()
    try:
        block.ParseFromString(raw)
    except DecodeError as exc:
        raise CliError(f"{args.file} is not a block: {exc}") from exc
    try:
        summary = describe_config(parse_config_block(block))
    except ConfigError as exc:
        raise CliError(f"{args.file}: {exc}") from exc
    if args.format == "json":
        print(json.dumps(summary, indent=2))
    else:
        _print_text(summary)
    return 0


def _print_text(summary: dict, indent: int = 0) -> None:
    pad = "  " * indent
    for key, value in summary.items():
        if isinstance(value, dict):
            print(f"{pad}{key}:")
            _print_text(value, indent + 1)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            print(f"{pad}{key}:")
            for item in value:
                print(f"{pad}  - " + ", ".join(f"{k}={v}" for k, v in item.items()))
        elif isinstance(value, list):
            print(f"{pad}{key}: {', '.join(map(str, value))}")
        else:
            print(f"{pad}{key}: {value}")
