"""The typed config of Fabric's own genesis block (block_0000.pb from Fabric v2.5.16)."""

from __future__ import annotations

import time

import pytest
from channelconfig_testnet import FIXTURES
from fabric_protos.common import common_pb2

from heddle.channelconfig import ConfigError, config_envelope_from_block, parse_config_block


def test_fabric_genesis_parses_into_the_reference_network(fabric_genesis):
    cc = parse_config_block(fabric_genesis)
    assert cc.channel_id == "mychannel"
    assert cc.sequence == 0
    assert sorted(cc.mspids) == ["OrdererMSP", "Org1MSP", "Org2MSP"]
    assert cc.hashing_algorithm == "SHA256"
    assert cc.block_data_hashing_width == 2**32 - 1
    assert cc.capabilities == {"V2_0"}
    assert cc.orderer_addresses == ("127.0.0.1:7050",)


def test_fabric_genesis_orderer_settings(fabric_genesis):
    o = parse_config_block(fabric_genesis).orderer
    assert o.batch_size.max_message_count == 500
    assert o.batch_size.absolute_max_bytes == 10 * 1024 * 1024
    assert o.batch_size.preferred_max_bytes == 2 * 1024 * 1024
    assert o.batch_timeout == "2s" and o.batch_timeout_s == 2.0
    assert o.consensus_type == "etcdraft"
    # The reference network's consenter is orderer.example.com's TLS identity at 127.0.0.1:7050.
    assert [c.endpoint for c in o.consenters] == ["127.0.0.1:7050"]
    assert b"BEGIN CERTIFICATE" in o.consenters[0].server_tls_cert
    assert o.raft_options.tick_interval == "500ms"
    assert (o.raft_options.election_tick, o.raft_options.heartbeat_tick) == (10, 1)
    assert o.raft_options.max_inflight_blocks == 5
    assert o.raft_options.snapshot_interval_size == 16 * 1024 * 1024
    assert list(o.orgs) == ["OrdererOrg"] and o.orgs["OrdererOrg"].mspid == "OrdererMSP"
    assert o.addresses == ("127.0.0.1:7050",)
    assert o.capabilities == {"V2_0"}


def test_fabric_genesis_application_settings(fabric_genesis):
    a = parse_config_block(fabric_genesis).application
    assert a is not None
    assert sorted(a.orgs) == ["Org1MSP", "Org2MSP"]
    assert a.anchor_peers == {"Org1MSP": (("127.0.0.1", 7051),), "Org2MSP": (("127.0.0.1", 9051),)}
    assert a.acls == {}
    assert a.capabilities == {"V2_0"}


def test_fabric_genesis_policies_are_evaluable(fabric_genesis):
    cc = parse_config_block(fabric_genesis)
    for path in (
        "/Channel/Application/Endorsement",
        "/Channel/Application/LifecycleEndorsement",
        "/Channel/Orderer/BlockValidation",
        "/Channel/Application/Org1MSP/Admins",
        "/Channel/Admins",
    ):
        assert cc.policies.has_policy(path)
    from heddle.channelconfig.parse import describe_config

    policies = describe_config(cc)["policies"]
    assert policies["/Channel/Application/Endorsement"] == {
        "type": "ImplicitMeta",
        "rule": "MAJORITY Endorsement",
    }
    assert policies["/Channel/Application/Org1MSP/Endorsement"] == {
        "type": "Signature",
        "rule": "OR('Org1MSP.peer')",
    }


def test_parsing_a_config_block_is_cheap(fabric_genesis):
    start = time.perf_counter()
    for _ in range(5):
        parse_config_block(fabric_genesis.SerializeToString())
    assert (time.perf_counter() - start) / 5 < 0.25


def test_config_envelope_from_block_has_the_config(fabric_genesis):
    env = config_envelope_from_block(fabric_genesis)
    assert env.config.sequence == 0
    assert set(env.config.channel_group.groups) == {"Orderer", "Application"}


def test_a_transaction_block_is_not_a_config_block():
    block = common_pb2.Block()
    block.ParseFromString((FIXTURES / "block_0001.pb").read_bytes())
    with pytest.raises(ConfigError, match="block 1 is not a config block: header type ENDORSER_TRANSACTION"):
        parse_config_block(block)
