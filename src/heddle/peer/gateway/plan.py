"""Endorsement planning: which organizations' peers must endorse to satisfy a policy.

Sans-I/O: policies in, *layouts* out. A layout maps an MSP id to the number of distinct
peers of that org whose endorsements it needs. A signature policy ``OutOf(n, ...)`` is
satisfied by any n of its sub-rules, and one signature never fills two slots, so the
needs of the chosen sub-rules add up. An ImplicitMeta policy in the channel config
(``MAJORITY Endorsement``) is an OutOf over its child groups' sub-policies.

The planner assumes an org's peers satisfy the ``peer`` and ``member`` roles of their
org (true for peers with NodeOUs); principals it cannot place on an org make their rule
unsatisfiable rather than guessed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

from fabric_protos.common import configtx_pb2, policies_pb2
from fabric_protos.msp import identities_pb2, msp_principal_pb2
from fabric_protos.peer import policy_pb2
from google.protobuf.message import DecodeError

Layout = dict[str, int]

DEFAULT_ENDORSEMENT_POLICY = "/Channel/Application/Endorsement"
LIFECYCLE_ENDORSEMENT_POLICY = "/Channel/Application/LifecycleEndorsement"

# Bound on the layouts kept per rule, so OutOf over many orgs stays cheap.
_MAX_LAYOUTS = 512
_MAX_DEPTH = 32


class PlanError(ValueError):
    """The policy cannot be turned into a plan (malformed, unknown path, unsatisfiable)."""


def _key(layout: Layout) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(layout.items()))


def _covers(big: Layout, small: Layout) -> bool:
    return all(big.get(m, 0) >= n for m, n in small.items())


def minimal_layouts(layouts: Iterable[Layout]) -> list[Layout]:
    """Deduplicated layouts with supersets of another layout removed, smallest first."""
    unique = {_key(lay): lay for lay in layouts if lay}
    ordered = sorted(unique.values(), key=lambda lay: (sum(lay.values()), _key(lay)))
    kept: list[Layout] = []
    for lay in ordered:
        if not any(_covers(lay, k) for k in kept):
            kept.append(lay)
    return kept[:_MAX_LAYOUTS]


def _merge(parts: Iterable[Layout]) -> Layout:
    out: Layout = {}
    for part in parts:
        for mspid, n in part.items():
            out[mspid] = out.get(mspid, 0) + n
    return out


def _n_out_of(n: int, children: list[list[Layout]]) -> list[Layout]:
    if n <= 0:
        return [{}]
    if n > len(children):
        return []
    result: list[Layout] = []
    for chosen in itertools.combinations(children, n):
        if any(not c for c in chosen):
            continue
        for combo in itertools.product(*chosen):
            result.append(_merge(combo))
            if len(result) > 8 * _MAX_LAYOUTS:
                return minimal_layouts(result)
    return minimal_layouts(result)


def principal_mspid(principal: msp_principal_pb2.MSPPrincipal) -> str | None:
    """The org a principal belongs to, or None when it names no single org."""
    cls = msp_principal_pb2.MSPPrincipal
    try:
        if principal.principal_classification == cls.ROLE:
            role = msp_principal_pb2.MSPRole.FromString(principal.principal)
            return role.msp_identifier or None
        if principal.principal_classification == cls.ORGANIZATION_UNIT:
            ou = msp_principal_pb2.OrganizationUnit.FromString(principal.principal)
            return ou.msp_identifier or None
        if principal.principal_classification == cls.IDENTITY:
            ident = identities_pb2.SerializedIdentity.FromString(principal.principal)
            return ident.mspid or None
    except DecodeError:
        return None
    return None


def signature_policy_layouts(envelope: policies_pb2.SignaturePolicyEnvelope) -> list[Layout]:
    """Minimal org layouts satisfying a SignaturePolicyEnvelope."""
    mspids = [principal_mspid(p) for p in envelope.identities]

    def walk(rule: policies_pb2.SignaturePolicy, depth: int) -> list[Layout]:
        if depth > _MAX_DEPTH:
            raise PlanError("signature policy nests too deeply")
        kind = rule.WhichOneof("Type")
        if kind == "signed_by":
            if not 0 <= rule.signed_by < len(mspids):
                raise PlanError(
                    f"signature policy refers to identity #{rule.signed_by}, which does not exist"
                )
            mspid = mspids[rule.signed_by]
            return [{mspid: 1}] if mspid else []
        if kind == "n_out_of":
            children = [walk(r, depth + 1) for r in rule.n_out_of.rules]
            return _n_out_of(rule.n_out_of.n, children)
        raise PlanError("signature policy has an empty rule")

    if not envelope.HasField("rule"):
        raise PlanError("signature policy has no rule")
    return walk(envelope.rule, 0)


def _resolve_path(path: str) -> list[str]:
    if not path.startswith("/"):
        path = "/Channel/" + path
    parts = [p for p in path.split("/") if p]
    if len(parts) < 2 or parts[0] != "Channel":
        raise PlanError(f"policy path {path!r} is not under /Channel")
    return parts[1:]


def config_policy_layouts(channel_group: configtx_pb2.ConfigGroup, path: str) -> list[Layout]:
    """Minimal org layouts satisfying the channel-config policy at ``path``."""
    *groups, name = _resolve_path(path)
    group = channel_group
    for g in groups:
        if g not in group.groups:
            raise PlanError(f"policy {path} does not exist (no config group {g!r})")
        group = group.groups[g]
    if name not in group.policies:
        raise PlanError(f"policy {path} does not exist")
    return _group_policy_layouts(group, name, path, 0)


def _group_policy_layouts(group: configtx_pb2.ConfigGroup, name: str, path: str, depth: int) -> list[Layout]:
    if depth > _MAX_DEPTH:
        raise PlanError(f"policy {path}: config groups nest too deeply")
    policy = group.policies[name].policy
    try:
        if policy.type == policies_pb2.Policy.SIGNATURE:
            return signature_policy_layouts(policies_pb2.SignaturePolicyEnvelope.FromString(policy.value))
        if policy.type == policies_pb2.Policy.IMPLICIT_META:
            meta = policies_pb2.ImplicitMetaPolicy.FromString(policy.value)
        else:
            raise PlanError(f"policy {path} has unsupported type {policy.type}")
    except DecodeError as exc:
        raise PlanError(f"policy {path} is malformed: {exc}") from exc
    child_names = sorted(group.groups)
    n = len(child_names)
    rules = policies_pb2.ImplicitMetaPolicy
    if meta.rule == rules.ANY:
        threshold = 1
    elif meta.rule == rules.ALL:
        threshold = n
    elif meta.rule == rules.MAJORITY:
        threshold = n // 2 + 1
    else:
        raise PlanError(f"policy {path} has unknown ImplicitMeta rule {meta.rule}")
    if n == 0:
        raise PlanError(f"policy {path} ({meta.sub_policy}) has no organizations to endorse")
    children = []
    for child in child_names:
        sub = group.groups[child]
        if meta.sub_policy in sub.policies:
            children.append(_group_policy_layouts(sub, meta.sub_policy, f"{path}/{child}", depth + 1))
        else:
            children.append([])
    return _n_out_of(threshold, children)


def application_policy_layouts(
    validation_parameter: bytes | None, channel_group: configtx_pb2.ConfigGroup
) -> list[Layout]:
    """Layouts for a chaincode definition's endorsement policy (peer ApplicationPolicy bytes);
    an empty parameter means the channel's default /Channel/Application/Endorsement."""
    if not validation_parameter:
        return config_policy_layouts(channel_group, DEFAULT_ENDORSEMENT_POLICY)
    try:
        app = policy_pb2.ApplicationPolicy.FromString(validation_parameter)
    except DecodeError as exc:
        raise PlanError(f"chaincode endorsement policy is malformed: {exc}") from exc
    kind = app.WhichOneof("Type")
    if kind == "signature_policy":
        return signature_policy_layouts(app.signature_policy)
    if kind == "channel_config_policy_reference":
        return config_policy_layouts(channel_group, app.channel_config_policy_reference)
    raise PlanError("chaincode endorsement policy names neither a signature policy nor a config policy")


def feasible_layouts(
    layouts: Iterable[Layout], available: Mapping[str, int], local_mspid: str | None = None
) -> list[Layout]:
    """The layouts the known peers can fill, best first: those using the local org, then
    fewest endorsers (Fabric's gateway prefers to endorse on its own org)."""
    ok = [lay for lay in layouts if all(available.get(m, 0) >= n for m, n in lay.items())]
    return sorted(ok, key=lambda lay: (local_mspid not in lay, sum(lay.values()), _key(lay)))
