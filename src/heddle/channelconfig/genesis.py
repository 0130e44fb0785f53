"""Encode a validated profile into Fabric's configtx tree and wrap it in a genesis block.

Group, value and policy names and every mod_policy follow configtxgen, so the block
is the one Fabric would write for the same configtx.yaml (compare block_0000.pb).
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from fabric_protos.common import common_pb2, configtx_pb2, policies_pb2
from fabric_protos.common import configuration_pb2 as channel_values
from fabric_protos.orderer import configuration_pb2 as orderer_values
from fabric_protos.orderer.etcdraft import configuration_pb2 as raft_values
from fabric_protos.peer import configuration_pb2 as peer_values

from heddle.channelconfig.configtx import (
    ApplicationSpec,
    OrdererSpec,
    OrgSpec,
    PolicySpec,
    ProfileSpec,
    profile_spec,
)
from heddle.channelconfig.errors import ConfigError
from heddle.protocol import compute_txid, make_channel_header, make_signature_header, new_block
from heddle.protocol.blocks import SIGNATURES

# Names of groups, values and policies in a channel config, as Fabric spells them.
CHANNEL_GROUP = "Channel"
ORDERER_GROUP = "Orderer"
APPLICATION_GROUP = "Application"
ADMINS = "Admins"
READERS = "Readers"
WRITERS = "Writers"
BLOCK_VALIDATION = "BlockValidation"
ORDERER_ADMINS_PATH = "/Channel/Orderer/Admins"

HASHING_ALGORITHM = "HashingAlgorithm"
BLOCK_DATA_HASHING_STRUCTURE = "BlockDataHashingStructure"
ORDERER_ADDRESSES = "OrdererAddresses"
CONSORTIUM = "Consortium"
CAPABILITIES = "Capabilities"
CONSENSUS_TYPE = "ConsensusType"
BATCH_SIZE = "BatchSize"
BATCH_TIMEOUT = "BatchTimeout"
CHANNEL_RESTRICTIONS = "ChannelRestrictions"
MSP = "MSP"
ENDPOINTS = "Endpoints"
ANCHOR_PEERS = "AnchorPeers"
ACLS = "ACLs"

GENESIS_HEADER_VERSION = 1  # configtxgen's message version for the genesis payload
_IMPLICIT_RULES = {
    "ANY": policies_pb2.ImplicitMetaPolicy.ANY,
    "ALL": policies_pb2.ImplicitMetaPolicy.ALL,
    "MAJORITY": policies_pb2.ImplicitMetaPolicy.MAJORITY,
}
_DEFAULT_IMPLICIT = {
    READERS: PolicySpec("ImplicitMeta", "ANY Readers"),
    WRITERS: PolicySpec("ImplicitMeta", "ANY Writers"),
    ADMINS: PolicySpec("ImplicitMeta", "MAJORITY Admins"),
}


def encode_policy(spec: PolicySpec) -> policies_pb2.Policy:
    """A Policy message for a configtx.yaml policy (Signature DSL or ImplicitMeta rule)."""
    if spec.type == "ImplicitMeta":
        rule, sub_policy = spec.rule.split()
        meta = policies_pb2.ImplicitMetaPolicy(rule=_IMPLICIT_RULES[rule], sub_policy=sub_policy)
        return policies_pb2.Policy(type=policies_pb2.Policy.IMPLICIT_META, value=meta.SerializeToString())
    if spec.type == "Signature":
        from heddle.policy import parse_signature_policy

        envelope = parse_signature_policy(spec.rule)
        return policies_pb2.Policy(
            type=policies_pb2.Policy.SIGNATURE, value=envelope.SerializeToString(deterministic=True)
        )
    raise ConfigError(f"unknown policy type {spec.type!r}")


def _set_value(group: configtx_pb2.ConfigGroup, key: str, message: Any, mod_policy: str = ADMINS) -> None:
    group.values[key].value = message.SerializeToString(deterministic=True)
    group.values[key].mod_policy = mod_policy


def _set_policies(group: configtx_pb2.ConfigGroup, policies: dict[str, PolicySpec]) -> None:
    for name, spec in policies.items():
        group.policies[name].policy.CopyFrom(encode_policy(spec))
        group.policies[name].mod_policy = ADMINS


def _capabilities(names: list[str]) -> channel_values.Capabilities:
    caps = channel_values.Capabilities()
    for name in names:
        caps.capabilities[name].SetInParent()
    return caps


def _org_group(org: OrgSpec, *, orderer: bool) -> configtx_pb2.ConfigGroup:
    from heddle.msp import MspError, msp_config_from_dir

    group = configtx_pb2.ConfigGroup(mod_policy=ADMINS)
    _set_policies(group, org.policies)
    try:
        msp_config = msp_config_from_dir(org.msp_dir, org.mspid)
    except MspError as exc:
        raise ConfigError(f"organization {org.name}: MSP {org.mspid} at {org.msp_dir}: {exc}") from exc
    _set_value(group, MSP, msp_config)
    if orderer and org.orderer_endpoints:
        _set_value(group, ENDPOINTS, channel_values.OrdererAddresses(addresses=org.orderer_endpoints))
    if not orderer and org.anchor_peers:
        anchors = peer_values.AnchorPeers(
            anchor_peers=[peer_values.AnchorPeer(host=h, port=p) for h, p in org.anchor_peers]
        )
        _set_value(group, ANCHOR_PEERS, anchors)
    return group


def consensus_metadata(spec: OrdererSpec) -> bytes:
    """ConsensusType.metadata: etcdraft's ConfigMetadata, empty for solo."""
    if spec.orderer_type != "etcdraft":
        return b""
    opts = spec.raft_options
    assert opts is not None
    md = raft_values.ConfigMetadata(
        consenters=[
            raft_values.Consenter(
                host=c.host, port=c.port, client_tls_cert=c.client_tls_cert, server_tls_cert=c.server_tls_cert
            )
            for c in spec.consenters
        ],
        options=raft_values.Options(
            tick_interval=opts.tick_interval,
            election_tick=opts.election_tick,
            heartbeat_tick=opts.heartbeat_tick,
            max_inflight_blocks=opts.max_inflight_blocks,
            snapshot_interval_size=opts.snapshot_interval_size,
        ),
    )
    return md.SerializeToString(deterministic=True)


