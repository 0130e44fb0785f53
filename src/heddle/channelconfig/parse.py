"""From a config block to a typed ChannelConfig, validated as it is read.

Values are decoded once; ``msp_manager`` and ``policies`` are built over the same
channel group so every caller (ACLs, block validation, config updates) shares them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.common import configuration_pb2 as channel_values
from fabric_protos.msp import msp_config_pb2
from fabric_protos.orderer import configuration_pb2 as orderer_values
from fabric_protos.orderer.etcdraft import configuration_pb2 as raft_values
from fabric_protos.peer import configuration_pb2 as peer_values
from google.protobuf.message import DecodeError

from heddle.channelconfig import genesis as names
from heddle.channelconfig.errors import ConfigError
from heddle.channelconfig.units import parse_duration
from heddle.protocol import ProtocolError, parse_envelope


@dataclass(frozen=True)
class BatchSize:
    max_message_count: int
    absolute_max_bytes: int
    preferred_max_bytes: int


@dataclass(frozen=True)
class Consenter:
    host: str
    port: int
    client_tls_cert: bytes = field(repr=False)
    server_tls_cert: bytes = field(repr=False)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class RaftOptions:
    tick_interval: str
    election_tick: int
    heartbeat_tick: int
    max_inflight_blocks: int
    snapshot_interval_size: int


@dataclass(frozen=True)
class OrgConfig:
    """An organization group: its name in the config tree, MSP ID and MSPConfig."""

    name: str
    mspid: str
    msp_config: msp_config_pb2.MSPConfig = field(repr=False)
    endpoints: tuple[str, ...] = ()  # orderer orgs
    anchor_peers: tuple[tuple[str, int], ...] = ()  # application orgs


@dataclass(frozen=True)
class OrdererConfig:
    batch_size: BatchSize
    batch_timeout: str  # as written in the block, e.g. "2s"
    batch_timeout_s: float
    consensus_type: str
    consensus_metadata: bytes = field(repr=False)
    consensus_state: int
    consenters: tuple[Consenter, ...]
    raft_options: RaftOptions | None
    max_channels: int
    orgs: dict[str, OrgConfig]
    capabilities: frozenset[str]
    addresses: tuple[str, ...]  # every org's Endpoints, then the channel's OrdererAddresses


@dataclass(frozen=True)
class ApplicationConfig:
    orgs: dict[str, OrgConfig]
    acls: dict[str, str]
    capabilities: frozenset[str]

    @property
    def anchor_peers(self) -> dict[str, tuple[tuple[str, int], ...]]:
        return {org.mspid: org.anchor_peers for org in self.orgs.values()}


@dataclass
class ChannelConfig:
    """A channel's configuration: the Config message and its typed, validated view."""

    channel_id: str
    sequence: int
    config: configtx_pb2.Config = field(repr=False)
    orderer: OrdererConfig
    application: ApplicationConfig | None
    capabilities: frozenset[str]
    hashing_algorithm: str
    block_data_hashing_width: int
    orderer_addresses: tuple[str, ...]  # the channel-level (legacy) OrdererAddresses
    consortium: str
    msp_manager: Any = field(repr=False)  # heddle.msp.MspManager
    policies: Any = field(repr=False)  # heddle.policy.PolicyManager

    @property
    def mspids(self) -> list[str]:
        return list(self.msp_manager.mspids)


def _decode(
    message_type: type, group: configtx_pb2.ConfigGroup, key: str, where: str, *, required: bool = True
) -> Any:
    if key not in group.values:
        if required:
            raise ConfigError(f"config: {where} has no {key} value")
        return None
    msg = message_type()
    try:
        msg.ParseFromString(group.values[key].value)
    except DecodeError as exc:
        raise ConfigError(f"config: {where}/{key} is not a valid {message_type.__name__}: {exc}") from exc
    return msg


def _capabilities(group: configtx_pb2.ConfigGroup, where: str) -> frozenset[str]:
    caps = _decode(channel_values.Capabilities, group, names.CAPABILITIES, where, required=False)
    return frozenset(caps.capabilities) if caps is not None else frozenset()


