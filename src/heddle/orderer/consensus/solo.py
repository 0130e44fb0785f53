"""Solo consensus: this orderer alone orders every message of a channel.

Broadcast is acknowledged only after the block holding the message is durably written,
so a crash never loses a message a client was told succeeded.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from heddle.orderer.blockcutter import BlockCutter
from heddle.orderer.channel import BroadcastError, ChannelSupport
from heddle.protocol import ParsedEnvelope

log = logging.getLogger(__name__)


@dataclass
class _Message:
    parsed: ParsedEnvelope
    data: bytes
    size: int
    config_seq: int  # the config sequence the message was checked against
    is_config: bool
    done: asyncio.Future = field(repr=False)


class SoloChain:
    """Orders one channel's messages into blocks on a single task."""

    def __init__(self, support: ChannelSupport):
        self.support = support
        self._queue: asyncio.Queue[_Message | None] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._halted = False

    def start(self) -> None:
        name = f"solo-{self.support.channel_id}"
        self._task = asyncio.get_running_loop().create_task(self._run(), name=name)

    async def halt(self) -> None:
        self._halted = True
        if self._task:
            await self._queue.put(None)
            await self._task

    def _enqueue(self, parsed: ParsedEnvelope, data: bytes, size: int, is_config: bool) -> asyncio.Future:
        if self._halted:
            raise BroadcastError(503, "channel is halted")  # SERVICE_UNAVAILABLE
        fut = asyncio.get_running_loop().create_future()
        msg = _Message(parsed, data, size, self.support.config.sequence, is_config, fut)
        self._queue.put_nowait(msg)
        return fut

    def order(self, parsed: ParsedEnvelope, raw: bytes, size: int) -> asyncio.Future:
        """Queue a checked normal message (``raw`` = its exact bytes); resolves to its block number."""
        return self._enqueue(parsed, raw, size, False)

    def configure(self, parsed: ParsedEnvelope) -> asyncio.Future:
        """Queue a CONFIG_UPDATE; it is validated and wrapped in order, against the latest config."""
        return self._enqueue(parsed, b"", 0, True)

    def _revalidate(self, msg: _Message) -> bool:
        """Re-check a message if a config block was written since it was accepted."""
        if msg.config_seq == self.support.config.sequence:
            return True
        try:
            self.support.check_normal(msg.parsed)
        except BroadcastError as exc:
            msg.done.set_exception(exc)
            return False
        return True

    async def _run(self) -> None:
        support = self.support
        cutter = BlockCutter(support.batch_size)
        waiting: list[_Message] = []  # messages in the pending batch, for their futures
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                if not self._queue.empty() and timeout != 0.0:
                    msg = self._queue.get_nowait()  # under load: no timer and task per message
                else:
                    msg = await asyncio.wait_for(self._queue.get(), timeout)
            except TimeoutError:
                msg = None
                batch = cutter.cut()
                deadline = None
                if batch:
                    await self._write(batch, waiting[: len(batch)], False)
                    del waiting[: len(batch)]
                continue
            if msg is None:
                for m in waiting:
                    if not m.done.done():
                        m.done.set_exception(BroadcastError(503, "orderer is shutting down"))
                return
            if msg.is_config:
                try:
                    wrapped, _ = support.process_config_update(msg.parsed)
                except BroadcastError as exc:
                    msg.done.set_exception(exc)
                    continue
                batch = cutter.cut()
                deadline = None
                if batch:
                    await self._write(batch, waiting[: len(batch)], False)
                    del waiting[: len(batch)]
                await self._write([wrapped], [msg], True)
                cutter = BlockCutter(support.batch_size)  # a config block may change BatchSize
                continue
            if not self._revalidate(msg):
                continue
            result = cutter.ordered(msg.data, msg.size)
            waiting.append(msg)
            for batch in result.batches:
                await self._write(batch, waiting[: len(batch)], False)
                del waiting[: len(batch)]
            if result.pending and deadline is None:
                deadline = loop.time() + support.batch_timeout
            elif not result.pending:
                deadline = None

    async def _write(self, batch: list[bytes], msgs: list[_Message], is_config: bool) -> None:
        support = self.support
        block = support.create_next_block(batch)
        try:
            # the append fsyncs; keep the event loop free meanwhile
            await asyncio.get_running_loop().run_in_executor(None, support.write_block, block, is_config)
        except Exception as exc:  # a block we cannot write is fatal for this channel
            log.exception("channel %s: cannot write block %d", support.channel_id, block.header.number)
            self._halted = True
            for m in msgs:
                if not m.done.done():
                    m.done.set_exception(BroadcastError(503, f"cannot write block: {exc}"))
            raise
        for m in msgs:
            if not m.done.done():
                m.done.set_result(block.header.number)
        await support.notify_height()
