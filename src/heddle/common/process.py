"""What every node process does around its node: start, tune the collector, run until signalled."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal


def tune_gc() -> None:
    """Fewer cyclic garbage collections: under load a node allocates protobuf messages and
    futures by the hundred thousand per second, and with CPython's default thresholds
    (700, 10, 10) the collector took about a tenth of a peer's CPU (py-spy, see
    docs/performance.md). The objects alive after start-up are frozen out of collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 20, 50)


async def serve_until_signalled(node) -> None:
    """``await node.start()``, serve until SIGINT or SIGTERM, then ``await node.stop()``."""
    try:
        await node.start()
    except BaseException:
        with contextlib.suppress(Exception):  # release what did start (ledgers, pools, ports)
            await node.stop()
        raise
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await node.stop()
