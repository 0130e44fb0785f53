"""orderer.AtomicBroadcast: Broadcast and Deliver over raw bytes, so malformed input gets a
precise BroadcastResponse rather than a gRPC decoding failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.orderer import ab_pb2

from heddle.common.deliver import DeliverRefused, deliver
from heddle.orderer.channel import BroadcastError
from heddle.orderer.registrar import Registrar
from heddle.protocol import ProtocolError, parse_envelope

log = logging.getLogger(__name__)
Status = common_pb2.Status
MAX_IN_FLIGHT_PER_STREAM = 10_000


class AtomicBroadcast:
    def __init__(self, registrar: Registrar):
        self.registrar = registrar

    async def _accept(self, raw: bytes) -> ab_pb2.BroadcastResponse:
        try:
            parsed = parse_envelope(raw)
        except ProtocolError as exc:
            return ab_pb2.BroadcastResponse(status=Status.BAD_REQUEST, info=str(exc))
        channel = self.registrar.get(parsed.channel_id)
        if channel is None:
            return ab_pb2.BroadcastResponse(
                status=Status.NOT_FOUND,
                info=f"channel {parsed.channel_id!r} does not exist on this orderer",
            )
        loop = asyncio.get_running_loop()
        support = channel.support
        try:
            htype = parsed.header_type
            if htype in (common_pb2.ENDORSER_TRANSACTION, common_pb2.MESSAGE):
                size = await loop.run_in_executor(self.registrar.pool, support.check_normal, parsed)
                await channel.chain.order(parsed, raw, size)
            elif htype == common_pb2.CONFIG_UPDATE:
                await loop.run_in_executor(self.registrar.pool, support.check_normal, parsed)
                await channel.chain.configure(parsed)
            else:
                known = htype in common_pb2.HeaderType.values()
                name = common_pb2.HeaderType.Name(htype) if known else str(htype)
                return ab_pb2.BroadcastResponse(
                    status=Status.BAD_REQUEST,
                    info=f"message of type {name} cannot be broadcast; "
                    "send ENDORSER_TRANSACTION, MESSAGE or CONFIG_UPDATE",
                )
        except BroadcastError as exc:
            log.info("broadcast on %s refused (%d): %s", parsed.channel_id, exc.status, exc.message)
            return ab_pb2.BroadcastResponse(status=exc.status, info=exc.message)
        return ab_pb2.BroadcastResponse(status=Status.SUCCESS)

    async def broadcast(
        self, requests: AsyncIterator[bytes], context
    ) -> AsyncIterator[ab_pb2.BroadcastResponse]:
        """Responses come back in request order; requests are processed concurrently."""
        pending: asyncio.Queue[asyncio.Task | None] = asyncio.Queue(MAX_IN_FLIGHT_PER_STREAM)

        async def read() -> None:
            try:
                async for raw in requests:
                    await pending.put(asyncio.ensure_future(self._accept(raw)))
            finally:
                await pending.put(None)

        reader = asyncio.ensure_future(read())
        try:
            while True:
                task = await pending.get()
                if task is None:
                    break
                yield await task
        finally:
            reader.cancel()

    async def deliver(self, requests: AsyncIterator[bytes], context) -> AsyncIterator[ab_pb2.DeliverResponse]:
        loop = asyncio.get_running_loop()

        async def check(source, parsed) -> None:
            await loop.run_in_executor(self.registrar.pool, source.check_deliver, parsed)

        async for item in deliver(
            requests,
            self.registrar.get,
            lambda block, _source: ab_pb2.DeliverResponse(block=block),
            lambda status: ab_pb2.DeliverResponse(status=status),
            check,
        ):
            yield item

    def handler(self) -> grpc.GenericRpcHandler:
        ser = ab_pb2.BroadcastResponse.SerializeToString
        return grpc.method_handlers_generic_handler(
            "orderer.AtomicBroadcast",
            {
                "Broadcast": grpc.stream_stream_rpc_method_handler(
                    self.broadcast, request_deserializer=None, response_serializer=ser
                ),
                "Deliver": grpc.stream_stream_rpc_method_handler(
                    self.deliver,
                    request_deserializer=None,
                    response_serializer=ab_pb2.DeliverResponse.SerializeToString,
                ),
            },
        )


__all__ = ["AtomicBroadcast", "DeliverRefused"]
