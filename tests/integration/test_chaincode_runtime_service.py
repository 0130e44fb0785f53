"""Chaincode as a service: a service that goes away mid-transaction and comes back, and
one that does not speak the protocol."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from fabric_protos.peer import (
    chaincode_pb2,
    chaincode_shim_pb2,
    chaincode_shim_pb2_grpc,
    proposal_response_pb2,
)

from heddle.chaincode.runtime import ChaincodeError, ChaincodeSupport, ChaincodeTarget
from heddle.common.ports import free_port
from heddle.common.tls import GRPC_SERVER_OPTIONS

pytestmark = pytest.mark.integration

Msg = chaincode_shim_pb2.ChaincodeMessage


class EchoChaincode(chaincode_shim_pb2_grpc.ChaincodeServicer):
    """Answers a transaction with its first argument; "hang" is never answered."""

    def __init__(self, first_message: Msg | None = None):
        self.first_message = first_message or Msg(
            type=Msg.REGISTER, payload=chaincode_pb2.ChaincodeID(name="echo_1:ee").SerializeToString()
        )

    async def Connect(self, requests, context):
        await context.write(self.first_message)
        async for msg in requests:
            if msg.type != Msg.TRANSACTION:
                continue
            arg = chaincode_pb2.ChaincodeInput.FromString(msg.payload).args[0]
            if arg == b"hang":
                continue
            response = proposal_response_pb2.Response(status=200, payload=arg)
            await context.write(
                Msg(
                    type=Msg.COMPLETED,
                    payload=response.SerializeToString(),
                    txid=msg.txid,
                    channel_id=msg.channel_id,
                )
            )


async def serve(port: int, servicer) -> grpc.aio.Server:
    server = grpc.aio.server(options=GRPC_SERVER_OPTIONS)
    chaincode_shim_pb2_grpc.add_ChaincodeServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server


def call(arg: bytes) -> chaincode_pb2.ChaincodeInput:
    return chaincode_pb2.ChaincodeInput(args=[arg])


@pytest.mark.parametrize("shared_stream", [False, True], ids=["stream-per-tx", "shared-stream"])
def test_service_that_goes_away_fails_in_flight_work_and_is_redialled(shared_stream):
    port = free_port()
    target = ChaincodeTarget(
        name="echo",
        package_id="echo_1:ee",
        kind="ccaas",
        address=f"127.0.0.1:{port}",
        dial_timeout=5,
        shared_stream=shared_stream,
    )

    async def scenario():
        support = ChaincodeSupport(execute_timeout=10)
        server = await serve(port, EchoChaincode())
        try:
            result = await support.execute("ch", "tx1", target, call(b"one"), simulator=None)
            assert result.response.payload == b"one"
            hanging = asyncio.create_task(support.execute("ch", "tx2", target, call(b"hang"), simulator=None))
            await asyncio.sleep(0.3)
            await server.stop(0)
            with pytest.raises(ChaincodeError, match=r"^chaincode echo: connection lost \(.+\)"):
                await asyncio.wait_for(hanging, 5)
            server = await serve(port, EchoChaincode())
            result = await support.execute("ch", "tx3", target, call(b"three"), simulator=None)
            assert result.response.payload == b"three"
        finally:
            await support.stop()
            await server.stop(0)

    asyncio.run(scenario())


def test_service_that_does_not_register_first_is_refused_clearly():
    port = free_port()
    target = ChaincodeTarget(
        name="echo", package_id="echo_1:ee", kind="ccaas", address=f"127.0.0.1:{port}", dial_timeout=5
    )

    async def scenario():
        support = ChaincodeSupport(execute_timeout=5)
        server = await serve(port, EchoChaincode(first_message=Msg(type=Msg.GET_STATE, txid="x")))
        try:
            with pytest.raises(
                ChaincodeError,
                match=r"stream ended before REGISTER \(protocol violation: expected REGISTER first",
            ):
                await support.execute("ch", "tx1", target, call(b"one"), simulator=None)
        finally:
            await support.stop()
            await server.stop(0)

    asyncio.run(scenario())
