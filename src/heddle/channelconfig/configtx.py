"""configtx.yaml: load it, pick a profile, validate it into typed specs.

The file is the one Fabric's configtxgen reads (Organizations, Capabilities,
Application, Orderer, Channel, Profiles, with YAML anchors and ``<<`` merge keys).
Validation names the bad key by its path inside the profile, e.g.
``configtx.yaml: Profiles.ChannelUsingRaft.Orderer.BatchSize.MaxMessageCount must be
a positive integer``. Relative paths (MSPDir, TLS certs) resolve against the
directory of the configtx.yaml, as configtxgen resolves them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from heddle.channelconfig.errors import ConfigError
from heddle.channelconfig.units import parse_duration, parse_size

CONFIGTX_FILENAME = "configtx.yaml"

_TOP_KEYS = {"Organizations", "Capabilities", "Application", "Orderer", "Channel", "Profiles"}
_PROFILE_KEYS = {"Consortium", "Application", "Orderer", "Consortiums", "Policies", "Capabilities"}
_ORDERER_KEYS = {
    "OrdererType",
    "Addresses",
    "BatchTimeout",
    "BatchSize",
    "EtcdRaft",
    "Organizations",
    "MaxChannels",
    "Capabilities",
    "Policies",
    # Fabric keys for other consensus types: accepted (they appear in Fabric's sample
    # files through the Orderer defaults) but unused, as heddle runs solo and etcdraft.
    "Kafka",
    "SmartBFT",
    "ConsenterMapping",
}
_BATCH_KEYS = {"MaxMessageCount", "AbsoluteMaxBytes", "PreferredMaxBytes"}
_RAFT_KEYS = {"Consenters", "Options"}
_CONSENTER_KEYS = {"Host", "Port", "ClientTLSCert", "ServerTLSCert"}
_RAFT_OPTION_KEYS = {
    "TickInterval",
    "ElectionTick",
    "HeartbeatTick",
    "MaxInflightBlocks",
    "SnapshotIntervalSize",
}
_APPLICATION_KEYS = {"Organizations", "Policies", "Capabilities", "ACLs"}
_ORG_KEYS = {
    "Name",
    "ID",
    "MSPDir",
    "MSPType",
    "Policies",
    "OrdererEndpoints",
    "AnchorPeers",
    "SkipAsForeign",
    "AdminPrincipal",
}
_ANCHOR_KEYS = {"Host", "Port"}
_POLICY_KEYS = {"Type", "Rule"}
_IMPLICIT_RULE = re.compile(r"^\s*(ANY|ALL|MAJORITY)\s+(\S+)\s*$")

ORDERER_TYPES = ("solo", "etcdraft")

# configtxgen's defaults for what a profile leaves out.
DEFAULT_BATCH_TIMEOUT = "2s"
DEFAULT_MAX_MESSAGE_COUNT = 500
DEFAULT_ABSOLUTE_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_PREFERRED_MAX_BYTES = 2 * 1024 * 1024
DEFAULT_RAFT_OPTIONS = {
    "TickInterval": "500ms",
    "ElectionTick": 10,
    "HeartbeatTick": 1,
    "MaxInflightBlocks": 5,
    "SnapshotIntervalSize": 16 * 1024 * 1024,
}


@dataclass(frozen=True)
class PolicySpec:
    """A policy as configtx.yaml writes it: Type Signature or ImplicitMeta, and a Rule."""

    type: str
    rule: str


@dataclass
class OrgSpec:
    name: str
    mspid: str
    msp_dir: str
    policies: dict[str, PolicySpec]
    orderer_endpoints: list[str] = field(default_factory=list)
    anchor_peers: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class ConsenterSpec:
    host: str
    port: int
    client_tls_cert: bytes
    server_tls_cert: bytes


@dataclass
class RaftOptionsSpec:
    tick_interval: str
    election_tick: int
    heartbeat_tick: int
    max_inflight_blocks: int
    snapshot_interval_size: int


@dataclass
class OrdererSpec:
    orderer_type: str
    addresses: list[str]
    batch_timeout: str
    max_message_count: int
    absolute_max_bytes: int
    preferred_max_bytes: int
    max_channels: int
    consenters: list[ConsenterSpec]
    raft_options: RaftOptionsSpec | None
    organizations: list[OrgSpec]
    policies: dict[str, PolicySpec]
    capabilities: list[str]


@dataclass
class ApplicationSpec:
    organizations: list[OrgSpec]
    policies: dict[str, PolicySpec]
    capabilities: list[str]
    acls: dict[str, str]


@dataclass
class ProfileSpec:
    """One validated profile, ready to encode into a channel group."""

    name: str
    orderer: OrdererSpec
    application: ApplicationSpec | None
    policies: dict[str, PolicySpec]
    capabilities: list[str]
    consortium: str


def load_configtx(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a configtx.yaml (anchors and merge keys resolved); ConfigError if unreadable."""
    p = Path(path)
    if p.is_dir():
        p = p / CONFIGTX_FILENAME
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p.name}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p.name}: must be a mapping with a Profiles section")
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(
                f"{p.name}: {key} is not a known key (expected one of {', '.join(sorted(_TOP_KEYS))})"
            )
    return data


