"""SeekInfo-driven block delivery, shared by the orderer's and the peer's Deliver services."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from fabric_protos.common import common_pb2
from fabric_protos.orderer import ab_pb2
from google.protobuf.message import DecodeError

from heddle.protocol import (
    ProtocolError,
    compute_txid,
    make_channel_header,
    make_signature_header,
    parse_envelope,
    payload_bytes,
)

log = logging.getLogger(__name__)
Status = common_pb2.Status
MAX_BLOCK = 2**64 - 1
# field 2 (``block``), length-delimited, of both orderer.DeliverResponse and
# protos.DeliverResponse
_BLOCK_FIELD_TAG = b"\x12"


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def seek_info(
    start: ab_pb2.SeekPosition | int,
    stop: int = MAX_BLOCK,
    behavior: int = ab_pb2.SeekInfo.BLOCK_UNTIL_READY,
) -> ab_pb2.SeekInfo:
    """What a Deliver client asks for: blocks from ``start`` (a block number or a position such
    as newest) to ``stop``, waiting for each by default."""
    if isinstance(start, int):
        start = ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=start))
    return ab_pb2.SeekInfo(
        start=start, stop=ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=stop)), behavior=behavior
    )


def seek_payload(channel_id: str, creator: bytes, seek: ab_pb2.SeekInfo) -> bytes:
    """The payload of a DELIVER_SEEK_INFO envelope by ``creator`` (a fresh nonce), to sign."""
    shdr = make_signature_header(creator)
    chdr = make_channel_header(common_pb2.DELIVER_SEEK_INFO, channel_id, compute_txid(shdr.nonce, creator))
    return payload_bytes(chdr, shdr, seek.SerializeToString())


def block_response(source: DeliverSource, number: int) -> bytes:
    """A serialized DeliverResponse carrying block ``number`` as stored: the block's bytes are
    framed, not parsed, copied into a response and serialized again (megabytes per block)."""
    block = source.block_bytes(number)
    return _BLOCK_FIELD_TAG + _varint(len(block)) + block


def serialize_response(response) -> bytes:
    """gRPC response serializer for Deliver streams that yield messages and framed bytes."""
    return response if isinstance(response, bytes) else response.SerializeToString()


class DeliverRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class DeliverSource(Protocol):
    """A channel whose blocks can be delivered."""

    channel_id: str
    height_changed: asyncio.Condition

    @property
    def height(self) -> int: ...

    def block(self, number: int) -> common_pb2.Block: ...

    def block_bytes(self, number: int) -> bytes: ...

    def config_sequence(self) -> int: ...

    def check_deliver(self, parsed) -> None:
        """Raise DeliverRefused (FORBIDDEN) if the requester may not read this channel."""


def _position(pos: ab_pb2.SeekPosition, height: int, what: str) -> int:
    kind = pos.WhichOneof("Type")
    if kind == "oldest":
        return 0
    if kind == "newest":
        return max(height - 1, 0)
    if kind == "specified":
        return pos.specified.number
    if kind == "next_commit" and what == "start":
        return height
    raise DeliverRefused(Status.BAD_REQUEST, f"seek {what} position type {kind!r} is not supported")


async def deliver(
    requests: AsyncIterator[bytes],
    lookup: Callable[[str], DeliverSource | None],
    respond_block: Callable[[DeliverSource, int], object],
    respond_status: Callable[[int], object],
    check_async: Callable[[DeliverSource, object], Awaitable[None]],
) -> AsyncIterator[object]:
    """Serve a Deliver stream: for each signed SeekInfo envelope, blocks then a status.
    ``respond_block(source, number)`` makes the response for one block."""
    async for raw in requests:
        try:
            async for item in _serve_one(raw, lookup, respond_block, check_async):
                yield item
            yield respond_status(Status.SUCCESS)
        except DeliverRefused as exc:
            log.info("deliver refused: %s", exc)
            yield respond_status(exc.status)
            return


async def _serve_one(raw, lookup, respond_block, check_async):
    try:
        parsed = parse_envelope(raw)
    except ProtocolError as exc:
        raise DeliverRefused(Status.BAD_REQUEST, str(exc)) from exc
    if parsed.header_type != common_pb2.DELIVER_SEEK_INFO:
        raise DeliverRefused(Status.BAD_REQUEST, f"header type {parsed.header_type} is not DELIVER_SEEK_INFO")
    source = lookup(parsed.channel_id)
    if source is None:
        raise DeliverRefused(Status.NOT_FOUND, f"channel {parsed.channel_id!r} not found")
    seek = ab_pb2.SeekInfo()
    try:
        seek.ParseFromString(parsed.payload.data)
    except DecodeError as exc:
        raise DeliverRefused(Status.BAD_REQUEST, f"malformed SeekInfo: {exc}") from exc
    if not seek.HasField("start") or not seek.HasField("stop"):
        raise DeliverRefused(Status.BAD_REQUEST, "SeekInfo needs start and stop positions")
    await check_async(source, parsed)
    checked_seq = source.config_sequence()
    height = source.height
    start = _position(seek.start, height, "start")
    stop = _position(seek.stop, height, "stop")
    if start > stop:
        raise DeliverRefused(Status.BAD_REQUEST, f"start block {start} is after stop block {stop}")
    fail_if_not_ready = seek.behavior == ab_pb2.SeekInfo.FAIL_IF_NOT_READY
    number = start
    while number <= stop:
        if number >= source.height:
            if fail_if_not_ready:
                raise DeliverRefused(Status.NOT_FOUND, f"block {number} is not yet available")
            async with source.height_changed:
                await source.height_changed.wait_for(lambda n=number: source.height > n)
        if source.config_sequence() != checked_seq:  # access is re-checked when config changes
            await check_async(source, parsed)
            checked_seq = source.config_sequence()
        yield respond_block(source, number)
        number += 1
