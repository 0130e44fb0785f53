"""Chaincode definitions and how ``_lifecycle`` keeps them in world state.

Committed definitions use Fabric's public layout in the ``_lifecycle`` namespace::

    namespaces/metadata/<name>                  StateMetadata{datatype "ChaincodeDefinition"}
    namespaces/fields/<name>/Sequence           StateData{Int64}
    namespaces/fields/<name>/EndorsementInfo    StateData{Bytes: ChaincodeEndorsementInfo}
    namespaces/fields/<name>/ValidationInfo     StateData{Bytes: ChaincodeValidationInfo}
    namespaces/fields/<name>/Collections        StateData{Bytes: CollectionConfigPackage}

Fabric keeps each org's approvals in that org's implicit private collection. Heddle has
no private data yet, so an org's approvals live in public state in the same namespace,
under a per-org prefix (readable by every channel member; only hashes would be public
in Fabric)::

    orgs/<MSPID>/namespaces/metadata/<name>#<seq>            datatype "ChaincodeParameters"
    orgs/<MSPID>/namespaces/fields/<name>#<seq>/{EndorsementInfo,ValidationInfo,Collections}
    orgs/<MSPID>/chaincode-sources/metadata/<name>#<seq>     datatype "ChaincodeLocalPackage"
    orgs/<MSPID>/chaincode-sources/fields/<name>#<seq>/PackageID   StateData{String}

A write under ``namespaces/`` must satisfy /Channel/Application/LifecycleEndorsement; a
write under ``orgs/<MSPID>/`` must be endorsed by a peer of that org.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fabric_protos.common import policies_pb2
from fabric_protos.peer import policy_pb2
from fabric_protos.peer.lifecycle import chaincode_definition_pb2 as cd_pb2
from fabric_protos.peer.lifecycle import db_pb2
from google.protobuf.message import DecodeError

from heddle.policy import PolicyError, SignedData, evaluate_signature_policy, parse_signature_policy

NAMESPACE = "_lifecycle"
LIFECYCLE_ENDORSEMENT = "/Channel/Application/LifecycleEndorsement"
DEFAULT_ENDORSEMENT_POLICY_REF = "/Channel/Application/Endorsement"
DEFAULT_ENDORSEMENT_PLUGIN = "escc"
DEFAULT_VALIDATION_PLUGIN = "vscc"

_DEFINITION_TYPE = "ChaincodeDefinition"
_PARAMETERS_TYPE = "ChaincodeParameters"
_PACKAGE_TYPE = "ChaincodeLocalPackage"
_ORG_PREFIX = "orgs/"


def default_validation_parameter() -> bytes:
    """ApplicationPolicy referring to the channel's Endorsement policy (Fabric's default)."""
    return policy_pb2.ApplicationPolicy(
        channel_config_policy_reference=DEFAULT_ENDORSEMENT_POLICY_REF
    ).SerializeToString()


@dataclass(frozen=True)
class ChaincodeDefinition:
    """What a channel agrees on for one chaincode (and, when known, this org's package)."""

    name: str
    sequence: int
    version: str
    endorsement_plugin: str = DEFAULT_ENDORSEMENT_PLUGIN
    validation_plugin: str = DEFAULT_VALIDATION_PLUGIN
    validation_parameter: bytes = field(default_factory=default_validation_parameter)
    init_required: bool = False
    collections: bytes = b""  # serialized CollectionConfigPackage; empty until private data lands
    package_id: str = ""

    def endorsement_info(self) -> cd_pb2.ChaincodeEndorsementInfo:
        return cd_pb2.ChaincodeEndorsementInfo(
            version=self.version, init_required=self.init_required, endorsement_plugin=self.endorsement_plugin
        )

    def validation_info(self) -> cd_pb2.ChaincodeValidationInfo:
        return cd_pb2.ChaincodeValidationInfo(
            validation_plugin=self.validation_plugin, validation_parameter=self.validation_parameter
        )

    def application_policy(self) -> policy_pb2.ApplicationPolicy:
        """The chaincode's endorsement policy (signature policy or channel policy reference)."""
        return policy_pb2.ApplicationPolicy.FromString(self.validation_parameter)

    def parameter_fields(self) -> dict[str, bytes]:
        """The fields every org must approve identically (Fabric's ChaincodeParameters)."""
        return {
            "EndorsementInfo": self.endorsement_info().SerializeToString(),
            "ValidationInfo": self.validation_info().SerializeToString(),
            "Collections": self.collections,
        }

    def mismatches(self, other: ChaincodeDefinition) -> list[str]:
        """Names of the parameter fields that differ from ``other`` (sequence not compared)."""
        mine, theirs = self.parameter_fields(), other.parameter_fields()
        return [name for name in sorted(mine) if mine[name] != theirs[name]]


# ----- keys -----


def definition_metadata_key(name: str) -> str:
    return f"namespaces/metadata/{name}"


def definition_field_key(name: str, fieldname: str) -> str:
    return f"namespaces/fields/{name}/{fieldname}"


def _org_prefix(mspid: str) -> str:
    return f"{_ORG_PREFIX}{mspid}/"


def approval_metadata_key(mspid: str, name: str, sequence: int) -> str:
    return f"{_org_prefix(mspid)}namespaces/metadata/{name}#{sequence}"


def approval_field_key(mspid: str, name: str, sequence: int, fieldname: str) -> str:
    return f"{_org_prefix(mspid)}namespaces/fields/{name}#{sequence}/{fieldname}"


def package_metadata_key(mspid: str, name: str, sequence: int) -> str:
    return f"{_org_prefix(mspid)}chaincode-sources/metadata/{name}#{sequence}"


def package_field_key(mspid: str, name: str, sequence: int) -> str:
    return f"{_org_prefix(mspid)}chaincode-sources/fields/{name}#{sequence}/PackageID"


def key_owner(key: str) -> str | None:
    """The MSP id whose approvals ``key`` belongs to, or None for a channel-wide key."""
    if not key.startswith(_ORG_PREFIX):
        return None
    mspid, sep, _ = key[len(_ORG_PREFIX) :].partition("/")
    return mspid if sep and mspid else None


# ----- reading and writing through a simulator or a state db -----


def _read(reader, key: str) -> bytes | None:
    """Read a key of ``_lifecycle`` from a TxSimulator (get_state) or a StateDB (get)."""
    if hasattr(reader, "get_state"):
        return reader.get_state(NAMESPACE, key)
    vv = reader.get(NAMESPACE, key)
    return None if vv is None else vv.value


def _state_data(raw: bytes | None, key: str) -> db_pb2.StateData:
    try:
        return db_pb2.StateData.FromString(raw or b"")
    except DecodeError as exc:
        raise ValueError(f"_lifecycle key {key!r} holds a malformed StateData: {exc}") from exc


def _metadata(raw: bytes | None, key: str) -> db_pb2.StateMetadata | None:
    if raw is None:
        return None
    try:
        return db_pb2.StateMetadata.FromString(raw)
    except DecodeError as exc:
        raise ValueError(f"_lifecycle key {key!r} holds a malformed StateMetadata: {exc}") from exc


def _put_metadata(sim, key: str, datatype: str, fields: Iterable[str]) -> None:
    sim.set_state(
        NAMESPACE, key, db_pb2.StateMetadata(datatype=datatype, fields=sorted(fields)).SerializeToString()
    )


def _bytes(value: bytes) -> bytes:
    return db_pb2.StateData(Bytes=value).SerializeToString()


def _definition_from_fields(name: str, sequence: int, endorsement: bytes, validation: bytes, collections):
    try:
        ei = cd_pb2.ChaincodeEndorsementInfo.FromString(endorsement)
        vi = cd_pb2.ChaincodeValidationInfo.FromString(validation)
    except DecodeError as exc:
        raise ValueError(f"chaincode definition of {name!r} is malformed: {exc}") from exc
    return ChaincodeDefinition(
        name=name,
        sequence=sequence,
        version=ei.version,
        endorsement_plugin=ei.endorsement_plugin,
        validation_plugin=vi.validation_plugin,
        validation_parameter=vi.validation_parameter,
        init_required=ei.init_required,
        collections=collections,
    )


def current_sequence(reader, name: str) -> int:
    """The committed sequence of ``name`` (0 when it was never defined)."""
    key = definition_field_key(name, "Sequence")
    raw = _read(reader, key)
    return 0 if raw is None else _state_data(raw, key).Int64


def committed_definition(state_reader, name: str) -> ChaincodeDefinition | None:
    """The definition committed on the channel for ``name``, or None.

    ``state_reader`` is a TxSimulator (reads are recorded) or a StateDB.
    """
    if _metadata(_read(state_reader, definition_metadata_key(name)), name) is None:
        return None
    fields = {}
    for f in ("Sequence", "EndorsementInfo", "ValidationInfo", "Collections"):
        key = definition_field_key(name, f)
        fields[f] = _state_data(_read(state_reader, key), key)
    return _definition_from_fields(
        name,
        fields["Sequence"].Int64,
        fields["EndorsementInfo"].Bytes,
        fields["ValidationInfo"].Bytes,
        fields["Collections"].Bytes,
    )


def committed_definitions(state_db) -> list[ChaincodeDefinition]:
    """Every committed definition, by name (a StateDB or anything with range(ns, start, end))."""
    prefix = "namespaces/metadata/"
    names = []
    if hasattr(state_db, "get_state_range"):
        it = state_db.get_state_range(NAMESPACE, prefix, prefix + "\U0010ffff")
        try:
            names = [k[len(prefix) :] for k, _ in it]
        finally:
            close = getattr(it, "close", None)
            if close:
                close()
    else:
        names = [k[len(prefix) :] for k, _ in state_db.range(NAMESPACE, prefix, prefix + "\U0010ffff")]
    out = [committed_definition(state_db, n) for n in names]
    return [d for d in out if d is not None]


def write_definition(sim, definition: ChaincodeDefinition) -> None:
    name = definition.name
    fields = definition.parameter_fields()
    _put_metadata(sim, definition_metadata_key(name), _DEFINITION_TYPE, [*fields, "Sequence"])
    sim.set_state(
        NAMESPACE,
        definition_field_key(name, "Sequence"),
        db_pb2.StateData(Int64=definition.sequence).SerializeToString(),
    )
    for f, value in fields.items():
        sim.set_state(NAMESPACE, definition_field_key(name, f), _bytes(value))


def approved_definition(state_reader, mspid: str, name: str, sequence: int) -> ChaincodeDefinition | None:
    """What ``mspid`` approved for ``name`` at ``sequence`` (with its package id), or None."""
    if _metadata(_read(state_reader, approval_metadata_key(mspid, name, sequence)), name) is None:
        return None
    values = {}
    for f in ("EndorsementInfo", "ValidationInfo", "Collections"):
        key = approval_field_key(mspid, name, sequence, f)
        values[f] = _state_data(_read(state_reader, key), key).Bytes
    definition = _definition_from_fields(
        name, sequence, values["EndorsementInfo"], values["ValidationInfo"], values["Collections"]
    )
    pkg = approved_package_id(state_reader, mspid, name, sequence) or ""
    return ChaincodeDefinition(**{**definition.__dict__, "package_id": pkg})


def approved_package_id(state_reader, mspid: str, name: str, sequence: int) -> str | None:
    """The package ``mspid`` approved to run ``name`` at ``sequence`` (what its peers run)."""
    key = package_field_key(mspid, name, sequence)
    raw = _read(state_reader, key)
    if raw is None:
        return None
    pkg = _state_data(raw, key).String
    return pkg or None


def write_approval(sim, mspid: str, definition: ChaincodeDefinition) -> None:
    name, seq = definition.name, definition.sequence
    fields = definition.parameter_fields()
    _put_metadata(sim, approval_metadata_key(mspid, name, seq), _PARAMETERS_TYPE, fields)
    for f, value in fields.items():
        sim.set_state(NAMESPACE, approval_field_key(mspid, name, seq, f), _bytes(value))
    _put_metadata(sim, package_metadata_key(mspid, name, seq), _PACKAGE_TYPE, ["PackageID"])
    sim.set_state(
        NAMESPACE,
        package_field_key(mspid, name, seq),
        db_pb2.StateData(String=definition.package_id).SerializeToString(),
    )


# ----- which policy a write to _lifecycle must satisfy (for validation) -----


class LifecycleKeyError(PolicyError):
    """A write to a ``_lifecycle`` key that no lifecycle operation makes (fails validation)."""


def validation_policy_for_lifecycle_write(state, key: str) -> str | policies_pb2.SignaturePolicyEnvelope:
    """The policy the endorsements of a transaction writing ``key`` in ``_lifecycle`` must meet.

    Channel-wide keys (committed definitions): the channel policy path
    /Channel/Application/LifecycleEndorsement. ``orgs/<MSPID>/...`` keys (that org's
    approvals): the signature policy OR('<MSPID>.peer'). ``key`` "" (an action that wrote
    nothing) gets LifecycleEndorsement. Raises LifecycleKeyError (a PolicyError) for any
    other key. ``state`` is not consulted: the policy follows from the key's place in the
    layout; it is there so validation can pass its committed state as for other lookups.
    """
    owner = key_owner(key)
    if owner is None:
        if key == "" or key.startswith("namespaces/"):
            return LIFECYCLE_ENDORSEMENT
        raise LifecycleKeyError(f"write to unknown _lifecycle key {key!r}")
    try:
        return parse_signature_policy(f"OR('{owner}.peer')")
    except PolicyError as exc:
        raise LifecycleKeyError(f"_lifecycle key {key!r} names an invalid MSP id {owner!r}: {exc}") from exc


def evaluate_lifecycle_write(channel_config, key: str, signed_data: Sequence[SignedData]) -> None:
    """Raise PolicyError unless ``signed_data`` (endorsements) may write ``key`` in ``_lifecycle``."""
    policy = validation_policy_for_lifecycle_write(None, key)
    if isinstance(policy, str):
        channel_config.policies.evaluate(policy, signed_data)
    else:
        evaluate_signature_policy(
            policy, signed_data, channel_config.msp_manager, name=f"_lifecycle key {key!r}"
        )