class _Checker:
    """Walks a profile, naming every key by its dotted path in error messages."""

    def __init__(self, base_dir: str, source: str) -> None:
        self.base_dir = base_dir
        self.source = source

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {path} {message}")

    def mapping(self, value: Any, path: str, allowed: set[str], *, optional: bool = False) -> dict[str, Any]:
        if value is None and optional:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping")
        for key in value:
            if key not in allowed:
                raise self.fail(
                    f"{path}.{key}", f"is not a known key (expected one of {', '.join(sorted(allowed))})"
                )
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, "must be a non-empty string")
        return value

    def positive_int(self, value: Any, path: str, *, maximum: int = 2**32 - 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(path, "must be a positive integer")
        if value > maximum:
            raise self.fail(path, f"must be at most {maximum}")
        return value

    def non_negative_int(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(path, "must be a non-negative integer")
        return value

    def port(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
            raise self.fail(path, "must be a port number (1-65535)")
        return value

    def size(self, value: Any, path: str) -> int:
        try:
            n = parse_size(value)
        except ConfigError:
            raise self.fail(path, "must be a positive byte size (e.g. 10485760 or '10 MB')") from None
        if n <= 0 or n > 2**32 - 1:
            raise self.fail(path, "must be a positive byte size below 4 GB")
        return n

    def duration(self, value: Any, path: str) -> str:
        try:
            seconds = parse_duration(value)
        except ConfigError:
            raise self.fail(path, "must be a duration like '2s' or '500ms'") from None
        if seconds <= 0:
            raise self.fail(path, "must be a positive duration")
        return value.strip()

    def string_list(self, value: Any, path: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, "must be a list of strings")
        return [self.string(v, f"{path}[{i}]") for i, v in enumerate(value)]

    def file_bytes(self, value: Any, path: str) -> bytes:
        rel = self.string(value, path)
        full = os.path.join(self.base_dir, rel)
        try:
            with open(full, "rb") as f:
                return f.read()
        except OSError as exc:
            raise self.fail(path, f"cannot read {full}: {exc.strerror or exc}") from None

    def directory(self, value: Any, path: str) -> str:
        rel = self.string(value, path)
        full = os.path.normpath(os.path.join(self.base_dir, rel))
        if not os.path.isdir(full):
            raise self.fail(path, f"is not a directory: {full}")
        return full

    def capabilities(self, value: Any, path: str) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping of capability name to true/false")
        out = []
        for name, enabled in value.items():
            if not isinstance(enabled, bool):
                raise self.fail(f"{path}.{name}", "must be true or false")
            if enabled:
                out.append(str(name))
        return out

    def policies(self, value: Any, path: str) -> dict[str, PolicySpec]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping of policy name to {Type, Rule}")
        out = {}
        for name, raw_spec in value.items():
            ppath = f"{path}.{name}"
            spec = self.mapping(raw_spec, ppath, _POLICY_KEYS)
            ptype = spec.get("Type")
            if ptype not in ("Signature", "ImplicitMeta"):
                raise self.fail(f"{ppath}.Type", "must be Signature or ImplicitMeta")
            rule = self.string(spec.get("Rule"), f"{ppath}.Rule")
            if ptype == "ImplicitMeta":
                if not _IMPLICIT_RULE.match(rule):
                    raise self.fail(
                        f"{ppath}.Rule", f"must be '<ANY|ALL|MAJORITY> <SubPolicy>', got {rule!r}"
                    )
            else:
                from heddle.policy import PolicyError, parse_signature_policy

                try:
                    parse_signature_policy(rule)
                except PolicyError as exc:
                    raise self.fail(f"{ppath}.Rule", f"is not a signature policy: {exc}") from None
            out[str(name)] = PolicySpec(ptype, rule)
        return out

    def organization(self, value: Any, path: str, *, orderer: bool) -> OrgSpec:
        org = self.mapping(value, path, _ORG_KEYS)
        name = self.string(org.get("Name"), f"{path}.Name")
        mspid = self.string(org.get("ID"), f"{path}.ID")
        if org.get("SkipAsForeign"):
            raise self.fail(f"{path}.SkipAsForeign", "is not supported by heddle")
        if org.get("MSPType", "bccsp") != "bccsp":
            raise self.fail(f"{path}.MSPType", "must be bccsp (the only MSP type heddle has)")
        msp_dir = self.directory(org.get("MSPDir"), f"{path}.MSPDir")
        policies = self.policies(org.get("Policies"), f"{path}.Policies")
        if not policies:
            # configtxgen's fallback when an org lists no policies.
            policies = {
                "Readers": PolicySpec("Signature", f"OR('{mspid}.member')"),
                "Writers": PolicySpec("Signature", f"OR('{mspid}.member')"),
                "Admins": PolicySpec("Signature", f"OR('{mspid}.admin')"),
            }
        endpoints = self.string_list(org.get("OrdererEndpoints"), f"{path}.OrdererEndpoints")
        anchors: list[tuple[str, int]] = []
        raw_anchors = org.get("AnchorPeers") or []
        if not isinstance(raw_anchors, list):
            raise self.fail(f"{path}.AnchorPeers", "must be a list of {Host, Port}")
        for i, raw_ap in enumerate(raw_anchors):
            apath = f"{path}.AnchorPeers[{i}]"
            ap = self.mapping(raw_ap, apath, _ANCHOR_KEYS)
            anchors.append(
                (self.string(ap.get("Host"), f"{apath}.Host"), self.port(ap.get("Port"), f"{apath}.Port"))
            )
        if orderer and anchors:
            raise self.fail(f"{path}.AnchorPeers", "only applies to application organizations")
        return OrgSpec(name, mspid, msp_dir, policies, endpoints, anchors)

    def organizations(self, value: Any, path: str, *, orderer: bool) -> list[OrgSpec]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, "must be a list of organizations")
        orgs = [self.organization(v, f"{path}[{i}]", orderer=orderer) for i, v in enumerate(value)]
        seen: set[str] = set()
        for i, org in enumerate(orgs):
            if org.name in seen:
                raise self.fail(f"{path}[{i}].Name", f"duplicates organization {org.name!r}")
            seen.add(org.name)
        return orgs

    def orderer(self, value: Any, path: str) -> OrdererSpec:
        o = self.mapping(value, path, _ORDERER_KEYS)
        otype = o.get("OrdererType", "solo")
        if otype not in ORDERER_TYPES:
            raise self.fail(
                f"{path}.OrdererType", f"must be one of {', '.join(ORDERER_TYPES)}, got {otype!r}"
            )
        batch = self.mapping(o.get("BatchSize"), f"{path}.BatchSize", _BATCH_KEYS, optional=True)
        bpath = f"{path}.BatchSize"
        max_count = self.positive_int(
            batch.get("MaxMessageCount", DEFAULT_MAX_MESSAGE_COUNT), f"{bpath}.MaxMessageCount"
        )
        absolute = self.size(
            batch.get("AbsoluteMaxBytes", DEFAULT_ABSOLUTE_MAX_BYTES), f"{bpath}.AbsoluteMaxBytes"
        )
        preferred = self.size(
            batch.get("PreferredMaxBytes", DEFAULT_PREFERRED_MAX_BYTES), f"{bpath}.PreferredMaxBytes"
        )
        if preferred > absolute:
            raise self.fail(
                f"{bpath}.PreferredMaxBytes", f"({preferred}) must not exceed AbsoluteMaxBytes ({absolute})"
            )
        timeout = self.duration(o.get("BatchTimeout", DEFAULT_BATCH_TIMEOUT), f"{path}.BatchTimeout")
        consenters: list[ConsenterSpec] = []
        options: RaftOptionsSpec | None = None
        if otype == "etcdraft":
            rpath = f"{path}.EtcdRaft"
            raft = self.mapping(o.get("EtcdRaft"), rpath, _RAFT_KEYS)
            raw = raft.get("Consenters")
            if not isinstance(raw, list) or not raw:
                raise self.fail(f"{rpath}.Consenters", "must list at least one consenter")
            for i, raw_c in enumerate(raw):
                cpath = f"{rpath}.Consenters[{i}]"
                c = self.mapping(raw_c, cpath, _CONSENTER_KEYS)
                consenters.append(
                    ConsenterSpec(
                        host=self.string(c.get("Host"), f"{cpath}.Host"),
                        port=self.port(c.get("Port"), f"{cpath}.Port"),
                        client_tls_cert=self.file_bytes(c.get("ClientTLSCert"), f"{cpath}.ClientTLSCert"),
                        server_tls_cert=self.file_bytes(c.get("ServerTLSCert"), f"{cpath}.ServerTLSCert"),
                    )
                )
            opath = f"{rpath}.Options"
            opts = {
                **DEFAULT_RAFT_OPTIONS,
                **self.mapping(raft.get("Options"), opath, _RAFT_OPTION_KEYS, optional=True),
            }
            options = RaftOptionsSpec(
                tick_interval=self.duration(opts["TickInterval"], f"{opath}.TickInterval"),
                election_tick=self.positive_int(opts["ElectionTick"], f"{opath}.ElectionTick"),
                heartbeat_tick=self.positive_int(opts["HeartbeatTick"], f"{opath}.HeartbeatTick"),
                max_inflight_blocks=self.positive_int(
                    opts["MaxInflightBlocks"], f"{opath}.MaxInflightBlocks"
                ),
                snapshot_interval_size=self.size(
                    opts["SnapshotIntervalSize"], f"{opath}.SnapshotIntervalSize"
                ),
            )
            if options.election_tick <= options.heartbeat_tick:
                raise self.fail(f"{opath}.ElectionTick", "must be greater than HeartbeatTick")
        elif o.get("EtcdRaft") is not None:
            raise self.fail(f"{path}.EtcdRaft", f"does not apply to OrdererType {otype}")
        orgs = self.organizations(o.get("Organizations"), f"{path}.Organizations", orderer=True)
        policies = self.policies(o.get("Policies"), f"{path}.Policies")
        return OrdererSpec(
            orderer_type=otype,
            addresses=self.string_list(o.get("Addresses"), f"{path}.Addresses"),
            batch_timeout=timeout,
            max_message_count=max_count,
            absolute_max_bytes=absolute,
            preferred_max_bytes=preferred,
            max_channels=self.non_negative_int(o.get("MaxChannels", 0), f"{path}.MaxChannels"),
            consenters=consenters,
            raft_options=options,
            organizations=orgs,
            policies=policies,
            capabilities=self.capabilities(o.get("Capabilities"), f"{path}.Capabilities"),
        )

    def application(self, value: Any, path: str) -> ApplicationSpec:
        a = self.mapping(value, path, _APPLICATION_KEYS)
        acls_raw = a.get("ACLs") or {}
        if not isinstance(acls_raw, dict):
            raise self.fail(f"{path}.ACLs", "must be a mapping of resource to policy")
        acls = {str(k): self.string(v, f"{path}.ACLs.{k}") for k, v in acls_raw.items()}
        return ApplicationSpec(
            organizations=self.organizations(a.get("Organizations"), f"{path}.Organizations", orderer=False),
            policies=self.policies(a.get("Policies"), f"{path}.Policies"),
            capabilities=self.capabilities(a.get("Capabilities"), f"{path}.Capabilities"),
            acls=acls,
        )


def profile_spec(
    configtx: dict[str, Any],
    profile: str,
    base_dir: str | os.PathLike[str] = ".",
    *,
    source: str = CONFIGTX_FILENAME,
) -> ProfileSpec:
    """Validate one profile of a loaded configtx.yaml; ConfigError names the bad key."""
    check = _Checker(os.fspath(base_dir), source)
    profiles = configtx.get("Profiles")
    if not isinstance(profiles, dict) or not profiles:
        raise check.fail("Profiles", "must be a mapping with at least one profile")
    if profile not in profiles:
        raise check.fail(
            f"Profiles.{profile}", f"not found (profiles: {', '.join(sorted(map(str, profiles)))})"
        )
    path = f"Profiles.{profile}"
    p = check.mapping(profiles[profile], path, _PROFILE_KEYS)
    if p.get("Consortiums") is not None:
        raise check.fail(
            f"{path}.Consortiums",
            "belongs to a system channel, which heddle does "
            "not have (channels are created with channel participation)",
        )
    if p.get("Orderer") is None:
        raise check.fail(f"{path}.Orderer", "is required to generate a genesis block")
    orderer = check.orderer(p["Orderer"], f"{path}.Orderer")
    application = None
    if p.get("Application") is not None:
        application = check.application(p["Application"], f"{path}.Application")
    consortium = p.get("Consortium") or ""
    if consortium:
        check.string(consortium, f"{path}.Consortium")
    return ProfileSpec(
        name=profile,
        orderer=orderer,
        application=application,
        policies=check.policies(p.get("Policies"), f"{path}.Policies"),
        capabilities=check.capabilities(p.get("Capabilities"), f"{path}.Capabilities"),
        consortium=consortium,
    )