def _org(name: str, group: configtx_pb2.ConfigGroup, where: str, *, orderer: bool) -> OrgConfig:
    path = f"{where}/{name}"
    msp_config = _decode(msp_config_pb2.MSPConfig, group, names.MSP, path)
    fabric = msp_config_pb2.FabricMSPConfig()
    try:
        fabric.ParseFromString(msp_config.config)
    except DecodeError as exc:
        raise ConfigError(f"config: {path}/MSP has an invalid FabricMSPConfig: {exc}") from exc
    if not fabric.name:
        raise ConfigError(f"config: {path}/MSP has no MSP ID")
    endpoints: tuple[str, ...] = ()
    anchors: tuple[tuple[str, int], ...] = ()
    if orderer:
        ep = _decode(channel_values.OrdererAddresses, group, names.ENDPOINTS, path, required=False)
        endpoints = tuple(ep.addresses) if ep is not None else ()
    else:
        ap = _decode(peer_values.AnchorPeers, group, names.ANCHOR_PEERS, path, required=False)
        anchors = tuple((a.host, a.port) for a in ap.anchor_peers) if ap is not None else ()
    return OrgConfig(name, fabric.name, msp_config, endpoints, anchors)


def _orderer(group: configtx_pb2.ConfigGroup, channel_addresses: tuple[str, ...]) -> OrdererConfig:
    where = "/Channel/Orderer"
    bs = _decode(orderer_values.BatchSize, group, names.BATCH_SIZE, where)
    if bs.max_message_count == 0:
        raise ConfigError(f"config: {where}/BatchSize.max_message_count must be positive")
    if bs.absolute_max_bytes == 0 or bs.preferred_max_bytes == 0:
        raise ConfigError(f"config: {where}/BatchSize byte limits must be positive")
    if bs.preferred_max_bytes > bs.absolute_max_bytes:
        raise ConfigError(f"config: {where}/BatchSize.preferred_max_bytes exceeds absolute_max_bytes")
    bt = _decode(orderer_values.BatchTimeout, group, names.BATCH_TIMEOUT, where)
    try:
        timeout_s = parse_duration(bt.timeout)
    except ConfigError as exc:
        raise ConfigError(f"config: {where}/BatchTimeout: {exc}") from exc
    if timeout_s <= 0:
        raise ConfigError(f"config: {where}/BatchTimeout must be positive, got {bt.timeout!r}")
    ct = _decode(orderer_values.ConsensusType, group, names.CONSENSUS_TYPE, where)
    consenters: tuple[Consenter, ...] = ()
    options = None
    if ct.type == "etcdraft":
        md = raft_values.ConfigMetadata()
        try:
            md.ParseFromString(ct.metadata)
        except DecodeError as exc:
            raise ConfigError(f"config: {where}/ConsensusType has invalid etcdraft metadata: {exc}") from exc
        if not md.consenters:
            raise ConfigError(f"config: {where}/ConsensusType etcdraft has no consenters")
        consenters = tuple(
            Consenter(c.host, c.port, c.client_tls_cert, c.server_tls_cert) for c in md.consenters
        )
        o = md.options
        options = RaftOptions(
            o.tick_interval,
            o.election_tick,
            o.heartbeat_tick,
            o.max_inflight_blocks,
            o.snapshot_interval_size,
        )
    elif ct.type != "solo":
        raise ConfigError(
            f"config: {where}/ConsensusType {ct.type!r} is not supported (heddle runs solo and etcdraft)"
        )
    cr = _decode(orderer_values.ChannelRestrictions, group, names.CHANNEL_RESTRICTIONS, where, required=False)
    orgs = {name: _org(name, g, where, orderer=True) for name, g in sorted(group.groups.items())}
    addresses: list[str] = []
    for org in orgs.values():
        addresses.extend(a for a in org.endpoints if a not in addresses)
    addresses.extend(a for a in channel_addresses if a not in addresses)
    return OrdererConfig(
        batch_size=BatchSize(bs.max_message_count, bs.absolute_max_bytes, bs.preferred_max_bytes),
        batch_timeout=bt.timeout,
        batch_timeout_s=timeout_s,
        consensus_type=ct.type,
        consensus_metadata=ct.metadata,
        consensus_state=ct.state,
        consenters=consenters,
        raft_options=options,
        max_channels=cr.max_count if cr is not None else 0,
        orgs=orgs,
        capabilities=_capabilities(group, where),
        addresses=tuple(addresses),
    )


def _application(group: configtx_pb2.ConfigGroup) -> ApplicationConfig:
    where = "/Channel/Application"
    acls_msg = _decode(peer_values.ACLs, group, names.ACLS, where, required=False)
    acls = {k: v.policy_ref for k, v in sorted(acls_msg.acls.items())} if acls_msg is not None else {}
    orgs = {name: _org(name, g, where, orderer=False) for name, g in sorted(group.groups.items())}
    return ApplicationConfig(orgs=orgs, acls=acls, capabilities=_capabilities(group, where))


