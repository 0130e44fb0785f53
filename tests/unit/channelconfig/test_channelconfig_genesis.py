"""Genesis blocks: same structure as configtxgen's, and a round trip through the parser."""

from __future__ import annotations

import hashlib

import pytest
from fabric_protos.common import common_pb2, configtx_pb2, policies_pb2
from fabric_protos.orderer import configuration_pb2 as orderer_values
from fabric_protos.orderer.etcdraft import configuration_pb2 as raft_values

from heddle.channelconfig import (
    config_envelope_from_block,
    genesis_block,
    load_configtx,
    parse_config_block,
)
from heddle.channelconfig.defaults import DEFAULT_PROFILE, write_default_configtx
from heddle.msp.cryptogen import generate_default_network

# Values whose bytes do not depend on keys or certificates: equal byte for byte.
_KEY_FREE_VALUES = {
    "HashingAlgorithm",
    "BlockDataHashingStructure",
    "OrdererAddresses",
    "Capabilities",
    "BatchSize",
    "BatchTimeout",
    "ChannelRestrictions",
    "Endpoints",
    "AnchorPeers",
    "ACLs",
}


def _skeleton(group: configtx_pb2.ConfigGroup) -> dict:
    """Everything about a config tree except certificates."""
    values = {}
    for k, v in group.values.items():
        values[k] = (v.version, v.mod_policy, v.value if k in _KEY_FREE_VALUES else None)
    policies = {}
    for k, p in group.policies.items():
        policies[k] = (p.version, p.mod_policy, p.policy.type, p.policy.value)
    return {
        "version": group.version,
        "mod_policy": group.mod_policy,
        "values": values,
        "policies": policies,
        "groups": {k: _skeleton(g) for k, g in group.groups.items()},
    }


def _consensus(group: configtx_pb2.ConfigGroup):
    ct = orderer_values.ConsensusType()
    ct.ParseFromString(group.groups["Orderer"].values["ConsensusType"].value)
    md = raft_values.ConfigMetadata()
    md.ParseFromString(ct.metadata)
    return ct, md


@pytest.fixture(scope="module")
def generated(network_dir) -> common_pb2.Block:
    configtx = load_configtx(network_dir / "configtx.yaml")
    return genesis_block(configtx, "ChannelUsingRaft", "mychannel", network_dir)


def test_generated_tree_matches_fabric_genesis(generated, fabric_genesis):
    ours = config_envelope_from_block(generated).config
    fabric = config_envelope_from_block(fabric_genesis).config
    assert ours.sequence == fabric.sequence == 0
    assert _skeleton(ours.channel_group) == _skeleton(fabric.channel_group)


def test_generated_consensus_matches_fabric_genesis(generated, fabric_genesis):
    ct, md = _consensus(config_envelope_from_block(generated).config.channel_group)
    fct, fmd = _consensus(config_envelope_from_block(fabric_genesis).config.channel_group)
    assert (ct.type, ct.state) == (fct.type, fct.state) == ("etcdraft", 0)
    assert [(c.host, c.port) for c in md.consenters] == [(c.host, c.port) for c in fmd.consenters]
    assert md.options == fmd.options
    assert md.consenters[0].client_tls_cert.startswith(b"-----BEGIN CERTIFICATE-----")


def test_generated_block_has_configtxgen_shape(generated, fabric_genesis):
    assert generated.header.number == 0 and generated.header.previous_hash == b""
    assert generated.header.data_hash == hashlib.sha256(generated.data.data[0]).digest()
    # Same metadata slots as Fabric's: OrdererBlockMetadata{last_config: 0} in SIGNATURES.
    assert generated.metadata.metadata[0] == fabric_genesis.metadata.metadata[0]
    assert len(generated.metadata.metadata) == len(fabric_genesis.metadata.metadata)

    def layers(block):
        env = common_pb2.Envelope()
        env.ParseFromString(block.data.data[0])
        payload = common_pb2.Payload()
        payload.ParseFromString(env.payload)
        chdr = common_pb2.ChannelHeader()
        chdr.ParseFromString(payload.header.channel_header)
        shdr = common_pb2.SignatureHeader()
        shdr.ParseFromString(payload.header.signature_header)
        return env, chdr, shdr

    env, chdr, shdr = layers(generated)
    fenv, fchdr, fshdr = layers(fabric_genesis)
    assert env.signature == fenv.signature == b""
    assert (chdr.type, chdr.version, chdr.channel_id, chdr.epoch) == (
        fchdr.type,
        fchdr.version,
        fchdr.channel_id,
        fchdr.epoch,
    )
    assert chdr.timestamp.nanos == 0 and chdr.timestamp.seconds > 0
    assert shdr.creator == fshdr.creator == b""
    assert len(shdr.nonce) == len(fshdr.nonce) == 24
    assert chdr.tx_id == hashlib.sha256(shdr.nonce).hexdigest()


