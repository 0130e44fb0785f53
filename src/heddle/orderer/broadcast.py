"""orderer.AtomicBroadcast: Broadcast and Deliver over raw bytes, so malformed input gets a
precise BroadcastResponse rather than a gRPC decoding failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.orderer import ab_pb2

from heddle.common.deliver import DeliverRefused, block_response, deliver, serialize_response
from heddle.orderer.channel import BroadcastError
from heddle.orderer.registrar import Registrar
from heddle.protocol import ProtocolError, parse_envelope

log = logging.getLogger(__name__)
Status = common_pb2.Status
MAX_IN_FLIGHT_PER_STREAM = 10_000
_SUCCESS = ab_pb2.BroadcastResponse(status=Status.SUCCESS)


class AtomicBroadcast:
    def __init__(self, registrar: Registrar):
        self.registrar = registrar

    def _accept(self, raw: bytes) -> ab_pb2.BroadcastResponse | tuple[str, asyncio.Future]:
        """Check one envelope now, on the event loop: its refusal, or (channel, the future of
        its ordering). The checks (one signature and a policy walk) cost less than the trip to
        a thread pool and back that they used to take."""
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
        support = channel.support
        try:
            htype = parsed.header_type
            if htype in (common_pb2.ENDORSER_TRANSACTION, common_pb2.MESSAGE):
                size = support.check_normal(parsed)
                return parsed.channel_id, channel.chain.order(parsed, raw, size)
            if htype == common_pb2.CONFIG_UPDATE:
                support.check_normal(parsed)
                return parsed.channel_id, channel.chain.configure(parsed)
            known = htype in common_pb2.HeaderType.values()
            name = common_pb2.HeaderType.Name(htype) if known else str(htype)
            return ab_pb2.BroadcastResponse(
                status=Status.BAD_REQUEST,
                info=f"message of type {name} cannot be broadcast; "
                "send ENDORSER_TRANSACTION, MESSAGE or CONFIG_UPDATE",
            )
        except BroadcastError as exc:
            return self._refused(parsed.channel_id, exc)

    @staticmethod
    def _refused(channel_id: str, exc: BroadcastError) -> ab_pb2.BroadcastResponse:
        log.info("broadcast on %s refused (%d): %s", channel_id, exc.status, exc.message)
        return ab_pb2.BroadcastResponse(status=exc.status, info=exc.message)

    async def _answer(self, accepted) -> ab_pb2.BroadcastResponse:
        if isinstance(accepted, ab_pb2.BroadcastResponse):
            return accepted
        channel_id, ordered = accepted
        try:
            await ordered
        except BroadcastError as exc:
            return self._refused(channel_id, exc)
        return _SUCCESS

    async def broadcast(
        self, requests: AsyncIterator[bytes], context
    ) -> AsyncIterator[ab_pb2.BroadcastResponse]:
        """Responses come back in request order; each envelope is checked as it arrives and
        many wait for their blocks at once."""
        pending: asyncio.Queue = asyncio.Queue(MAX_IN_FLIGHT_PER_STREAM)

        async def read() -> None:
            try:
                async for raw in requests:
                    await pending.put(self._accept(raw))
            finally:
                await pending.put(None)

        reader = asyncio.ensure_future(read())
        try:
            while True:
                accepted = await pending.get()
                if accepted is None:
                    break
                yield await self._answer(accepted)
        finally:
            reader.cancel()

    async def deliver(self, requests: AsyncIterator[bytes], context) -> AsyncIterator[ab_pb2.DeliverResponse]:
        loop = asyncio.get_running_loop()

        async def check(source, parsed) -> None:
            await loop.run_in_executor(self.registrar.pool, source.check_deliver, parsed)

        async for item in deliver(
            requests,
            self.registrar.get,
            block_response,
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
                    response_serializer=serialize_response,
                ),
            },
        )


__all__ = ["AtomicBroadcast", "DeliverRefused"]