def channel_config_from_config(channel_id: str, config: configtx_pb2.Config) -> ChannelConfig:
    """The typed view of a Config message, with its MSP manager and policy manager."""
    root = config.channel_group
    where = "/Channel"
    ha = _decode(channel_values.HashingAlgorithm, root, names.HASHING_ALGORITHM, where)
    if ha.name != "SHA256":
        raise ConfigError(f"config: {where}/HashingAlgorithm {ha.name!r} is not supported (only SHA256)")
    bdhs = _decode(channel_values.BlockDataHashingStructure, root, names.BLOCK_DATA_HASHING_STRUCTURE, where)
    if bdhs.width != 2**32 - 1:
        raise ConfigError(
            f"config: {where}/BlockDataHashingStructure width must be {2**32 - 1}, got {bdhs.width}"
        )
    oa = _decode(channel_values.OrdererAddresses, root, names.ORDERER_ADDRESSES, where, required=False)
    channel_addresses = tuple(oa.addresses) if oa is not None else ()
    consortium = _decode(channel_values.Consortium, root, names.CONSORTIUM, where, required=False)
    if names.ORDERER_GROUP not in root.groups:
        raise ConfigError(f"config: {where} has no Orderer group")
    orderer = _orderer(root.groups[names.ORDERER_GROUP], channel_addresses)
    application = None
    if names.APPLICATION_GROUP in root.groups:
        application = _application(root.groups[names.APPLICATION_GROUP])

    msp_manager, policy_manager = _managers(root, orderer, application)
    return ChannelConfig(
        channel_id=channel_id,
        sequence=config.sequence,
        config=config,
        orderer=orderer,
        application=application,
        capabilities=_capabilities(root, where),
        hashing_algorithm=ha.name,
        block_data_hashing_width=bdhs.width,
        orderer_addresses=channel_addresses,
        consortium=consortium.name if consortium is not None else "",
        msp_manager=msp_manager,
        policies=policy_manager,
    )


def _managers(
    root: configtx_pb2.ConfigGroup, orderer: OrdererConfig, application: ApplicationConfig | None
) -> tuple[Any, Any]:
    from heddle.msp import Msp, MspError, MspManager
    from heddle.policy import PolicyError, PolicyManager

    msps: dict[str, Any] = {}
    all_orgs = list(orderer.orgs.values()) + list(application.orgs.values() if application else [])
    for org in all_orgs:
        if org.mspid in msps:
            # The same org may sit in both the orderer and application groups, but two
            # different MSPs may not share an ID.
            if msps[org.mspid].to_config() != org.msp_config:
                raise ConfigError(
                    f"config: MSP ID {org.mspid} is used by two different organizations "
                    f"(one of them is {org.name})"
                )
            continue
        try:
            msps[org.mspid] = Msp.from_config(org.msp_config)
        except MspError as exc:
            raise ConfigError(
                f"config: MSP {org.mspid} of organization {org.name} is invalid: {exc}"
            ) from exc
    msp_manager = MspManager(msps.values())
    try:
        policy_manager = PolicyManager.from_channel_group(root, msp_manager)
    except PolicyError as exc:
        raise ConfigError(f"config: invalid policy: {exc}") from exc
    return msp_manager, policy_manager


def config_envelope_from_block(block: common_pb2.Block) -> configtx_pb2.ConfigEnvelope:
    """The ConfigEnvelope of a config block; ConfigError if the block is not one."""
    env, _ = _config_envelope_and_channel(block)
    return env


def _config_envelope_and_channel(block: common_pb2.Block) -> tuple[configtx_pb2.ConfigEnvelope, str]:
    if len(block.data.data) != 1:
        raise ConfigError(
            f"block {block.header.number} is not a config block: it has "
            f"{len(block.data.data)} transactions, a config block has one"
        )
    try:
        parsed = parse_envelope(block.data.data[0])
    except ProtocolError as exc:
        raise ConfigError(f"block {block.header.number}: {exc}") from exc
    if parsed.header_type != common_pb2.HeaderType.CONFIG:
        raise ConfigError(
            f"block {block.header.number} is not a config block: header type "
            f"{common_pb2.HeaderType.Name(parsed.header_type)}"
        )
    env = configtx_pb2.ConfigEnvelope()
    try:
        env.ParseFromString(parsed.payload.data)
    except DecodeError as exc:
        raise ConfigError(f"block {block.header.number}: invalid ConfigEnvelope: {exc}") from exc
    if not env.HasField("config"):
        raise ConfigError(f"block {block.header.number}: ConfigEnvelope has no config")
    return env, parsed.channel_id