def _orderer_group(spec: OrdererSpec) -> configtx_pb2.ConfigGroup:
    group = configtx_pb2.ConfigGroup(mod_policy=ADMINS)
    policies = dict(spec.policies) or dict(_DEFAULT_IMPLICIT)
    policies.setdefault(BLOCK_VALIDATION, PolicySpec("ImplicitMeta", "ANY Writers"))
    _set_policies(group, policies)
    _set_value(
        group,
        BATCH_SIZE,
        orderer_values.BatchSize(
            max_message_count=spec.max_message_count,
            absolute_max_bytes=spec.absolute_max_bytes,
            preferred_max_bytes=spec.preferred_max_bytes,
        ),
    )
    _set_value(group, BATCH_TIMEOUT, orderer_values.BatchTimeout(timeout=spec.batch_timeout))
    _set_value(group, CHANNEL_RESTRICTIONS, orderer_values.ChannelRestrictions(max_count=spec.max_channels))
    if spec.capabilities:
        _set_value(group, CAPABILITIES, _capabilities(spec.capabilities))
    _set_value(
        group,
        CONSENSUS_TYPE,
        orderer_values.ConsensusType(
            type=spec.orderer_type,
            metadata=consensus_metadata(spec),
            state=orderer_values.ConsensusType.STATE_NORMAL,
        ),
    )
    for org in spec.organizations:
        group.groups[org.name].CopyFrom(_org_group(org, orderer=True))
    return group


def _application_group(spec: ApplicationSpec) -> configtx_pb2.ConfigGroup:
    group = configtx_pb2.ConfigGroup(mod_policy=ADMINS)
    _set_policies(group, dict(spec.policies) or dict(_DEFAULT_IMPLICIT))
    for org in spec.organizations:
        group.groups[org.name].CopyFrom(_org_group(org, orderer=False))
    if spec.acls:
        acls = peer_values.ACLs()
        for resource, policy_ref in spec.acls.items():
            acls.acls[resource].policy_ref = policy_ref
        _set_value(group, ACLS, acls)
    if spec.capabilities:
        _set_value(group, CAPABILITIES, _capabilities(spec.capabilities))
    return group


