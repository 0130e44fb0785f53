"""Test helpers: real endorser transactions (client proposal, peer endorsements, signed envelope)
and a stand-in for committed chaincode definitions."""

from __future__ import annotations

from dataclasses import dataclass

from fabric_protos.common import common_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.peer import policy_pb2

from heddle.ledger.simulator import TxSimulator
from heddle.policy import parse_signature_policy
from heddle.protocol import (
    build_response,
    create_proposal,
    create_signed_transaction,
    parse_signed_proposal,
    sign_proposal,
)


@dataclass
class Definition:
    """What validation needs of a committed chaincode definition."""

    name: str
    validation_parameter: bytes


def signature_policy(text: str) -> bytes:
    """ApplicationPolicy bytes for a signature policy such as "AND('Org1MSP.peer','Org2MSP.peer')"."""
    return policy_pb2.ApplicationPolicy(signature_policy=parse_signature_policy(text)).SerializeToString()


def channel_policy(path: str) -> bytes:
    return policy_pb2.ApplicationPolicy(channel_config_policy_reference=path).SerializeToString()


class Definitions:
    """An injectable definitions lookup: name -> Definition."""

    def __init__(self, **policies: bytes):
        self.defs = {name: Definition(name, vp) for name, vp in policies.items()}

    def __call__(self, state, name):
        return self.defs.get(name)


def proposal(client, chaincode: str, channel: str = "mychannel"):
    prop, txid = create_proposal(client.serialized, channel, chaincode, [b"invoke"])
    return parse_signed_proposal(sign_proposal(prop, client.sign)), txid


def endorse(
    client, endorsers, chaincode: str, results: rwset_pb2.TxReadWriteSet | bytes, channel: str = "mychannel"
) -> common_pb2.Envelope:
    """A transaction with ``results`` endorsed by each of ``endorsers`` and signed by ``client``."""
    parsed, _ = proposal(client, chaincode, channel)
    raw = results if isinstance(results, bytes) else results.SerializeToString()
    responses = [
        build_response(parsed, 200, results=raw, endorser=e.serialized, sign=e.sign) for e in endorsers
    ]
    return create_signed_transaction(parsed, responses, client.sign)


def simulate(state, body) -> rwset_pb2.TxReadWriteSet:
    """Run ``body(sim)`` on a fresh simulator over ``state`` and return its read/write set."""
    sim = TxSimulator(state, "test")
    body(sim)
    return sim.results()


def writes(ns: str, values: dict[str, bytes], state=None) -> rwset_pb2.TxReadWriteSet:
    """A blind write of ``values`` into ``ns``."""
    sim = TxSimulator(state, "test")
    for k, v in values.items():
        sim.set_state(ns, k, v)
    return sim.results()
