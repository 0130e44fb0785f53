"""``heddle peer start|channel ...``: the peer node and its admin commands.

Like Fabric's ``peer`` CLI, the channel commands take the client identity and target from
CORE_PEER_ADDRESS, CORE_PEER_LOCALMSPID, CORE_PEER_MSPCONFIGPATH, CORE_PEER_TLS_ENABLED and
CORE_PEER_TLS_ROOTCERT_FILE, or from the equivalent flags.
"""

from __future__ import annotations

import os
from pathlib import Path

from heddle.cli import CliError, run_node
from heddle.common.config import ConfigFileError


def register(sub) -> None:
    p = sub.add_parser("peer", help="run a peer node, or administer one")
    psub = p.add_subparsers(dest="peer_command", metavar="COMMAND", required=True)
    start = psub.add_parser("start", help="start the peer (Endorser, Deliver, commit path)")
    start.add_argument("--config", required=True, help="path to core.yaml")
    start.set_defaults(func=_start)

    from heddle.cli.lifecycle import register_lifecycle

    register_lifecycle(psub)

    ch = psub.add_parser("channel", help="join channels and query them")
    csub = ch.add_subparsers(dest="channel_command", metavar="COMMAND", required=True)

    def target(q):
        q.add_argument(
            "--peerAddresses",
            default=os.environ.get("CORE_PEER_ADDRESS"),
            help="peer host:port (default $CORE_PEER_ADDRESS)",
        )
        q.add_argument(
            "--mspID",
            default=os.environ.get("CORE_PEER_LOCALMSPID"),
            help="client MSP ID (default $CORE_PEER_LOCALMSPID)",
        )
        q.add_argument(
            "--mspPath",
            default=os.environ.get("CORE_PEER_MSPCONFIGPATH"),
            help="client MSP folder (default $CORE_PEER_MSPCONFIGPATH)",
        )
        q.add_argument(
            "--tlsRootCertFiles",
            default=os.environ.get("CORE_PEER_TLS_ROOTCERT_FILE"),
            help="peer TLS CA certificate (default $CORE_PEER_TLS_ROOTCERT_FILE)",
        )
        q.add_argument(
            "--tls",
            default=os.environ.get("CORE_PEER_TLS_ENABLED", "true"),
            help="use TLS (default $CORE_PEER_TLS_ENABLED or true)",
        )

    join = csub.add_parser("join", help="join the peer to a channel with its genesis block")
    target(join)
    join.add_argument("-b", "--blockpath", required=True, help="path to the genesis block")
    join.set_defaults(func=_join)
    lst = csub.add_parser("list", help="list the channels the peer has joined")
    target(lst)
    lst.set_defaults(func=_list)
    info = csub.add_parser("getinfo", help="show a channel's height and current block hash")
    target(info)
    info.add_argument("-c", "--channelID", required=True)
    info.set_defaults(func=_getinfo)


def _start(args) -> int:
    from heddle.peer.config import load_peer_config
    from heddle.peer.node import run

    try:
        config = load_peer_config(args.config)
    except ConfigFileError as exc:
        raise CliError(str(exc)) from exc
    return run_node(run, config)


def _invoke_scc(args, channel: str, chaincode: str, fargs: list[bytes]) -> bytes:
    from heddle.msp import MspError, load_signing_identity
    from heddle.peer.admin import PeerCallError, invoke_system_chaincode

    for flag, value in (
        ("--peerAddresses", args.peerAddresses),
        ("--mspID", args.mspID),
        ("--mspPath", args.mspPath),
    ):
        if not value:
            raise CliError(f"{flag} (or its CORE_PEER_* variable) is required")
    try:
        identity = load_signing_identity(args.mspPath, args.mspID)
    except (MspError, OSError) as exc:
        raise CliError(f"cannot load identity from {args.mspPath}: {exc}") from exc
    tls_root = None
    if str(args.tls).lower() in ("true", "1", "yes"):
        if not args.tlsRootCertFiles:
            raise CliError("TLS is on: --tlsRootCertFiles (or CORE_PEER_TLS_ROOTCERT_FILE) is required")
        tls_root = Path(args.tlsRootCertFiles)
    try:
        return invoke_system_chaincode(args.peerAddresses, tls_root, identity, channel, chaincode, fargs)
    except PeerCallError as exc:
        raise CliError(str(exc)) from exc


def _join(args) -> int:
    block = Path(args.blockpath)
    if not block.is_file():
        raise CliError(f"block file {block} not found")
    _invoke_scc(args, "", "cscc", [b"JoinChain", block.read_bytes()])
    print("Successfully submitted proposal to join channel")
    return 0


def _list(args) -> int:
    from fabric_protos.peer import query_pb2

    resp = query_pb2.ChannelQueryResponse.FromString(_invoke_scc(args, "", "cscc", [b"GetChannels"]))
    print("Channels peers has joined: ")
    for c in resp.channels:
        print(c.channel_id)
    return 0


def _getinfo(args) -> int:
    import base64
    import json

    from fabric_protos.common import ledger_pb2

    raw = _invoke_scc(args, args.channelID, "qscc", [b"GetChainInfo", args.channelID.encode()])
    info = ledger_pb2.BlockchainInfo.FromString(raw)
    out = {
        "height": info.height,
        "currentBlockHash": base64.b64encode(info.currentBlockHash).decode(),
        "previousBlockHash": base64.b64encode(info.previousBlockHash).decode(),
    }
    print("Blockchain info: " + json.dumps(out))
    return 0