def test_genesis_round_trip_through_the_parser(generated, fabric_genesis):
    ours = parse_config_block(generated)
    fabric = parse_config_block(fabric_genesis)
    assert ours.channel_id == fabric.channel_id
    assert sorted(ours.mspids) == sorted(fabric.mspids)
    assert ours.orderer.batch_size == fabric.orderer.batch_size
    assert ours.orderer.batch_timeout_s == fabric.orderer.batch_timeout_s
    assert ours.orderer.consensus_type == fabric.orderer.consensus_type
    assert [c.endpoint for c in ours.orderer.consenters] == [c.endpoint for c in fabric.orderer.consenters]
    assert ours.orderer.raft_options == fabric.orderer.raft_options
    assert ours.orderer.addresses == fabric.orderer.addresses
    assert ours.application.anchor_peers == fabric.application.anchor_peers
    assert ours.capabilities == fabric.capabilities
    assert ours.policies.paths() == fabric.policies.paths()


def test_signature_policies_are_byte_identical_to_fabric(generated, fabric_genesis):
    ours = config_envelope_from_block(generated).config.channel_group
    fabric = config_envelope_from_block(fabric_genesis).config.channel_group
    for org in ("Org1MSP", "Org2MSP"):
        for name in ("Readers", "Writers", "Admins", "Endorsement"):
            a = ours.groups["Application"].groups[org].policies[name].policy
            b = fabric.groups["Application"].groups[org].policies[name].policy
            assert a.type == policies_pb2.Policy.SIGNATURE
            assert a.value == b.value, (org, name)


@pytest.mark.parametrize(("consensus", "orderers"), [("solo", 1), ("etcdraft", 3)])
def test_default_network_configtx_round_trip(tmp_path, consensus, orderers):
    generate_default_network(tmp_path / "crypto", orderers=orderers)
    path = write_default_configtx(tmp_path, tmp_path / "crypto", consensus=consensus, orderers=orderers)
    text = path.read_text()
    assert str(tmp_path) not in text  # paths are written relative to the file
    block = genesis_block(load_configtx(path), DEFAULT_PROFILE, "mychannel", tmp_path)
    cc = parse_config_block(block.SerializeToString())
    o = cc.orderer
    assert o.consensus_type == consensus
    assert (
        o.batch_size.max_message_count,
        o.batch_size.absolute_max_bytes,
        o.batch_size.preferred_max_bytes,
    ) == (500, 10 * 1024**2, 2 * 1024**2)
    assert o.batch_timeout_s == 2.0
    assert sorted(cc.mspids) == ["OrdererMSP", "Org1MSP", "Org2MSP"]
    assert cc.application.anchor_peers == {
        "Org1MSP": (("127.0.0.1", 7051),),
        "Org2MSP": (("127.0.0.1", 9051),),
    }
    if consensus == "solo":
        assert o.consensus_metadata == b"" and o.consenters == ()
        assert o.addresses == ("127.0.0.1:7050",)
    else:
        assert [c.endpoint for c in o.consenters] == ["127.0.0.1:7050", "127.0.0.1:8050", "127.0.0.1:9050"]
        assert o.raft_options.tick_interval == "500ms"
    assert cc.policies.has_policy("/Channel/Application/LifecycleEndorsement")


def test_genesis_rejects_a_bad_channel_id(network_dir):
    from heddle.channelconfig import ConfigError

    configtx = load_configtx(network_dir / "configtx.yaml")
    with pytest.raises(ConfigError, match="channel ID 'MyChannel' is invalid"):
        genesis_block(configtx, "ChannelUsingRaft", "MyChannel", network_dir)
