"""``heddle demo``: run the main job on the embedded default network."""

from __future__ import annotations

from pathlib import Path

from heddle.cli.up import DEFAULT_DATA


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="run a demo on the default network (heddle up): 'assets' (default) or 'heart-disease'"
    )
    p.add_argument(
        "story",
        nargs="?",
        default="assets",
        choices=["assets", "heart-disease"],
        help="assets: the asset-transfer application and a ledger summary; heart-disease: two hospitals "
        "share encrypted records and an attested enclave trains a model over them",
    )
    p.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="network files (default ./data or $HEDDLE_DATA)"
    )
    p.set_defaults(func=_run)


def _run(args) -> int:
    if args.story == "heart-disease":
        from heddle.network.demo_tcf import run_heart_disease_demo

        return run_heart_disease_demo(args.data)
    from heddle.network.demo import run_demo

    return run_demo(args.data)
