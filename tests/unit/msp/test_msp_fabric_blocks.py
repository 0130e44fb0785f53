"""Real Fabric v2.5.16 blocks: their MSPs validate the identities that signed them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.msp import msp_config_pb2
from fabric_protos.msp import msp_principal_pb2 as mp
from fabric_protos.peer import proposal_response_pb2, transaction_pb2

from heddle.msp import Msp, MspError, MspManager, parse_serialized_identity

BLOCKS = Path(__file__).parents[2] / "fixtures" / "fabric-2.5.16" / "blocks"
# The network's certificates were issued 2026-11-22 for 3650 days.
NOW = dt.datetime(2027, 6, 1, tzinfo=dt.UTC)



def load_block(n: int) -> common_pb2.Block:
    return common_pb2.Block.FromString((BLOCKS / f"block_{n:04d}.pb").read_bytes())


def role(mspid: str, r: int) -> mp.MSPPrincipal:
    return mp.MSPPrincipal(
        principal_classification=mp.MSPPrincipal.ROLE,
        principal=mp.MSPRole(msp_identifier=mspid, role=r).SerializeToString(),
    )


@pytest.fixture(scope="module")
def msp_configs() -> dict[str, msp_config_pb2.MSPConfig]:
    env = common_pb2.Envelope.FromString(load_block(0).data.data[0])
    config = configtx_pb2.ConfigEnvelope.FromString(common_pb2.Payload.FromString(env.payload).data)
    groups = config.config.channel_group.groups
    out = {}
    for section in ("Orderer", "Application"):
        for org in groups[section].groups.values():
            cfg = msp_config_pb2.MSPConfig.FromString(org.values["MSP"].value)
            out[msp_config_pb2.FabricMSPConfig.FromString(cfg.config).name] = cfg
    return out


@pytest.fixture(scope="module")
def manager(msp_configs: dict[str, msp_config_pb2.MSPConfig]) -> MspManager:
    return MspManager(Msp.from_config(c) for c in msp_configs.values())


def test_genesis_block_defines_three_msps_with_node_ous(
    msp_configs: dict[str, msp_config_pb2.MSPConfig], manager: MspManager
) -> None:
    assert manager.mspids == ["OrdererMSP", "Org1MSP", "Org2MSP"]
    for mspid in manager.mspids:
        msp = manager.get(mspid)
        assert msp.node_ous_enabled
        assert msp.to_config() == msp_configs[mspid]
        assert len(msp.tls_root_certs) == 1


def test_transaction_creators_and_endorsers_validate(manager: MspManager) -> None:
    creators, endorsers = 0, 0
    for n in range(4, 9):
        block = load_block(n)
        for raw in block.data.data:
            env = common_pb2.Envelope.FromString(raw)
            payload = common_pb2.Payload.FromString(env.payload)
            shdr = common_pb2.SignatureHeader.FromString(payload.header.signature_header)
            creator = manager.deserialize_identity(shdr.creator, NOW)
            creator.verify(env.payload, env.signature)
            assert creator.mspid == "Org1MSP"
            assert creator.satisfies_principal(role("Org1MSP", mp.MSPRole.CLIENT))
            assert not creator.satisfies_principal(role("Org1MSP", mp.MSPRole.PEER))
            creators += 1
            tx = transaction_pb2.Transaction.FromString(payload.data)
            for action in tx.actions:
                cap = transaction_pb2.ChaincodeActionPayload.FromString(action.payload)
                prp = cap.action.proposal_response_payload
                for e in cap.action.endorsements:
                    peer = manager.deserialize_identity(e.endorser, NOW)
                    peer.verify(prp + e.endorser, e.signature)
                    assert peer.roles == {"member", "peer"}
                    mspid = peer.mspid
                    assert peer.satisfies_principal(role(mspid, mp.MSPRole.PEER))
                    assert peer.satisfies_principal(role(mspid, mp.MSPRole.MEMBER))
                    assert not peer.satisfies_principal(role(mspid, mp.MSPRole.CLIENT))
                    endorsers += 1
            proposal_response_pb2.ProposalResponsePayload.FromString(prp)
    assert creators == 41 and endorsers == 82


def test_orderer_block_signature_identity_validates(manager: MspManager) -> None:
    for n in range(1, 9):
        block = load_block(n)
        meta = common_pb2.Metadata.FromString(block.metadata.metadata[common_pb2.SIGNATURES])
        assert meta.signatures
        for sig in meta.signatures:
            shdr = common_pb2.SignatureHeader.FromString(sig.signature_header)
            orderer = manager.deserialize_identity(shdr.creator, NOW)
            assert orderer.mspid == "OrdererMSP"
            assert orderer.roles == {"member", "orderer"}


def test_fabric_identity_rejected_by_other_org_and_after_expiry(manager: MspManager) -> None:
    env = common_pb2.Envelope.FromString(load_block(4).data.data[0])
    shdr = common_pb2.SignatureHeader.FromString(
        common_pb2.Payload.FromString(env.payload).header.signature_header
    )
    _, cert_pem = parse_serialized_identity(shdr.creator)
    from heddle.msp import serialize_identity

    with pytest.raises(MspError, match="not issued by any CA of MSP 'Org2MSP'"):
        manager.deserialize_identity(serialize_identity("Org2MSP", cert_pem), NOW)
    with pytest.raises(MspError, match="certificate expired at 2036-11-19T01:51:00Z"):
        manager.deserialize_identity(shdr.creator, dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
