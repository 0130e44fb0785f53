"""Golden data: the policies configtxgen wrote into a real Fabric 2.5.16 genesis block."""

from pathlib import Path

import pytest
from fabric_protos.common import common_pb2, configtx_pb2, policies_pb2
from policy_fakes import FakeDeserializer, signed

from heddle.policy import (
    PolicyError,
    PolicyManager,
    format_implicit_meta_policy,
    format_signature_policy,
    parse_signature_policy,
)

BLOCK = Path(__file__).parents[2] / "fixtures" / "fabric-2.5.16" / "blocks" / "block_0000.pb"


def _channel_group() -> configtx_pb2.ConfigGroup:
    block = common_pb2.Block.FromString(BLOCK.read_bytes())
    env = common_pb2.Envelope.FromString(block.data.data[0])
    payload = common_pb2.Payload.FromString(env.payload)
    return configtx_pb2.ConfigEnvelope.FromString(payload.data).config.channel_group


def _policies(group, path="/Channel"):
    for name, cp in sorted(group.policies.items()):
        yield f"{path}/{name}", cp.policy
    for name, child in sorted(group.groups.items()):
        yield from _policies(child, f"{path}/{name}")




@pytest.fixture(scope="module")
def channel_group():
    return _channel_group()


def test_every_signature_policy_round_trips_byte_for_byte(channel_group):
    seen = 0
    for path, policy in _policies(channel_group):
        if policy.type != policies_pb2.Policy.SIGNATURE:
            continue
        env = policies_pb2.SignaturePolicyEnvelope.FromString(policy.value)
        text = format_signature_policy(env)
        assert parse_signature_policy(text).SerializeToString() == policy.value, path
        seen += 1
    assert seen == 11


def test_org_policies_read_as_configtxgen_samples_write_them(channel_group):
    texts = {
        path: format_signature_policy(policies_pb2.SignaturePolicyEnvelope.FromString(p.value))
        for path, p in _policies(channel_group)
        if p.type == policies_pb2.Policy.SIGNATURE
    }
    assert texts["/Channel/Application/Org1MSP/Readers"] == (
        "OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client')"
    )
    assert texts["/Channel/Application/Org2MSP/Writers"] == "OR('Org2MSP.admin', 'Org2MSP.client')"
    assert texts["/Channel/Application/Org1MSP/Endorsement"] == "OR('Org1MSP.peer')"
    assert texts["/Channel/Orderer/OrdererOrg/Writers"] == "OR('OrdererMSP.member')"


def test_implicit_meta_policies_read_as_configtx_yaml_writes_them(channel_group):
    texts = {
        path: format_implicit_meta_policy(policies_pb2.ImplicitMetaPolicy.FromString(p.value))
        for path, p in _policies(channel_group)
        if p.type == policies_pb2.Policy.IMPLICIT_META
    }
    assert texts["/Channel/Application/Endorsement"] == "MAJORITY Endorsement"
    assert texts["/Channel/Application/LifecycleEndorsement"] == "MAJORITY Endorsement"
    assert texts["/Channel/Orderer/BlockValidation"] == "ANY Writers"
    assert texts["/Channel/Admins"] == "MAJORITY Admins"


def test_manager_builds_from_the_genesis_config_and_evaluates(channel_group):
    pm = PolicyManager.from_channel_group(channel_group, FakeDeserializer())
    assert pm.has_policy("/Channel/Application/Org1MSP/Admins")
    assert pm.has_policy("Orderer/BlockValidation")
    assert len(pm.paths()) == 23

    orderer = signed("OrdererMSP", "orderer0", "orderer")
    pm.evaluate("/Channel/Orderer/BlockValidation", [orderer])
    with pytest.raises(PolicyError):
        pm.evaluate("/Channel/Application/Writers", [orderer])

    peer1 = signed("Org1MSP", "peer0", "peer")
    peer2 = signed("Org2MSP", "peer0", "peer")
    with pytest.raises(PolicyError, match="Endorsement"):
        pm.evaluate("/Channel/Application/Endorsement", [peer1])
    pm.evaluate("/Channel/Application/LifecycleEndorsement", [peer1, peer2])

    admin1 = signed("Org1MSP", "Admin", "admin")
    admin2 = signed("Org2MSP", "Admin", "admin")
    ord_admin = signed("OrdererMSP", "Admin", "admin")
    # /Channel/Admins = MAJORITY of Application/Admins and Orderer/Admins.
    with pytest.raises(PolicyError):
        pm.evaluate("/Channel/Admins", [admin1, ord_admin])
    pm.evaluate("/Channel/Admins", [admin1, admin2, ord_admin])
