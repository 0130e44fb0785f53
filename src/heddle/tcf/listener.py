"""Direct mode: the TCF JSON-RPC listener over HTTP (``POST /``), localhost:1947 by default.

A thin aiohttp shell around :class:`heddle.tcf.jsonrpc.TcfService` and a
:class:`SqliteStore` in the data directory; calls run on a thread so SQLite never
blocks the event loop. Worker hosts share the same store and pick queued work up
from it, so neither a listener restart nor a worker restart loses submitted work.

Run it with ``heddle tcf listener start`` or ``python -m heddle.tcf.listener``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from aiohttp import web

from heddle.tcf.jsonrpc import MAX_BODY, TcfService
from heddle.tcf.registry import TcfRegistry
from heddle.tcf.store import SqliteStore

log = logging.getLogger("heddle.tcf.listener")

DEFAULT_BIND = "localhost:1947"


def parse_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--bind must be HOST:PORT, not {bind!r}")
    return host, int(port)


def make_app(data_dir: str | Path) -> web.Application:
    store = SqliteStore(data_dir)
    service = TcfService(TcfRegistry(store), store.transaction)
    lock = asyncio.Lock()  # one SQLite writer per listener; the thread keeps the loop free

    async def rpc(request: web.Request) -> web.Response:
        body = await request.read()
        async with lock:
            reply = await asyncio.to_thread(service.handle_bytes, body)
        return web.Response(body=reply, content_type="application/json")

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/", rpc)
    app["store"] = store
    return app


async def serve(bind: str, data_dir: str | Path, ready: asyncio.Event | None = None) -> None:
    host, port = parse_bind(bind)
    runner = web.AppRunner(make_app(data_dir), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("TCF listener on http://%s:%d/ (data %s)", host, port, data_dir)
    print(f"TCF listener on http://{host}:{port}/", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m heddle.tcf.listener")
    parser.add_argument("--bind", default=DEFAULT_BIND)
    parser.add_argument("--data", default="tcf-data")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.bind, args.data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
