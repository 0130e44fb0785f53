"""``heddle crypto``: crypto material for a network, as Fabric's cryptogen makes it."""

from __future__ import annotations

import argparse

from heddle.cli import CliError
from heddle.msp.cryptogen import (
    CryptoConfigError,
    default_crypto_config,
    generate,
    load_crypto_config,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("crypto", help="generate MSP and TLS material (cryptogen equivalent)")
    sub = parser.add_subparsers(dest="crypto_command", metavar="SUBCOMMAND")
    gen = sub.add_parser(
        "generate",
        help="write organizations/ folders from a crypto-config.yaml",
        description=(
            "Write CAs, MSP folders and TLS certificates for every org of a "
            "crypto-config.yaml, in the folder layout of Fabric's cryptogen. Without "
            "--config, writes test-network's orgs (orderer org example.com, Org1, Org2)."
        ),
    )
    gen.add_argument("--config", help="crypto-config.yaml (Fabric's format)")
    gen.add_argument("--output", default="crypto-config", help="output folder (default: crypto-config)")
    gen.add_argument(
        "--orderers", type=int, default=1, help="without --config: number of orderers (default 1)"
    )
    gen.set_defaults(func=_generate)
    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _generate(args: argparse.Namespace) -> int:
    try:
        config = (
            load_crypto_config(args.config) if args.config else default_crypto_config(orderers=args.orderers)
        )
        material = generate(config, args.output)
    except CryptoConfigError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    for org in material.orgs:
        print(org.path)
    return 0
