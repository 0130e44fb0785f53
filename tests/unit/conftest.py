"""Shared unit-test material: a generated two-org network's crypto and genesis block."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from fabric_protos.common import common_pb2

from heddle.channelconfig import genesis_block, load_configtx
from heddle.channelconfig.defaults import DEFAULT_PROFILE, write_default_configtx
from heddle.msp import load_signing_identity
from heddle.msp.cryptogen import generate_default_network


@dataclass
class Material:
    root: Path
    genesis: common_pb2.Block

    def msp(self, org: int, user: str = "User1") -> Path:
        return (
            self.root
            / "peerOrganizations"
            / f"org{org}.example.com"
            / "users"
            / f"{user}@org{org}.example.com"
            / "msp"
        )

    def peer_msp(self, org: int) -> Path:
        return (
            self.root
            / "peerOrganizations"
            / f"org{org}.example.com"
            / "peers"
            / f"peer0.org{org}.example.com"
            / "msp"
        )

    @property
    def orderer_msp(self) -> Path:
        return self.root / "ordererOrganizations" / "example.com" / "orderers" / "orderer.example.com" / "msp"

    def orderer_identity(self):
        return load_signing_identity(self.orderer_msp, "OrdererMSP")

    def genesis_copy(self) -> common_pb2.Block:
        b = common_pb2.Block()
        b.CopyFrom(self.genesis)
        return b


@pytest.fixture(scope="session")
def material(tmp_path_factory) -> Material:
    root = tmp_path_factory.mktemp("material")
    generate_default_network(root / "organizations")
    configtx = write_default_configtx(
        root / "configtx.yaml", root / "organizations", batch_timeout="100ms", max_message_count=5
    )
    block = genesis_block(load_configtx(configtx), DEFAULT_PROFILE, "mychannel", configtx.parent)
    return Material(root / "organizations", block)
