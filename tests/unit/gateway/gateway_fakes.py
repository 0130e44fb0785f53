"""An in-process stand-in for a peer around the Gateway: one channel whose ledger is a list of
blocks, a scripted endorser for Org1 (in-process) and Org2 (over gRPC), and an orderer that
"commits" what it is sent. The gateway and heddle.client run for real on loopback gRPC."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import chaincode_event_pb2, proposal_response_pb2, transaction_pb2

from heddle.channelconfig import parse_config_block
from heddle.common.ports import free_port
from heddle.common.tls import GRPC_SERVER_OPTIONS
from heddle.msp import load_signing_identity
from heddle.peer.gateway import Gateway
from heddle.peer.gateway.service import EndorserTarget
from heddle.policy import PolicyError, SignedData
from heddle.protocol import (
    TRANSACTIONS_FILTER_INDEX,
    build_response,
    error_response,
    new_block,
    parse_envelope,
    parse_signed_proposal,
)


class ScriptedEndorser:
    """Functions: ``Echo`` returns its args; ``Fail`` returns 500 naming its arg; ``Diverge``
    returns the endorser's MSP id (so two orgs disagree); ``Crash`` raises; ``Lag N``: a peer
    outside Org1 answers 500 for its first N such calls, like a peer a block behind; every
    success emits an event."""

    def __init__(self, identity, delay: float = 0.0):
        self.identity = identity
        self.delay = delay
        self.calls = 0
        self.lagged = 0

    def process(self, raw: bytes) -> proposal_response_pb2.ProposalResponse:
        import time

        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        prop = parse_signed_proposal(raw)
        fn, *args = prop.args
        fn = fn.decode()
        if fn == "Crash":
            raise RuntimeError("endorser crashed")
        if fn == "Lag" and self.identity.mspid != "Org1MSP" and self.lagged < int(args[0]):
            self.lagged += 1
            return error_response(500, "the asset does not exist (yet)")
        if fn == "Fail":
            return error_response(500, f"the asset {args[0].decode()} does not exist")
        payload = self.identity.mspid.encode() if fn == "Diverge" else b",".join(args)
        event = chaincode_event_pb2.ChaincodeEvent(
            chaincode_id=prop.chaincode_name, tx_id=prop.tx_id, event_name=fn, payload=payload
        )
        return build_response(
            prop,
            200,
            "",
            payload,
            results=b"",
            events=event.SerializeToString(),
            endorser=self.identity.serialized,
            sign=self.identity.sign,
        )


class FakeChannel:
    """The parts of PeerChannel the gateway uses."""

    def __init__(self, genesis: common_pb2.Block):
        self.config = parse_config_block(genesis)
        self.channel_id = self.config.channel_id
        genesis.metadata.metadata[TRANSACTIONS_FILTER_INDEX] = bytes([transaction_pb2.VALID])
        self.blocks: list[common_pb2.Block] = [genesis]
        self.commit_listeners: list = []
        self.height_changed = asyncio.Condition()
        self.ledger = SimpleNamespace(blocks=SimpleNamespace(tx_location=self.tx_location), state=None)

    @property
    def height(self) -> int:
        return len(self.blocks)

    def block(self, number: int) -> common_pb2.Block:
        return self.blocks[number]

    def tx_location(self, txid: str):
        for block in self.blocks[1:]:
            for i, raw in enumerate(block.data.data):
                if parse_envelope(raw).tx_id == txid:
                    return block.header.number, i
        return None

    def check_readers(self, creator: bytes, data: bytes, signature: bytes) -> None:
        try:
            self.config.policies.evaluate(
                "/Channel/Application/Readers", [SignedData(data, creator, signature)]
            )
        except PolicyError as exc:
            raise PermissionError(f"access denied: {exc}") from exc

    async def commit(self, envelopes: list[bytes], codes: list[int]) -> None:
        block = new_block(self.height, b"", envelopes)
        block.metadata.metadata[TRANSACTIONS_FILTER_INDEX] = bytes(codes)
        self.blocks.append(block)
        results = [
            SimpleNamespace(tx_id=parse_envelope(e).tx_id, code=c)
            for e, c in zip(envelopes, codes, strict=True)
        ]
        for listener in list(self.commit_listeners):
            listener(block, results)
        async with self.height_changed:
            self.height_changed.notify_all()


@dataclass
class FakeOrderer:
    channel: FakeChannel
    received: list[bytes] = field(default_factory=list)
    status: int = common_pb2.SUCCESS
    commit_code: int = transaction_pb2.VALID

    async def broadcast(self, requests, context):
        async for env in requests:
            self.received.append(env.SerializeToString())
            if self.status == common_pb2.SUCCESS:
                raw = env.SerializeToString()
                code = self.commit_code
                asyncio.get_running_loop().call_later(
                    0.05, lambda r=raw, c=code: asyncio.ensure_future(self.channel.commit([r], [c]))
                )
            yield ab_pb2.BroadcastResponse(status=self.status, info="" if self.status == 200 else "rejected")

    def handler(self):
        return grpc.method_handlers_generic_handler(
            "orderer.AtomicBroadcast",
            {
                "Broadcast": grpc.stream_stream_rpc_method_handler(
                    self.broadcast, common_pb2.Envelope.FromString, ab_pb2.BroadcastResponse.SerializeToString
                )
            },
        )


def endorser_handler(endorser: ScriptedEndorser):
    async def process(raw, context):
        return endorser.process(raw)

    return grpc.method_handlers_generic_handler(
        "protos.Endorser",
        {
            "ProcessProposal": grpc.unary_unary_rpc_method_handler(
                process, None, proposal_response_pb2.ProposalResponse.SerializeToString
            )
        },
    )


class TestGateway(Gateway):
    """The real Gateway, with the peer directory and chaincode definitions of the fake network."""

    __test__ = False

    def __init__(self, node, org2_address: str, orderer_address: str, policy: bytes | None = None):
        super().__init__(node, endorse_timeout=5, broadcast_timeout=5)
        self.org2_address = org2_address
        self.orderer_address = orderer_address
        self.policy = policy
        self.known_chaincodes = {"basic"}
        self.org2_down = False

    def endorsers(self, channel):
        out = {"Org1MSP": [EndorserTarget(self.local_address, "Org1MSP", local=True)]}
        address = "127.0.0.1:1" if self.org2_down else self.org2_address
        out["Org2MSP"] = [EndorserTarget(address, "Org2MSP")]
        return out

    def orderer_endpoints(self, channel):
        return [self.orderer_address]

    async def _definition_policy(self, channel, chaincode):
        return chaincode in self.known_chaincodes, self.policy


class FakeNetwork:
    """Runs the gateway, Org2's endorser and the orderer on a private event loop thread."""

    def __init__(self, material):
        self.material = material
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.org1 = ScriptedEndorser(load_signing_identity(material.peer_msp(1), "Org1MSP"))
        self.org2 = ScriptedEndorser(load_signing_identity(material.peer_msp(2), "Org2MSP"))
        self.gateway_port = free_port()
        self.org2_port = free_port()
        self.orderer_port = free_port()
        self.servers: list = []

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        self.channel = FakeChannel(self.material.genesis_copy())
        node = SimpleNamespace(
            channels={self.channel.channel_id: self.channel},
            config=SimpleNamespace(
                address=f"127.0.0.1:{self.gateway_port}",
                mspid="Org1MSP",
                tls=SimpleNamespace(enabled=False),
                client_key=None,
                client_cert=None,
            ),
            endorser=self.org1,
            pool=ThreadPoolExecutor(4),
        )
        self.orderer = FakeOrderer(self.channel)
        self.gateway = TestGateway(node, f"127.0.0.1:{self.org2_port}", f"127.0.0.1:{self.orderer_port}")
        for port, handlers in (
            (self.gateway_port, [self.gateway.handler()]),
            (self.org2_port, [endorser_handler(self.org2)]),
            (self.orderer_port, [self.orderer.handler()]),
        ):
            server = grpc.aio.server(options=GRPC_SERVER_OPTIONS)
            server.add_generic_rpc_handlers(handlers)
            server.add_insecure_port(f"127.0.0.1:{port}")
            await server.start()
            self.servers.append(server)

    def start(self) -> None:
        self.thread.start()
        self.run(self._start())

    async def _stop(self) -> None:
        for server in self.servers:
            await server.stop(0)
        await self.gateway.stop()

    def stop(self) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def commit(self, envelopes: list[bytes], codes: list[int]) -> None:
        self.run(self.channel.commit(envelopes, codes))
