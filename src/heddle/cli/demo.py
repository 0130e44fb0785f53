"""``heddle demo``: run the main job on the embedded default network."""

from __future__ import annotations

from pathlib import Path

from heddle.cli.up import DEFAULT_DATA


def register(sub) -> None:
    p = sub.add_parser("demo", help="heddle up, then the asset-transfer application, then a ledger summary")
    p.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="network files (default ./data or $HEDDLE_DATA)"
    )
    p.set_defaults(func=_run)


def _run(args) -> int:
    from heddle.network.demo import run_demo

    return run_demo(args.data)
