"""``_lifecycle``: the system chaincode that installs packages and defines chaincodes.

It runs in-process on the peer. Channel functions read and write world state only
through the TxSimulator of the proposal (``ctx.simulator``), so their effects reach the
ledger as an ordinary read/write set, validated under the policies of
``validation_policy_for_lifecycle_write``.

Access checks made here (the endorser's channel Writers check for peer/Propose comes
first and is not repeated):
- InstallChaincode, QueryInstalledChaincode(s), GetInstalledChaincodePackage: the creator
  is an admin of the peer's local MSP (no channel).
- ApproveChaincodeDefinitionForMyOrg: the creator is an admin of the peer's org.
- CheckCommitReadiness, CommitChaincodeDefinition, QueryChaincodeDefinition(s): the
  channel ACL ``_lifecycle/<Function>`` if the channel config sets one, else
  /Channel/Application/Writers (Fabric's defaults).
- QueryApprovedChaincodeDefinition: ``_lifecycle/QueryApprovedChaincodeDefinition`` if set,
  else /Channel/Application/Readers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fabric_protos.common import policies_pb2
from fabric_protos.msp import msp_principal_pb2
from fabric_protos.peer import collection_pb2, policy_pb2
from fabric_protos.peer.lifecycle import lifecycle_pb2 as lb
from google.protobuf.message import DecodeError

from heddle.chaincode.lifecycle.definitions import (
    DEFAULT_ENDORSEMENT_PLUGIN,
    DEFAULT_VALIDATION_PLUGIN,
    ChaincodeDefinition,
    approved_definition,
    committed_definition,
    committed_definitions,
    current_sequence,
    default_validation_parameter,
    write_approval,
    write_definition,
)
from heddle.chaincode.lifecycle.packages import AlreadyInstalled, PackageError, PackageStore
from heddle.chaincode.system.base import SccError
from heddle.policy import PolicyError, SignedData

NAME = "_lifecycle"
WRITERS = "/Channel/Application/Writers"
READERS = "/Channel/Application/Readers"

# Fabric's rules for chaincode names and versions
_CC_NAME = re.compile(r"^[a-zA-Z0-9]+([-_][a-zA-Z0-9]+)*$")
_CC_VERSION = re.compile(r"^[A-Za-z0-9_.+-]+$")
_SYSTEM_NAMES = {"_lifecycle", "lscc", "cscc", "qscc", "escc", "vscc"}

LOCAL_ADMIN_FUNCTIONS = (
    "InstallChaincode",
    "QueryInstalledChaincode",
    "QueryInstalledChaincodes",
    "GetInstalledChaincodePackage",
)
CHANNEL_FUNCTIONS = (
    "ApproveChaincodeDefinitionForMyOrg",
    "CheckCommitReadiness",
    "CommitChaincodeDefinition",
    "QueryApprovedChaincodeDefinition",
    "QueryChaincodeDefinition",
    "QueryChaincodeDefinitions",
)
FUNCTIONS = LOCAL_ADMIN_FUNCTIONS + CHANNEL_FUNCTIONS


@dataclass
class SccContext:
    """What the endorser gives ``_lifecycle`` for one call.

    ``creator`` is the proposal creator's identity, already deserialized by the channel's
    (or, channel-less, the local) MSP and its signature checked; ``signed_data`` is the
    proposal's SignedData, for channel ACL policies; ``simulator`` is None for
    channel-less calls.
    """

    simulator: Any
    channel: Any  # heddle.peer.channel.PeerChannel | None
    creator: Any  # heddle.msp.Identity
    local_mspid: str
    package_store: PackageStore
    signed_data: list[SignedData] | None = None
    # channels of this peer, for QueryInstalledChaincode(s) references: {channel_id: PeerChannel}
    channels: dict[str, Any] | None = None


def _parse(message, data: bytes, function: str):
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise SccError(400, f"failed to decode input arg to '{function}': {exc}") from exc
    return message


def _admin_principal(mspid: str) -> msp_principal_pb2.MSPPrincipal:
    return msp_principal_pb2.MSPPrincipal(
        principal_classification=msp_principal_pb2.MSPPrincipal.ROLE,
        principal=msp_principal_pb2.MSPRole(
            msp_identifier=mspid, role=msp_principal_pb2.MSPRole.ADMIN
        ).SerializeToString(),
    )


class LifecycleScc:
    """The ``_lifecycle`` system chaincode (Fabric's function names and messages)."""

    name = NAME

    def invoke(self, function: str, args: list[bytes], ctx: SccContext) -> bytes:
        """Run ``function`` with its one protobuf argument; return the serialized result."""
        handler: Callable[[bytes, SccContext], Any] | None = getattr(self, f"_{function}", None)
        if function not in FUNCTIONS or handler is None:
            raise SccError(
                400, f"unknown function '{function}' for _lifecycle; known: {', '.join(FUNCTIONS)}"
            )
        if len(args) != 1:
            raise SccError(
                400, f"lifecycle scc operations require exactly two arguments but received {len(args) + 1}"
            )
        if function in LOCAL_ADMIN_FUNCTIONS:
            self._check_local_admin(function, ctx)
        else:
            if ctx.channel is None or ctx.simulator is None:
                raise SccError(400, f"_lifecycle {function} must be invoked on a channel")
            self._check_channel_acl(function, ctx)
        result = handler(args[0], ctx)
        return result.SerializeToString()

    # ----- access -----
    def _check_local_admin(self, function: str, ctx: SccContext) -> None:
        creator = ctx.creator
        if (
            creator is None
            or creator.mspid != ctx.local_mspid
            or not creator.satisfies_principal(_admin_principal(ctx.local_mspid))
        ):
            who = f"{creator.mspid} identity" if creator is not None else "an unknown identity"
            raise SccError(
                403,
                f"access denied for [{function}]: creator ({who}) is not an admin of the "
                f"local MSP {ctx.local_mspid}",
            )

    def _check_channel_acl(self, function: str, ctx: SccContext) -> None:
        if function == "ApproveChaincodeDefinitionForMyOrg":
            self._check_local_admin(function, ctx)
            return
        config = ctx.channel.config
        acls = config.application.acls if config.application is not None else {}
        default = READERS if function == "QueryApprovedChaincodeDefinition" else WRITERS
        policy = acls.get(f"{NAME}/{function}", default)
        if not policy.startswith("/"):
            policy = f"/Channel/Application/{policy}"
        if ctx.signed_data is None:
            return  # the endorser has checked the ACL itself
        try:
            config.policies.evaluate(policy, ctx.signed_data)
        except PolicyError as exc:
            raise SccError(
                403, f"access denied for [{function}][{ctx.channel.channel_id}]: policy {policy}: {exc}"
            ) from exc

    # ----- install -----
    def _InstallChaincode(self, raw: bytes, ctx: SccContext) -> lb.InstallChaincodeResult:
        args = _parse(lb.InstallChaincodeArgs(), raw, "InstallChaincode")
        try:
            pkg_id = ctx.package_store.install(args.chaincode_install_package)
        except AlreadyInstalled as exc:
            raise SccError(500, str(exc)) from exc
        except PackageError as exc:
            raise SccError(400, f"could not parse as a chaincode install package: {exc}") from exc
        return lb.InstallChaincodeResult(package_id=pkg_id, label=pkg_id.rpartition(":")[0])

    def _references(self, pkg_id: str, ctx: SccContext) -> dict[str, list[tuple[str, str]]]:
        """Per channel, the committed chaincodes whose definition runs ``pkg_id`` in this org."""
        out: dict[str, list[tuple[str, str]]] = {}
        for channel_id, channel in sorted((ctx.channels or {}).items()):
            state = getattr(getattr(channel, "ledger", None), "state", None)
            if state is None:
                continue
            try:
                for d in committed_definitions(state):
                    approved = approved_definition(state, ctx.local_mspid, d.name, d.sequence)
                    if approved is not None and approved.package_id == pkg_id:
                        out.setdefault(channel_id, []).append((d.name, d.version))
            except (ValueError, AttributeError):
                continue
        return out

    @staticmethod
    def _fill_references(msg, refs: dict[str, list[tuple[str, str]]]) -> None:
        for channel_id, ccs in refs.items():
            entry = msg.references[channel_id]
            for name, version in ccs:
                entry.chaincodes.add(name=name, version=version)

    def _QueryInstalledChaincode(self, raw: bytes, ctx: SccContext) -> lb.QueryInstalledChaincodeResult:
        args = _parse(lb.QueryInstalledChaincodeArgs(), raw, "QueryInstalledChaincode")
        pkg = ctx.package_store.get(args.package_id)
        if pkg is None:
            raise SccError(404, f"could not find chaincode with package id '{args.package_id}'")
        result = lb.QueryInstalledChaincodeResult(package_id=pkg.package_id, label=pkg.label)
        self._fill_references(result, self._references(pkg.package_id, ctx))
        return result

    def _QueryInstalledChaincodes(self, raw: bytes, ctx: SccContext) -> lb.QueryInstalledChaincodesResult:
        _parse(lb.QueryInstalledChaincodesArgs(), raw, "QueryInstalledChaincodes")
        result = lb.QueryInstalledChaincodesResult()
        for pkg in ctx.package_store.installed():
            entry = result.installed_chaincodes.add(package_id=pkg.package_id, label=pkg.label)
            self._fill_references(entry, self._references(pkg.package_id, ctx))
        return result

    def _GetInstalledChaincodePackage(
        self, raw: bytes, ctx: SccContext
    ) -> lb.GetInstalledChaincodePackageResult:
        args = _parse(lb.GetInstalledChaincodePackageArgs(), raw, "GetInstalledChaincodePackage")
        data = ctx.package_store.package_bytes(args.package_id)
        if data is None:
            raise SccError(404, f"could not find chaincode with package id '{args.package_id}'")
        return lb.GetInstalledChaincodePackageResult(chaincode_install_package=data)

    # ----- definitions -----
    @staticmethod
    def _definition(args, function: str, package_id: str = "") -> ChaincodeDefinition:
        """A definition from Approve/CheckCommitReadiness/Commit args, with Fabric's defaults."""
        name = args.name
        if not name:
            raise SccError(400, f"{function}: chaincode name is required")
        if name in _SYSTEM_NAMES:
            raise SccError(400, f"chaincode name '{name}' is the name of a system chaincode")
        if not _CC_NAME.match(name):
            raise SccError(
                400,
                f"invalid chaincode name '{name}'. Names can only consist of alphanumerics, '_', and '-' "
                "and can only begin with alphanumerics",
            )
        if not _CC_VERSION.match(args.version):
            raise SccError(
                400,
                f"invalid chaincode version '{args.version}'. Versions can only consist of alphanumerics, "
                "'_', '-', '+', and '.'",
            )
        if args.sequence < 1:
            raise SccError(400, f"{function}: sequence must be at least 1, got {args.sequence}")
        if args.HasField("collections") and len(args.collections.config) > 0:
            raise SccError(400, "private data is not supported yet: collections must be empty")
        validation_parameter = args.validation_parameter or default_validation_parameter()
        try:
            policy = policy_pb2.ApplicationPolicy.FromString(validation_parameter)
        except DecodeError as exc:
            raise SccError(400, f"validation parameter is not an ApplicationPolicy: {exc}") from exc
        if policy.WhichOneof("Type") is None:
            raise SccError(400, "validation parameter (ApplicationPolicy) names no policy")
        return ChaincodeDefinition(
            name=name,
            sequence=args.sequence,
            version=args.version,
            endorsement_plugin=args.endorsement_plugin or DEFAULT_ENDORSEMENT_PLUGIN,
            validation_plugin=args.validation_plugin or DEFAULT_VALIDATION_PLUGIN,
            validation_parameter=validation_parameter,
            init_required=args.init_required,
            collections=b"",
            package_id=package_id,
        )

    def _ApproveChaincodeDefinitionForMyOrg(
        self, raw: bytes, ctx: SccContext
    ) -> lb.ApproveChaincodeDefinitionForMyOrgResult:
        args = _parse(lb.ApproveChaincodeDefinitionForMyOrgArgs(), raw, "ApproveChaincodeDefinitionForMyOrg")
        pkg = (
            args.source.local_package.package_id if args.source.WhichOneof("Type") == "local_package" else ""
        )
        definition = self._definition(args, "ApproveChaincodeDefinitionForMyOrg", pkg)
        sim, name, seq = ctx.simulator, definition.name, definition.sequence
        current = current_sequence(sim, name)
        if seq < current:
            raise SccError(
                409, f"currently defined sequence {current} is larger than requested sequence {seq}"
            )
        if seq > current + 1:
            raise SccError(
                409,
                f"requested sequence {seq} is larger than the next available sequence number {current + 1}",
            )
        if seq == current:
            committed = committed_definition(sim, name)
            diff = committed.mismatches(definition) if committed is not None else []
            if diff:
                raise SccError(
                    409,
                    f"attempted to redefine the current committed sequence ({current}) for namespace "
                    f"{name} with different parameters: {', '.join(diff)} differ",
                )
        write_approval(sim, ctx.local_mspid, definition)
        return lb.ApproveChaincodeDefinitionForMyOrgResult()

    def _approvals(self, ctx: SccContext, definition: ChaincodeDefinition):
        """Per channel org: (approved identically?, mismatching fields)."""
        out: dict[str, tuple[bool, list[str]]] = {}
        for mspid in _channel_mspids(ctx.channel):
            approved = approved_definition(ctx.simulator, mspid, definition.name, definition.sequence)
            if approved is None:
                out[mspid] = (False, [])
            else:
                diff = approved.mismatches(definition)
                out[mspid] = (not diff, diff)
        return out

    def _check_next_sequence(self, ctx: SccContext, definition: ChaincodeDefinition) -> None:
        current = current_sequence(ctx.simulator, definition.name)
        if definition.sequence != current + 1:
            raise SccError(
                409,
                f"requested sequence is {definition.sequence}, "
                f"but new definition must be sequence {current + 1}",
            )

    def _CheckCommitReadiness(self, raw: bytes, ctx: SccContext) -> lb.CheckCommitReadinessResult:
        args = _parse(lb.CheckCommitReadinessArgs(), raw, "CheckCommitReadiness")
        definition = self._definition(args, "CheckCommitReadiness")
        self._check_next_sequence(ctx, definition)
        result = lb.CheckCommitReadinessResult()
        for mspid, (ok, diff) in self._approvals(ctx, definition).items():
            result.approvals[mspid] = ok
            if diff:
                result.mismatches[mspid].items.extend(diff)
        return result

    def _CommitChaincodeDefinition(self, raw: bytes, ctx: SccContext) -> lb.CommitChaincodeDefinitionResult:
        args = _parse(lb.CommitChaincodeDefinitionArgs(), raw, "CommitChaincodeDefinition")
        definition = self._definition(args, "CommitChaincodeDefinition")
        self._check_next_sequence(ctx, definition)
        approvals = self._approvals(ctx, definition)
        if not approvals.get(ctx.local_mspid, (False, []))[0]:
            raise SccError(409, f"chaincode definition not agreed to by this org ({ctx.local_mspid})")
        _check_enough_approvals(ctx.channel, {m: ok for m, (ok, _) in approvals.items()})
        write_definition(ctx.simulator, definition)
        return lb.CommitChaincodeDefinitionResult()

    def _QueryApprovedChaincodeDefinition(
        self, raw: bytes, ctx: SccContext
    ) -> lb.QueryApprovedChaincodeDefinitionResult:
        args = _parse(lb.QueryApprovedChaincodeDefinitionArgs(), raw, "QueryApprovedChaincodeDefinition")
        sim, mspid = ctx.simulator, ctx.local_mspid
        if args.sequence > 0:
            candidates = [args.sequence]
        else:  # the latest this org approved: the next sequence, else the committed one
            current = current_sequence(sim, args.name)
            candidates = [current + 1, current] if current else [1]
        approved = None
        for seq in candidates:
            approved = approved_definition(sim, mspid, args.name, seq)
            if approved is not None:
                break
        if approved is None:
            what = f"sequence: {args.sequence}" if args.sequence else "latest sequence"
            raise SccError(
                404,
                f"could not fetch approved chaincode definition (name: '{args.name}', {what}) on "
                f"channel '{ctx.channel.channel_id}' for {mspid}",
            )
        source = lb.ChaincodeSource()
        if approved.package_id:
            source.local_package.package_id = approved.package_id
        else:
            source.unavailable.SetInParent()
        return lb.QueryApprovedChaincodeDefinitionResult(**_result_fields(approved), source=source)

    def _QueryChaincodeDefinition(self, raw: bytes, ctx: SccContext) -> lb.QueryChaincodeDefinitionResult:
        args = _parse(lb.QueryChaincodeDefinitionArgs(), raw, "QueryChaincodeDefinition")
        definition = committed_definition(ctx.simulator, args.name)
        if definition is None:
            raise SccError(404, f"namespace {args.name} is not defined")
        result = lb.QueryChaincodeDefinitionResult(**_result_fields(definition))
        for mspid, (ok, _) in self._approvals(ctx, definition).items():
            result.approvals[mspid] = ok
        return result

    def _QueryChaincodeDefinitions(self, raw: bytes, ctx: SccContext) -> lb.QueryChaincodeDefinitionsResult:
        _parse(lb.QueryChaincodeDefinitionsArgs(), raw, "QueryChaincodeDefinitions")
        result = lb.QueryChaincodeDefinitionsResult()
        for d in committed_definitions(ctx.simulator):
            result.chaincode_definitions.add(name=d.name, **_result_fields(d))
        return result


def _result_fields(d: ChaincodeDefinition) -> dict[str, Any]:
    """The definition fields every query result message carries, by Fabric's field names."""
    return {
        "sequence": d.sequence,
        "version": d.version,
        "endorsement_plugin": d.endorsement_plugin,
        "validation_plugin": d.validation_plugin,
        "validation_parameter": d.validation_parameter,
        "collections": collection_pb2.CollectionConfigPackage.FromString(d.collections or b""),
        "init_required": d.init_required,
    }


def _channel_mspids(channel) -> list[str]:
    app = channel.config.application
    return sorted(o.mspid for o in app.orgs.values()) if app is not None else []


def _check_enough_approvals(channel, approvals: dict[str, bool]) -> None:
    """Refuse early when the approvals cannot satisfy an ImplicitMeta LifecycleEndorsement.

    Validation enforces the policy on the commit's endorsements in any case (each org's
    peer endorses only what its org approved); this gives the client the reason before
    ordering. Signature-policy forms are left to validation.
    """
    group = channel.config.config.channel_group.groups.get("Application")
    if group is None or "LifecycleEndorsement" not in group.policies:
        return
    policy = group.policies["LifecycleEndorsement"].policy
    if policy.type != policies_pb2.Policy.IMPLICIT_META:
        return
    meta = policies_pb2.ImplicitMetaPolicy.FromString(policy.value)
    orgs = channel.config.application.orgs  # config group name -> OrgConfig
    n = len(orgs)
    if n == 0:
        return
    need = {
        policies_pb2.ImplicitMetaPolicy.ANY: 1,
        policies_pb2.ImplicitMetaPolicy.ALL: n,
        policies_pb2.ImplicitMetaPolicy.MAJORITY: n // 2 + 1,
    }.get(meta.rule, n)
    have = sum(1 for org in orgs.values() if approvals.get(org.mspid, False))
    if have < need:
        rule = policies_pb2.ImplicitMetaPolicy.Rule.Name(meta.rule)
        listed = ", ".join(f"{m}: {str(ok).lower()}" for m, ok in sorted(approvals.items()))
        raise SccError(
            409,
            f"chaincode definition has approvals from {have} of {n} orgs, but the LifecycleEndorsement "
            f"policy ({rule} {meta.sub_policy}) needs {need} ({listed})",
        )
