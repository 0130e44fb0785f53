"""``heddle osnadmin channel join|list|remove``: the orderer's channel participation API client,
with the flags of Fabric's osnadmin."""

from __future__ import annotations

import json
from pathlib import Path

from heddle.cli import CliError
from heddle.orderer.participation_client import AdminEndpoint, ParticipationError, request


def register(sub) -> None:
    p = sub.add_parser("osnadmin", help="administer an orderer's channels (channel participation API)")
    psub = p.add_subparsers(dest="osnadmin_command", metavar="COMMAND", required=True)
    ch = psub.add_parser("channel", help="join, list or remove channels")
    csub = ch.add_subparsers(dest="channel_command", metavar="COMMAND", required=True)

    def common(q):
        q.add_argument("-o", "--orderer-address", required=True, help="admin endpoint host:port")
        q.add_argument("--ca-file", help="TLS CA certificate of the admin endpoint")
        q.add_argument("--client-cert", help="client TLS certificate (mutual TLS)")
        q.add_argument("--client-key", help="client TLS private key (mutual TLS)")
        q.add_argument("--no-status", action="store_true", help="do not print the HTTP status line")

    join = csub.add_parser("join", help="join the orderer to a channel with its config block")
    common(join)
    join.add_argument("--channelID", "-c", required=True, help="channel name")
    join.add_argument("--config-block", "-b", required=True, help="path to the genesis/config block")
    join.set_defaults(func=_join)
    lst = csub.add_parser("list", help="list the orderer's channels, or one channel's details")
    common(lst)
    lst.add_argument("--channelID", "-c", help="show one channel")
    lst.set_defaults(func=_list)
    rm = csub.add_parser("remove", help="remove the orderer from a channel")
    common(rm)
    rm.add_argument("--channelID", "-c", required=True)
    rm.set_defaults(func=_remove)


def _endpoint(args) -> AdminEndpoint:
    return AdminEndpoint(
        args.orderer_address,
        Path(args.ca_file) if args.ca_file else None,
        Path(args.client_cert) if args.client_cert else None,
        Path(args.client_key) if args.client_key else None,
    )


def _call(args, method: str, path: str = "", block: bytes | None = None) -> int:
    try:
        status, body = request(_endpoint(args), method, path, block)
    except ParticipationError as exc:
        raise CliError(str(exc)) from exc
    if not args.no_status:
        print(f"Status: {status}")
    if body is not None:
        print(json.dumps(body, indent=2))
    return 0 if status < 400 else 1


def _join(args) -> int:
    block = Path(args.config_block)
    if not block.is_file():
        raise CliError(f"config block {block} not found")
    return _call(args, "POST", "", block.read_bytes())


def _list(args) -> int:
    return _call(args, "GET", f"/{args.channelID}" if args.channelID else "")


def _remove(args) -> int:
    return _call(args, "DELETE", f"/{args.channelID}")
