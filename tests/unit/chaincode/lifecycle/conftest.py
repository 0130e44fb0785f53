"""A channel harness for ``_lifecycle``: real channel config and MSPs from the generated
two-org material, a real state DB, and a real TxSimulator per call whose writes are committed."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from heddle.chaincode.lifecycle import LifecycleScc, PackageStore, SccContext
from heddle.channelconfig import parse_config_block
from heddle.ledger import Height, UpdateBatch, open_state_db
from heddle.ledger.simulator import TxSimulator
from heddle.msp import load_signing_identity
from heddle.policy import SignedData
from heddle.protocol import parse_rwset


@dataclass
class Channel:
    channel_id: str
    config: object


@dataclass
class Harness:
    tmp: Path
    material: object
    state: object
    channel: Channel
    scc: LifecycleScc = field(default_factory=LifecycleScc)
    block: itertools.count = field(default_factory=lambda: itertools.count(1))
    stores: dict = field(default_factory=dict)

    def identity(self, org: int, user: str = "Admin"):
        if user == "peer":
            signer = load_signing_identity(self.material.peer_msp(org), f"Org{org}MSP")
        else:
            signer = load_signing_identity(self.material.msp(org, user), f"Org{org}MSP")
        return signer, self.channel.config.msp_manager.deserialize_identity(signer.serialized)

    def store(self, org: int) -> PackageStore:
        if org not in self.stores:
            self.stores[org] = PackageStore(self.tmp / f"org{org}-chaincodes")
        return self.stores[org]

    def simulator(self, txid: str) -> TxSimulator:
        return TxSimulator(self.state, txid)

    def call(self, function: str, message, *, org: int = 1, user: str = "Admin", commit: bool = True):
        """Invoke on org ``org``'s peer as ``user``; commit the writes; return the raw result."""
        signer, creator = self.identity(org, user)
        data = f"proposal-{function}".encode()
        sim = self.simulator(f"tx{function}")
        ctx = SccContext(
            simulator=sim,
            channel=self.channel,
            creator=creator,
            local_mspid=f"Org{org}MSP",
            package_store=self.store(org),
            signed_data=[SignedData(data, signer.serialized, signer.sign(data))],
        )
        out = self.scc.invoke(function, [message.SerializeToString()], ctx)
        if commit:
            self.commit(sim)
        return out

    def local_call(self, function: str, message, *, org: int = 1, user: str = "Admin", channels=None):
        _, creator = self.identity(org, user)
        ctx = SccContext(
            simulator=None,
            channel=None,
            creator=creator,
            local_mspid=f"Org{org}MSP",
            package_store=self.store(org),
            channels=channels,
        )
        return self.scc.invoke(function, [message.SerializeToString()], ctx)

    def commit(self, sim) -> None:
        number = next(self.block)
        batch = UpdateBatch()
        for ns in parse_rwset(sim.results().SerializeToString()):
            for w in ns.kv.writes:
                if w.is_delete:
                    batch.delete(ns.namespace, w.key, Height(number, 0))
                else:
                    batch.put(ns.namespace, w.key, w.value, Height(number, 0))
        self.state.apply_batch(batch, Height(number, 0))

    def written_keys(self, function: str, message, *, org: int = 1) -> list[str]:
        signer, creator = self.identity(org)
        sim = self.simulator("txkeys")
        ctx = SccContext(sim, self.channel, creator, f"Org{org}MSP", self.store(org))
        self.scc.invoke(function, [message.SerializeToString()], ctx)
        return sorted(w.key for ns in parse_rwset(sim.results().SerializeToString()) for w in ns.kv.writes)


@pytest.fixture
def lc(tmp_path, material):
    state = open_state_db(tmp_path / "state")
    config = parse_config_block(material.genesis)
    h = Harness(tmp_path, material, state, Channel("mychannel", config))
    try:
        yield h
    finally:
        state.close()
