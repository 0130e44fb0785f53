"""``heddle osnadmin channel join|list|remove``: the orderer's channel participation API client,
with the flags of Fabric's osnadmin."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import aiohttp

from heddle.cli import CliError


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


def _ssl(args) -> ssl.SSLContext | bool:
    if not args.ca_file:
        return False
    ctx = ssl.create_default_context(cafile=args.ca_file)
    if args.client_cert:
        ctx.load_cert_chain(args.client_cert, args.client_key)
    return ctx


def _url(args, path: str) -> str:
    scheme = "https" if args.ca_file else "http"
    return f"{scheme}://{args.orderer_address}/participation/v1/channels{path}"


async def _call(args, method: str, path: str, data=None) -> tuple[int, str]:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, _url(args, path), data=data, ssl=_ssl(args)) as resp,
        ):
            return resp.status, await resp.text()
    except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
        raise CliError(f"cannot reach {args.orderer_address}: {exc}") from exc


def _print(args, status: int, body: str) -> int:
    if not args.no_status:
        print(f"Status: {status}")
    if body:
        try:
            print(json.dumps(json.loads(body), indent=2))
        except ValueError:
            print(body)
    return 0 if status < 400 else 1


def _join(args) -> int:
    block = Path(args.config_block)
    if not block.is_file():
        raise CliError(f"config block {block} not found")
    form = aiohttp.FormData()
    form.add_field(
        "config-block", block.read_bytes(), filename=block.name, content_type="application/octet-stream"
    )
    return _print(args, *asyncio.run(_call(args, "POST", "", form)))


def _list(args) -> int:
    path = f"/{args.channelID}" if args.channelID else ""
    return _print(args, *asyncio.run(_call(args, "GET", path)))


def _remove(args) -> int:
    return _print(args, *asyncio.run(_call(args, "DELETE", f"/{args.channelID}")))
