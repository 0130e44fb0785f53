"""Config updates: check a CONFIG_UPDATE against the current config, and diff two configs.

A ConfigUpdate carries a read set (elements and the versions the author saw) and a
write set. An element of the write set whose version differs from the read set's is
a change: it must be at the current version + 1 (or 0 for a new element under a
changed group) and its *current* mod_policy must be satisfied by the ConfigSignatures.
A group's mod_policy is resolved relative to the group itself; a value's or policy's
relative to the group holding it; a path starting with "/" is absolute.
A changed group's write-set entry lists its complete set of children (that is how
elements are added and removed); an unchanged group keeps its current children.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fabric_protos.common import common_pb2, configtx_pb2
from google.protobuf.message import DecodeError

from heddle.channelconfig.errors import ConfigError
from heddle.channelconfig.parse import ChannelConfig, channel_config_from_config
from heddle.protocol import (
    ProtocolError,
    make_channel_header,
    make_signature_header,
    parse_envelope,
)

_GROUP, _VALUE, _POLICY = "group", "value", "policy"
_ROOT = "Channel"


@dataclass(frozen=True)
class _Element:
    kind: str  # group | value | policy
    path: tuple[str, ...]  # ("Channel", "Application", "Org1MSP", "MSP")
    message: Any  # ConfigGroup | ConfigValue | ConfigPolicy

    @property
    def version(self) -> int:
        return self.message.version

    @property
    def mod_policy(self) -> str:
        return self.message.mod_policy

    def describe(self) -> str:
        return f"{self.kind} /{'/'.join(self.path)}"


_Key = tuple[str, tuple[str, ...]]


def _flatten(root: configtx_pb2.ConfigGroup) -> dict[_Key, _Element]:
    out: dict[_Key, _Element] = {}

    def walk(group: configtx_pb2.ConfigGroup, path: tuple[str, ...]) -> None:
        out[(_GROUP, path)] = _Element(_GROUP, path, group)
        for name, value in group.values.items():
            out[(_VALUE, (*path, name))] = _Element(_VALUE, (*path, name), value)
        for name, policy in group.policies.items():
            out[(_POLICY, (*path, name))] = _Element(_POLICY, (*path, name), policy)
        for name, child in group.groups.items():
            walk(child, (*path, name))

    walk(root, (_ROOT,))
    return out


def _children(group: configtx_pb2.ConfigGroup, path: tuple[str, ...]) -> list[_Key]:
    keys: list[_Key] = [(_VALUE, (*path, n)) for n in sorted(group.values)]
    keys += [(_POLICY, (*path, n)) for n in sorted(group.policies)]
    keys += [(_GROUP, (*path, n)) for n in sorted(group.groups)]
    return keys


def mod_policy_path(kind: str, path: Sequence[str], mod_policy: str) -> str:
    """The absolute policy path a mod_policy names for an element at ``path``."""
    if mod_policy.startswith("/"):
        return mod_policy
    base = list(path) if kind == _GROUP else list(path[:-1])
    return "/" + "/".join([*base, mod_policy])


def _check_mod_policy_syntax(element: _Element) -> None:
    mp = element.mod_policy
    if not mp:
        raise ConfigError(f"config update rejected: {element.describe()} has an empty mod_policy")
    parts = mp[1:].split("/") if mp.startswith("/") else mp.split("/")
    if any(not p for p in parts):
        raise ConfigError(f"config update rejected: {element.describe()} has a malformed mod_policy {mp!r}")


@dataclass(frozen=True)
class ConfigUpdateRequest:
    """The decoded layers of a CONFIG_UPDATE envelope."""

    channel_id: str
    config_update: configtx_pb2.ConfigUpdate
    config_update_bytes: bytes
    signatures: tuple[configtx_pb2.ConfigSignature, ...]
    envelope: common_pb2.Envelope


def parse_config_update_envelope(envelope: common_pb2.Envelope | bytes) -> ConfigUpdateRequest:
    """Decode an Envelope of type CONFIG_UPDATE down to its ConfigUpdate."""
    try:
        parsed = parse_envelope(envelope)
    except ProtocolError as exc:
        raise ConfigError(f"config update: {exc}") from exc
    if parsed.header_type != common_pb2.HeaderType.CONFIG_UPDATE:
        raise ConfigError(
            "config update: envelope header type is "
            f"{common_pb2.HeaderType.Name(parsed.header_type)}, not CONFIG_UPDATE"
        )
    cue = configtx_pb2.ConfigUpdateEnvelope()
    update = configtx_pb2.ConfigUpdate()
    try:
        cue.ParseFromString(parsed.payload.data)
        update.ParseFromString(cue.config_update)
    except DecodeError as exc:
        raise ConfigError(f"config update: malformed ConfigUpdateEnvelope: {exc}") from exc
    if parsed.channel_id and parsed.channel_id != update.channel_id:
        raise ConfigError(
            f"config update: envelope is for channel {parsed.channel_id!r} but "
            f"its ConfigUpdate is for {update.channel_id!r}"
        )
    return ConfigUpdateRequest(
        update.channel_id, update, cue.config_update, tuple(cue.signatures), parsed.envelope
    )


def _signed_data(request: ConfigUpdateRequest, include_envelope_signer: bool) -> list[Any]:
    from heddle.policy import SignedData

    out = []
    for i, sig in enumerate(request.signatures):
        header = common_pb2.SignatureHeader()
        try:
            header.ParseFromString(sig.signature_header)
        except DecodeError as exc:
            raise ConfigError(
                f"config update: signature {i} has a malformed signature header: {exc}"
            ) from exc
        out.append(
            SignedData(
                data=sig.signature_header + request.config_update_bytes,
                identity=header.creator,
                signature=sig.signature,
            )
        )
    if include_envelope_signer:
        parsed = parse_envelope(request.envelope)
        out.append(
            SignedData(
                data=request.envelope.payload, identity=parsed.creator, signature=request.envelope.signature
            )
        )
    return out


def propose_config(
    current: ChannelConfig,
    update_env: common_pb2.Envelope | bytes,
    *,
    include_envelope_signer: bool = False,
) -> configtx_pb2.ConfigEnvelope:
    """The next ConfigEnvelope (sequence + 1, last_update = the envelope) for an update.

    Raises ConfigError naming the element and the policy when the update is stale,
    malformed or not signed by enough of the right identities. As in Fabric, only the
    ConfigSignatures count toward mod_policies; pass ``include_envelope_signer=True``
    to also count the signature of the envelope's creator.
    """
    request = parse_config_update_envelope(update_env)
    if request.channel_id != current.channel_id:
        raise ConfigError(f"config update is for channel {request.channel_id!r}, not {current.channel_id!r}")
    update = request.config_update
    existing = _flatten(current.config.channel_group)
    read = _flatten(update.read_set)
    write = _flatten(update.write_set)

    for key, element in sorted(read.items()):
        have = existing.get(key)
        if have is None:
            raise ConfigError(
                f"config update rejected: the read set has {element.describe()}, "
                "which is not in the current config"
            )
        if have.version != element.version:
            raise ConfigError(
                f"config update rejected: the read set expects "
                f"{element.describe()} at version {element.version} but it is at "
                f"version {have.version} (the update was computed against a "
                "different config; recompute it)"
            )

    delta = {k: e for k, e in write.items() if k not in read or read[k].version != e.version}
    if not delta:
        raise ConfigError("config update rejected: the write set changes nothing")

    signed_data = _signed_data(request, include_envelope_signer)
    from heddle.policy import PolicyError

    for key, element in sorted(delta.items()):
        _check_mod_policy_syntax(element)
        have = existing.get(key)
        if have is None:
            parent = (_GROUP, element.path[:-1])
            if element.version != 0:
                raise ConfigError(
                    f"config update rejected: new {element.describe()} must have "
                    f"version 0, not {element.version}"
                )
            if parent not in delta:
                raise ConfigError(
                    f"config update rejected: adding {element.describe()} "
                    f"requires modifying its parent group /"
                    f"{'/'.join(element.path[:-1])} (bump its version)"
                )
            continue
        if element.version != have.version + 1:
            raise ConfigError(
                f"config update rejected: {element.describe()} is at version "
                f"{have.version}, so a change must set version {have.version + 1}, "
                f"not {element.version}"
            )
        policy = mod_policy_path(have.kind, have.path, have.mod_policy)
        try:
            current.policies.evaluate(policy, signed_data)
        except PolicyError as exc:
            raise ConfigError(
                f"config update rejected: modifying {have.describe()} requires "
                f"its mod_policy {policy} ({have.mod_policy}), which the "
                f"signatures do not satisfy: {exc}"
            ) from exc

    root = _rebuild((_ROOT,), existing, delta)
    config = configtx_pb2.Config(sequence=current.sequence + 1, channel_group=root)
    proposed = channel_config_from_config(current.channel_id, config)
    _check_transition(current, proposed)
    last_update = common_pb2.Envelope()
    last_update.CopyFrom(request.envelope)
    return configtx_pb2.ConfigEnvelope(config=config, last_update=last_update)


def _rebuild(
    path: tuple[str, ...], existing: dict[_Key, _Element], delta: dict[_Key, _Element]
) -> configtx_pb2.ConfigGroup:
    key = (_GROUP, path)
    source = delta.get(key) or existing[key]
    group = configtx_pb2.ConfigGroup(version=source.version, mod_policy=source.mod_policy)
    for child_key in _children(source.message, path):
        kind, child_path = child_key
        name = child_path[-1]
        if kind == _GROUP:
            group.groups[name].CopyFrom(_rebuild(child_path, existing, delta))
            continue
        element = delta.get(child_key) or existing.get(child_key)
        if element is None:  # unreachable after the read-set and delta checks
            raise ConfigError(
                f"config update rejected: {kind} /{'/'.join(child_path)} is "
                "listed but neither exists nor is being added"
            )
        target = group.values[name] if kind == _VALUE else group.policies[name]
        target.CopyFrom(element.message)
    return group


def _check_transition(current: ChannelConfig, proposed: ChannelConfig) -> None:
    if proposed.orderer.consensus_type != current.orderer.consensus_type:
        raise ConfigError(
            "config update rejected: ConsensusType cannot change from "
            f"{current.orderer.consensus_type} to "
            f"{proposed.orderer.consensus_type}"
        )


# -- computing an update (configtxlator compute_update) ------------------------------


def _same_value(a: Any, b: Any) -> bool:
    return a.mod_policy == b.mod_policy and a.SerializeToString(deterministic=True) == b.SerializeToString(
        deterministic=True
    )


def _reset_versions(group: configtx_pb2.ConfigGroup) -> configtx_pb2.ConfigGroup:
    out = configtx_pb2.ConfigGroup()
    out.CopyFrom(group)

    def walk(g: configtx_pb2.ConfigGroup) -> None:
        g.version = 0
        for v in g.values.values():
            v.version = 0
        for p in g.policies.values():
            p.version = 0
        for c in g.groups.values():
            walk(c)

    walk(out)
    return out


def _leaf_maps(original: Any, updated: Any, make: type) -> tuple[dict, dict, dict, bool]:
    """(read, write, same, membership_changed) for a map of values or policies."""
    read: dict[str, Any] = {}
    write: dict[str, Any] = {}
    same: dict[str, Any] = {}
    changed = set(original) != set(updated)
    for name, orig in original.items():
        if name not in updated:
            continue
        new = updated[name]
        comparable_new = make()
        comparable_new.CopyFrom(new)
        comparable_new.version = orig.version
        if _same_value(orig, comparable_new):
            same[name] = make(version=orig.version)
        else:
            comparable_new.version = orig.version + 1
            write[name] = comparable_new
    for name, new in updated.items():
        if name not in original:
            fresh = make()
            fresh.CopyFrom(new)
            fresh.version = 0
            write[name] = fresh
    return read, write, same, changed


def _group_update(
    original: configtx_pb2.ConfigGroup, updated: configtx_pb2.ConfigGroup
) -> tuple[configtx_pb2.ConfigGroup, configtx_pb2.ConfigGroup, bool]:
    rp, wp, sp, cp = _leaf_maps(original.policies, updated.policies, configtx_pb2.ConfigPolicy)
    rv, wv, sv, cv = _leaf_maps(original.values, updated.values, configtx_pb2.ConfigValue)
    rg: dict[str, configtx_pb2.ConfigGroup] = {}
    wg: dict[str, configtx_pb2.ConfigGroup] = {}
    sg: dict[str, configtx_pb2.ConfigGroup] = {}
    cg = set(original.groups) != set(updated.groups)
    for name, orig in original.groups.items():
        if name not in updated.groups:
            continue
        r, w, changed = _group_update(orig, updated.groups[name])
        if changed:
            rg[name], wg[name] = r, w
        else:
            sg[name] = configtx_pb2.ConfigGroup(version=orig.version)
    for name, new in updated.groups.items():
        if name not in original.groups:
            wg[name] = _reset_versions(new)

    def group(
        version: int, policies: dict, values: dict, groups: dict, mod_policy: str = ""
    ) -> configtx_pb2.ConfigGroup:
        g = configtx_pb2.ConfigGroup(version=version, mod_policy=mod_policy)
        for k, v in policies.items():
            g.policies[k].CopyFrom(v)
        for k, v in values.items():
            g.values[k].CopyFrom(v)
        for k, v in groups.items():
            g.groups[k].CopyFrom(v)
        return g

    membership_changed = cp or cv or cg or original.mod_policy != updated.mod_policy
    if not membership_changed:
        if not (rp or wp or rv or wv or rg or wg):
            return (
                configtx_pb2.ConfigGroup(version=original.version),
                configtx_pb2.ConfigGroup(version=original.version),
                False,
            )
        return (group(original.version, rp, rv, rg), group(original.version, wp, wv, wg), True)
    return (
        group(original.version, {**rp, **sp}, {**rv, **sv}, {**rg, **sg}),
        group(original.version + 1, {**wp, **sp}, {**wv, **sv}, {**wg, **sg}, updated.mod_policy),
        True,
    )


def compute_update(
    channel_id: str, original: configtx_pb2.Config, updated: configtx_pb2.Config
) -> configtx_pb2.ConfigUpdate:
    """The ConfigUpdate that turns ``original`` into ``updated`` (configtxlator's diff)."""
    read, write, changed = _group_update(original.channel_group, updated.channel_group)
    if not changed:
        raise ConfigError("no differences between the original and updated config")
    return configtx_pb2.ConfigUpdate(channel_id=channel_id, read_set=read, write_set=write)


# -- signing and wrapping ------------------------------------------------------------


def sign_config_update(
    config_update: configtx_pb2.ConfigUpdate | bytes, signer: Any
) -> configtx_pb2.ConfigSignature:
    """A ConfigSignature by ``signer`` (has .serialized and .sign(msg), e.g. a SigningIdentity).

    Signs ``signature_header || config_update bytes``, as Fabric's peers and SDKs do.
    """
    update_bytes = config_update if isinstance(config_update, bytes) else config_update.SerializeToString()
    header = make_signature_header(signer.serialized).SerializeToString()
    return configtx_pb2.ConfigSignature(signature_header=header, signature=signer.sign(header + update_bytes))


def config_update_envelope(
    config_update: configtx_pb2.ConfigUpdate,
    signers: Iterable[Any],
    submitter: Any,
) -> common_pb2.Envelope:
    """A CONFIG_UPDATE envelope carrying ConfigSignatures of ``signers``, signed by
    ``submitter`` (who, like ``peer channel update``, should be among the signers)."""
    update_bytes = config_update.SerializeToString()
    cue = configtx_pb2.ConfigUpdateEnvelope(
        config_update=update_bytes,
        signatures=[sign_config_update(update_bytes, s) for s in signers],
    )
    signature_header = make_signature_header(submitter.serialized)
    channel_header = make_channel_header(common_pb2.HeaderType.CONFIG_UPDATE, config_update.channel_id)
    payload = common_pb2.Payload(
        header=common_pb2.Header(
            channel_header=channel_header.SerializeToString(),
            signature_header=signature_header.SerializeToString(),
        ),
        data=cue.SerializeToString(),
    )
    payload_bytes = payload.SerializeToString()
    return common_pb2.Envelope(payload=payload_bytes, signature=submitter.sign(payload_bytes))
