"""Fixtures for channelconfig tests: Fabric's reference blocks and a test-network clone.

The clone is crypto from heddle's cryptogen plus a configtx.yaml written the way
Fabric's test-network writes it (anchors, merge keys, relative paths), set up like
the network that produced the reference blocks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from channelconfig_testnet import FIXTURES, TEST_NETWORK_CONFIGTX
from fabric_protos.common import common_pb2

from heddle.msp import load_signing_identity
from heddle.msp.cryptogen import generate_default_network


@pytest.fixture(scope="session")
def fabric_genesis() -> common_pb2.Block:
    block = common_pb2.Block()
    block.ParseFromString((FIXTURES / "block_0000.pb").read_bytes())
    return block


@pytest.fixture(scope="session")
def network_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with crypto/ (cryptogen's default topology) and configtx.yaml."""
    root = tmp_path_factory.mktemp("network")
    generate_default_network(root / "crypto", orderers=3, peer_orgs=3)  # Org3 joins later
    (root / "configtx.yaml").write_text(TEST_NETWORK_CONFIGTX)
    return root


class Admins:
    """Signing identities of the clone network's admins, by MSP id."""

    def __init__(self, crypto: Path):
        self._crypto = crypto
        self._cache: dict[str, object] = {}

    def __getitem__(self, mspid: str):
        if mspid not in self._cache:
            if mspid == "OrdererMSP":
                msp_dir = self._crypto / "ordererOrganizations/example.com/users/Admin@example.com/msp"
            else:
                n = mspid.removeprefix("Org").removesuffix("MSP")
                msp_dir = (
                    self._crypto / f"peerOrganizations/org{n}.example.com/users/Admin@org{n}.example.com/msp"
                )
            self._cache[mspid] = load_signing_identity(msp_dir, mspid)
        return self._cache[mspid]

    def user(self, mspid: str):
        n = mspid.removeprefix("Org").removesuffix("MSP")
        return load_signing_identity(
            self._crypto / f"peerOrganizations/org{n}.example.com/users/User1@org{n}.example.com/msp",
            mspid,
        )


@pytest.fixture(scope="session")
def admins(network_dir: Path) -> Admins:
    return Admins(network_dir / "crypto")