def parse_config_block(block: common_pb2.Block | bytes) -> ChannelConfig:
    """The typed channel config carried by a config block (genesis or later)."""
    if isinstance(block, bytes | bytearray):
        raw = bytes(block)
        block = common_pb2.Block()
        try:
            block.ParseFromString(raw)
        except DecodeError as exc:
            raise ConfigError(f"not a block: {exc}") from exc
    env, channel_id = _config_envelope_and_channel(block)
    return channel_config_from_config(channel_id, env.config)


def _org_dict(org: OrgConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"name": org.name, "mspid": org.mspid}
    if org.endpoints:
        out["endpoints"] = list(org.endpoints)
    if org.anchor_peers:
        out["anchor_peers"] = [f"{h}:{p}" for h, p in org.anchor_peers]
    return out


def _policy_text(policy: Any) -> dict[str, str]:
    from fabric_protos.common import policies_pb2

    from heddle.policy import format_implicit_meta_policy, format_signature_policy

    if policy.type == policies_pb2.Policy.IMPLICIT_META:
        meta = policies_pb2.ImplicitMetaPolicy()
        meta.ParseFromString(policy.value)
        return {"type": "ImplicitMeta", "rule": format_implicit_meta_policy(meta)}
    if policy.type == policies_pb2.Policy.SIGNATURE:
        env = policies_pb2.SignaturePolicyEnvelope()
        env.ParseFromString(policy.value)
        return {"type": "Signature", "rule": format_signature_policy(env)}
    return {"type": str(policy.type), "rule": ""}


def describe_config(cc: ChannelConfig) -> dict[str, Any]:
    """A JSON-ready summary of a channel config (what ``heddle channel inspect`` prints)."""
    o = cc.orderer
    orderer: dict[str, Any] = {
        "consensus_type": o.consensus_type,
        "batch_timeout": o.batch_timeout,
        "batch_size": {
            "max_message_count": o.batch_size.max_message_count,
            "absolute_max_bytes": o.batch_size.absolute_max_bytes,
            "preferred_max_bytes": o.batch_size.preferred_max_bytes,
        },
        "addresses": list(o.addresses),
        "capabilities": sorted(o.capabilities),
        "organizations": [_org_dict(org) for org in o.orgs.values()],
    }
    if o.consensus_type == "etcdraft":
        orderer["consenters"] = [c.endpoint for c in o.consenters]
        if o.raft_options is not None:
            r = o.raft_options
            orderer["raft_options"] = {
                "tick_interval": r.tick_interval,
                "election_tick": r.election_tick,
                "heartbeat_tick": r.heartbeat_tick,
                "max_inflight_blocks": r.max_inflight_blocks,
                "snapshot_interval_size": r.snapshot_interval_size,
            }
    out: dict[str, Any] = {
        "channel_id": cc.channel_id,
        "sequence": cc.sequence,
        "hashing_algorithm": cc.hashing_algorithm,
        "capabilities": sorted(cc.capabilities),
        "orderer": orderer,
    }
    if cc.application is not None:
        a = cc.application
        out["application"] = {
            "capabilities": sorted(a.capabilities),
            "organizations": [_org_dict(org) for org in a.orgs.values()],
            "acls": dict(a.acls),
        }
    policies: dict[str, Any] = {}
    mod_policies: dict[str, str] = {}

    def walk(group: configtx_pb2.ConfigGroup, path: str) -> None:
        mod_policies[path] = group.mod_policy
        for name in sorted(group.values):
            mod_policies[f"{path}/{name}"] = group.values[name].mod_policy
        for name in sorted(group.policies):
            policies[f"{path}/{name}"] = _policy_text(group.policies[name].policy)
            mod_policies[f"{path}/{name}"] = group.policies[name].mod_policy
        for name in sorted(group.groups):
            walk(group.groups[name], f"{path}/{name}")

    walk(cc.config.channel_group, "/Channel")
    out["policies"] = policies
    out["mod_policies"] = mod_policies
    return out
