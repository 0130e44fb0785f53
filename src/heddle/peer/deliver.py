"""protos.Deliver on the peer: full blocks (Deliver) and transaction statuses (DeliverFiltered)."""

from __future__ import annotations

import asyncio

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.peer import events_pb2, transaction_pb2

from heddle.common.deliver import DeliverRefused, block_response, deliver, serialize_response
from heddle.protocol import ProtocolError, parse_endorser_transaction, parse_envelope, transactions_filter


def filtered_block(channel_id: str, block: common_pb2.Block) -> events_pb2.FilteredBlock:
    """A block reduced to txids, types, validation codes and chaincode events without payloads."""
    codes = transactions_filter(block)
    fb = events_pb2.FilteredBlock(channel_id=channel_id, number=block.header.number)
    for i, raw in enumerate(block.data.data):
        ft = fb.filtered_transactions.add()
        ft.tx_validation_code = codes[i] if i < len(codes) else transaction_pb2.NOT_VALIDATED
        try:
            parsed = parse_envelope(raw)
        except ProtocolError:
            continue
        ft.txid = parsed.tx_id
        ft.type = parsed.header_type
        if parsed.header_type != common_pb2.ENDORSER_TRANSACTION:
            continue
        try:
            actions = parse_endorser_transaction(parsed.payload.data)
        except ProtocolError:
            continue
        for action in actions:
            fca = ft.transaction_actions.chaincode_actions.add()
            if action.chaincode_action.events:
                event = fca.chaincode_event
                event.ParseFromString(action.chaincode_action.events)
                event.payload = b""  # filtered delivery never carries event payloads
    return fb


class PeerDeliver:
    def __init__(self, channels: dict, pool):
        self.channels = channels
        self.pool = pool

    async def _check(self, source, parsed) -> None:
        await asyncio.get_running_loop().run_in_executor(self.pool, source.check_deliver, parsed)

    def _status(self, status: int) -> events_pb2.DeliverResponse:
        return events_pb2.DeliverResponse(status=status)

    async def deliver(self, requests, context):
        async for item in deliver(
            requests,
            self.channels.get,
            block_response,
            self._status,
            self._check,
        ):
            yield item

    async def deliver_filtered(self, requests, context):
        def respond(source, number):
            block = source.block(number)
            return events_pb2.DeliverResponse(filtered_block=filtered_block(source.channel_id, block))

        async for item in deliver(requests, self.channels.get, respond, self._status, self._check):
            yield item

    async def deliver_with_private_data(self, requests, context):
        async for _ in requests:
            yield events_pb2.DeliverResponse(status=common_pb2.NOT_IMPLEMENTED)
            return

    def handler(self) -> grpc.GenericRpcHandler:
        ser = events_pb2.DeliverResponse.SerializeToString
        return grpc.method_handlers_generic_handler(
            "protos.Deliver",
            {
                "Deliver": grpc.stream_stream_rpc_method_handler(self.deliver, None, serialize_response),
                "DeliverFiltered": grpc.stream_stream_rpc_method_handler(self.deliver_filtered, None, ser),
                "DeliverWithPrivateData": grpc.stream_stream_rpc_method_handler(
                    self.deliver_with_private_data, None, ser
                ),
            },
        )


__all__ = ["DeliverRefused", "PeerDeliver", "filtered_block"]
