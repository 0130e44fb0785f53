"""``heddle orderer start --config orderer.yaml``"""

from __future__ import annotations

from heddle.cli import CliError, run_node
from heddle.common.config import ConfigFileError


def register(sub) -> None:
    p = sub.add_parser("orderer", help="run an ordering service node")
    osub = p.add_subparsers(dest="orderer_command", metavar="COMMAND", required=True)
    start = osub.add_parser("start", help="start the orderer (Broadcast, Deliver, channel participation API)")
    start.add_argument("--config", required=True, help="path to orderer.yaml")
    start.set_defaults(func=_start)


def _start(args) -> int:
    from heddle.orderer.config import load_orderer_config
    from heddle.orderer.node import run

    try:
        config = load_orderer_config(args.config)
    except ConfigFileError as exc:
        raise CliError(str(exc)) from exc
    return run_node(run, config)
