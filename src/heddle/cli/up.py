"""``heddle up`` / ``heddle down`` / ``heddle deploy``: the embedded default network."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from heddle.cli import CliError

DEFAULT_DATA = Path(os.environ.get("HEDDLE_DATA", "data"))


def register(sub) -> None:
    up = sub.add_parser(
        "up",
        help="start the default local network (orderer.example.com:7050, peer0.org1:7051, peer0.org2:9051, "
        "channel mychannel, chaincode basic)",
    )
    up.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="network files (default ./data or $HEDDLE_DATA)"
    )
    up.add_argument("--channel", default="mychannel", help="channel to create (default mychannel)")
    up.add_argument("--no-chaincode", action="store_true", help="do not deploy the example chaincode 'basic'")
    up.add_argument("--batch-timeout", default="2s", help="orderer BatchTimeout (default 2s)")
    up.add_argument(
        "--orderers",
        type=int,
        default=1,
        help="number of orderers: 1 runs solo (default); N > 1 runs a Raft (etcdraft) ordering service "
        "on orderer.example.com:7050, orderer2.example.com:8050, ... (admin port +3, cluster port +4)",
    )
    up.add_argument(
        "--no-tcf",
        action="store_true",
        help="do not start the trusted-compute services "
        "(chaincode 'tcf', the JSON-RPC listener on localhost:1947, a worker, the connector)",
    )
    up.set_defaults(func=_up)

    down = sub.add_parser("down", help="stop the local network")
    down.add_argument("--data", type=Path, default=DEFAULT_DATA)
    down.add_argument("--clean", action="store_true", help="also remove the network's files")
    down.set_defaults(func=_down)

    deploy = sub.add_parser("deploy", help="deploy a chaincode to the running local network")
    deploy.add_argument("name", help="chaincode name")
    deploy.add_argument(
        "source",
        help="a folder with a Python contract (run by the peers) or HOST:PORT of a "
        "chaincode server (chaincode as a service)",
    )
    deploy.add_argument("--data", type=Path, default=DEFAULT_DATA)
    deploy.add_argument(
        "--signature-policy",
        help="endorsement policy, e.g. \"AND('Org1MSP.peer','Org2MSP.peer')\"; "
        "default: the channel's MAJORITY Endorsement policy",
    )
    deploy.add_argument("--version", default="1.0")
    deploy.set_defaults(func=_deploy)


def _up(args) -> int:
    from heddle.network.up import up

    try:
        up(
            args.data,
            channel=args.channel,
            chaincode=not args.no_chaincode,
            batch_timeout=args.batch_timeout,
            orderers=args.orderers,
            tcf=not args.no_tcf,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc
    return 0


def _down(args) -> int:
    from heddle.network.local import LocalNetwork

    stopped = LocalNetwork.stop_pids(args.data)
    print(f"Stopped {', '.join(stopped)}" if stopped else "No running network found in " + str(args.data))
    if args.clean and args.data.exists():
        shutil.rmtree(args.data)
        print(f"Removed {args.data}")
    return 0


def _deploy(args) -> int:
    from heddle.network.up import deploy

    try:
        deploy(
            args.data, args.name, args.source, signature_policy=args.signature_policy, version=args.version
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc
    return 0
