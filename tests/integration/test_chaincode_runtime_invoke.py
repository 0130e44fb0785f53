"""INVOKE_CHAINCODE end to end: a chaincode service speaking the shim protocol the way
Fabric's Go shim does calls the example contract (a local process) in the same transaction."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import (
    chaincode_pb2,
    chaincode_shim_pb2,
    chaincode_shim_pb2_grpc,
    proposal_response_pb2,
)

from heddle.chaincode.runtime import ChaincodeSupport, ChaincodeTarget
from heddle.common.ports import free_port
from heddle.common.tls import GRPC_SERVER_OPTIONS
from heddle.ledger.simulator import TxSimulator
from heddle.ledger.statedb import Height, SqliteStateDB, UpdateBatch

pytestmark = pytest.mark.integration

Msg = chaincode_shim_pb2.ChaincodeMessage
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "asset_transfer_basic" / "chaincode"


class CallerChaincode(chaincode_shim_pb2_grpc.ChaincodeServicer):
    """args: callee, function, arg... -> calls the callee, stores its payload under "copied",
    and returns it; a failed call is returned as a 500 with the peer's message."""

    async def Connect(self, requests, context):
        await context.write(
            Msg(type=Msg.REGISTER, payload=chaincode_pb2.ChaincodeID(name="caller_1:cc").SerializeToString())
        )
        copied: dict[str, bytes] = {}
        async for msg in requests:
            reply = None
            if msg.type == Msg.TRANSACTION:
                callee, *call = chaincode_pb2.ChaincodeInput.FromString(msg.payload).args
                spec = chaincode_pb2.ChaincodeSpec(
                    chaincode_id=chaincode_pb2.ChaincodeID(name=callee.decode()),
                    input=chaincode_pb2.ChaincodeInput(args=call),
                )
                reply = Msg(type=Msg.INVOKE_CHAINCODE, payload=spec.SerializeToString())
            elif msg.type == Msg.RESPONSE and msg.txid not in copied:
                inner = Msg.FromString(msg.payload)
                value = proposal_response_pb2.Response.FromString(inner.payload).payload
                copied[msg.txid] = value
                reply = Msg(
                    type=Msg.PUT_STATE,
                    payload=chaincode_shim_pb2.PutState(key="copied", value=value).SerializeToString(),
                )
            elif msg.type == Msg.RESPONSE:
                response = proposal_response_pb2.Response(status=200, payload=copied.pop(msg.txid))
                reply = Msg(type=Msg.COMPLETED, payload=response.SerializeToString())
            elif msg.type == Msg.ERROR and msg.txid:
                response = proposal_response_pb2.Response(status=500, message=msg.payload.decode())
                reply = Msg(type=Msg.COMPLETED, payload=response.SerializeToString())
            if reply is not None:
                reply.txid, reply.channel_id = msg.txid, msg.channel_id
                await context.write(reply)


def kv_set(rwset, ns: str) -> kv_rwset_pb2.KVRWSet:
    for entry in rwset.ns_rwset:
        if entry.namespace == ns:
            return kv_rwset_pb2.KVRWSet.FromString(entry.rwset)
    return kv_rwset_pb2.KVRWSet()


@pytest.mark.parametrize("shared_stream", [False, True], ids=["stream-per-tx", "shared-stream"])
def test_chaincode_calls_another_chaincode_in_the_same_transaction(tmp_path, shared_stream):
    state = SqliteStateDB(tmp_path / "state.db")
    batch = UpdateBatch()
    asset = {"AppraisedValue": 300, "Color": "blue", "ID": "asset1", "Owner": "Tomoko", "Size": 5}
    batch.put("basic", "asset1", json.dumps(asset).encode(), Height(1, 0))
    state.apply_batch(batch, Height(1, 0))
    port = free_port()
    basic = ChaincodeTarget(name="basic", package_id="basic_1.0:01", kind="process", code_dir=EXAMPLE)
    caller = ChaincodeTarget(
        name="caller",
        package_id="caller_1:cc",
        kind="ccaas",
        address=f"127.0.0.1:{port}",
        shared_stream=shared_stream,
    )

    def resolve(channel_id: str, name: str):
        return {"basic": basic}.get(name) if channel_id == "mychannel" else None

    async def scenario():
        server = grpc.aio.server(options=GRPC_SERVER_OPTIONS)
        chaincode_shim_pb2_grpc.add_ChaincodeServicer_to_server(CallerChaincode(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        support = ChaincodeSupport(execute_timeout=20, resolver=resolve, work_dir=tmp_path / "cc")
        try:
            sim = TxSimulator(state, "tx1")
            call = chaincode_pb2.ChaincodeInput(args=[b"basic", b"ReadAsset", b"asset1"])
            result = await support.execute("mychannel", "tx1", caller, call, sim)
            assert result.response.status == 200
            assert json.loads(result.response.payload)["Owner"] == "Tomoko"
            rwset = sim.results()
            assert [(r.key, r.version.block_num) for r in kv_set(rwset, "basic").reads] == [("asset1", 1)]
            assert [w.key for w in kv_set(rwset, "caller").writes] == ["copied"]

            missing = chaincode_pb2.ChaincodeInput(args=[b"nosuch", b"Fn"])
            result = await support.execute("mychannel", "tx2", caller, missing, TxSimulator(state, "tx2"))
            assert result.response.status == 500
            assert result.response.message == "chaincode nosuch is not defined on channel mychannel"

            other = chaincode_pb2.ChaincodeInput(args=[b"basic/otherchannel", b"ReadAsset", b"asset1"])
            result = await support.execute("mychannel", "tx3", caller, other, TxSimulator(state, "tx3"))
            assert "only same-channel calls" in result.response.message

            # several callers at once, each reading through the example contract
            sims = {f"p{i}": TxSimulator(state, f"p{i}") for i in range(6)}
            results = await asyncio.gather(
                *(support.execute("mychannel", txid, caller, call, sim) for txid, sim in sims.items())
            )
            assert all(json.loads(r.response.payload)["ID"] == "asset1" for r in results)
        finally:
            await support.stop()
            await server.stop(0)

    try:
        asyncio.run(scenario())
    finally:
        state.close()