def channel_group(spec: ProfileSpec) -> configtx_pb2.ConfigGroup:
    """The root ``Channel`` group for a validated profile."""
    group = configtx_pb2.ConfigGroup(mod_policy=ADMINS)
    _set_policies(group, dict(spec.policies) or dict(_DEFAULT_IMPLICIT))
    _set_value(group, HASHING_ALGORITHM, channel_values.HashingAlgorithm(name="SHA256"))
    _set_value(group, BLOCK_DATA_HASHING_STRUCTURE, channel_values.BlockDataHashingStructure(width=2**32 - 1))
    if spec.orderer.addresses:
        _set_value(
            group,
            ORDERER_ADDRESSES,
            channel_values.OrdererAddresses(addresses=spec.orderer.addresses),
            mod_policy=ORDERER_ADMINS_PATH,
        )
    if spec.consortium:
        _set_value(group, CONSORTIUM, channel_values.Consortium(name=spec.consortium))
    if spec.capabilities:
        _set_value(group, CAPABILITIES, _capabilities(spec.capabilities))
    group.groups[ORDERER_GROUP].CopyFrom(_orderer_group(spec.orderer))
    if spec.application is not None:
        group.groups[APPLICATION_GROUP].CopyFrom(_application_group(spec.application))
    return group


def config_block(
    config: configtx_pb2.Config,
    channel_id: str,
    number: int = 0,
    previous_hash: bytes = b"",
    *,
    timestamp: float | None = None,
) -> common_pb2.Block:
    """A block holding one unsigned CONFIG envelope, shaped like configtxgen's genesis block.

    The SIGNATURES slot carries OrdererBlockMetadata with LAST_CONFIG pointing at this
    block, as in Fabric's block_0000.pb; the orderer signs later blocks, not this one.
    """
    signature_header = make_signature_header(b"")
    channel_header = make_channel_header(
        common_pb2.HeaderType.CONFIG,
        channel_id,
        tx_id=compute_txid(signature_header.nonce, b""),
        timestamp=float(int(time.time() if timestamp is None else timestamp)),
    )
    channel_header.version = GENESIS_HEADER_VERSION
    payload = common_pb2.Payload(
        header=common_pb2.Header(
            channel_header=channel_header.SerializeToString(),
            signature_header=signature_header.SerializeToString(),
        ),
        data=configtx_pb2.ConfigEnvelope(config=config).SerializeToString(deterministic=True),
    )
    envelope = common_pb2.Envelope(payload=payload.SerializeToString())
    block = new_block(number, previous_hash, [envelope.SerializeToString()])
    last_config = common_pb2.OrdererBlockMetadata(last_config=common_pb2.LastConfig(index=number))
    block.metadata.metadata[SIGNATURES] = common_pb2.Metadata(
        value=last_config.SerializeToString()
    ).SerializeToString()
    return block


def genesis_block(
    configtx: dict[str, Any],
    profile: str,
    channel_id: str,
    base_dir: str | os.PathLike[str] = ".",
    *,
    timestamp: float | None = None,
) -> common_pb2.Block:
    """The genesis config block of ``channel_id`` for ``profile`` of a loaded configtx.yaml."""
    validate_channel_id(channel_id)
    spec = profile_spec(configtx, profile, base_dir)
    config = configtx_pb2.Config(sequence=0, channel_group=channel_group(spec))
    return config_block(config, channel_id, timestamp=timestamp)


def validate_channel_id(channel_id: str) -> None:
    """Fabric's channel name rule: [a-z][a-z0-9.-]*, shorter than 250 characters."""
    if not isinstance(channel_id, str) or not re.fullmatch(r"[a-z][a-z0-9.-]{0,248}", channel_id):
        raise ConfigError(
            f"channel ID {channel_id!r} is invalid: it must match "
            "[a-z][a-z0-9.-]* and be shorter than 250 characters"
        )
