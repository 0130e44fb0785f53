"""``heddle demo``: run the main job on the embedded default network."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("demo", help="start a local network, push transactions through it, show the ledger")
    p.add_argument("--data", type=Path, help="folder for the network's files (default: a new temp folder)")
    p.add_argument(
        "--transactions", type=int, default=200, help="how many transactions to send (default 200)"
    )
    p.set_defaults(func=_run)


def _run(args) -> int:
    from heddle.network.demo import run_demo

    return run_demo(args.data, args.transactions)
