"""A small deterministic identity deserializer for policy tests (pure logic, no PKI).

A serialized identity is b"MSPID|name|role,role"; the only valid signature of a
message is sha256(name || message). Counters show how often signatures are checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from fabric_protos.common import configtx_pb2, policies_pb2
from fabric_protos.msp import msp_principal_pb2

from heddle.crypto import SignatureError, sha256
from heddle.policy import SignedData, parse_signature_policy


class FakeError(ValueError):
    pass


@dataclass
class Counters:
    verify: int = 0
    deserialize: int = 0


class FakeIdentity:
    def __init__(self, mspid: str, name: str, roles: frozenset[str], counters: Counters):
        self.mspid = mspid
        self.name = name
        self.roles = roles | {"member"}
        self.serialized = f"{mspid}|{name}|{','.join(sorted(roles))}".encode()
        self._counters = counters

    def verify(self, message: bytes, signature: bytes) -> None:
        self._counters.verify += 1
        if signature != fake_signature(self.name, message):
            raise SignatureError("signature does not verify")

    def satisfies_principal(self, principal: msp_principal_pb2.MSPPrincipal) -> bool:
        if principal.principal_classification != msp_principal_pb2.MSPPrincipal.ROLE:
            return False
        role = msp_principal_pb2.MSPRole()
        role.ParseFromString(principal.principal)
        name = msp_principal_pb2.MSPRole.MSPRoleType.Name(role.role).lower()
        return role.msp_identifier == self.mspid and name in self.roles


class FakeDeserializer:
    def __init__(self, mspids: set[str] | None = None):
        self.mspids = mspids  # None: any MSP is known
        self.counters = Counters()

    def deserialize_identity(self, serialized: bytes) -> FakeIdentity:
        self.counters.deserialize += 1
        try:
            mspid, name, roles = serialized.decode().split("|")
        except ValueError as exc:
            raise FakeError(f"malformed identity {serialized!r}") from exc
        if self.mspids is not None and mspid not in self.mspids:
            raise FakeError(f"unknown MSP '{mspid}'")
        return FakeIdentity(mspid, name, frozenset(filter(None, roles.split(","))), self.counters)


def fake_signature(name: str, message: bytes) -> bytes:
    return sha256(name.encode(), message)


def ident(mspid: str, name: str, *roles: str) -> bytes:
    return f"{mspid}|{name}|{','.join(sorted(roles))}".encode()


def signed(mspid: str, name: str, *roles: str, data: bytes = b"payload") -> SignedData:
    """A valid signature over ``data`` by the named identity."""
    return SignedData(data, ident(mspid, name, *roles), fake_signature(name, data))


def forged(mspid: str, name: str, *roles: str, data: bytes = b"payload") -> SignedData:
    """An invalid signature by the named identity."""
    return SignedData(data, ident(mspid, name, *roles), b"\x00" * 32)


def signature_policy(text: str) -> policies_pb2.Policy:
    return policies_pb2.Policy(
        type=policies_pb2.Policy.SIGNATURE,
        value=parse_signature_policy(text).SerializeToString(),
    )


def implicit_policy(rule: str, sub_policy: str) -> policies_pb2.Policy:
    meta = policies_pb2.ImplicitMetaPolicy(
        rule=policies_pb2.ImplicitMetaPolicy.Rule.Value(rule), sub_policy=sub_policy
    )
    return policies_pb2.Policy(
        type=policies_pb2.Policy.IMPLICIT_META, value=meta.SerializeToString()
    )


def group(policies: dict[str, policies_pb2.Policy], groups: dict | None = None):
    g = configtx_pb2.ConfigGroup(mod_policy="Admins")
    for name, policy in policies.items():
        g.policies[name].policy.CopyFrom(policy)
        g.policies[name].mod_policy = "Admins"
    for name, child in (groups or {}).items():
        g.groups[name].CopyFrom(child)
    return g


def org_group(mspid: str) -> configtx_pb2.ConfigGroup:
    """An org group with the policies configtxgen's samples give an org."""
    return group(
        {
            "Readers": signature_policy(f"OR('{mspid}.admin', '{mspid}.peer', '{mspid}.client')"),
            "Writers": signature_policy(f"OR('{mspid}.admin', '{mspid}.client')"),
            "Admins": signature_policy(f"OR('{mspid}.admin')"),
            "Endorsement": signature_policy(f"OR('{mspid}.peer')"),
        }
    )


def channel_group(app_orgs=("Org1MSP", "Org2MSP"), orderer_orgs=("OrdererMSP",)):
    """A /Channel tree shaped like configtxgen's sample profiles."""
    standard = {
        "Readers": implicit_policy("ANY", "Readers"),
        "Writers": implicit_policy("ANY", "Writers"),
        "Admins": implicit_policy("MAJORITY", "Admins"),
    }
    app = group(
        {**standard, "Endorsement": implicit_policy("MAJORITY", "Endorsement")},
        {m: org_group(m) for m in app_orgs},
    )
    orderer = group(
        {**standard, "BlockValidation": implicit_policy("ANY", "Writers")},
        {m: org_group(m) for m in orderer_orgs},
    )
    return group(standard, {"Application": app, "Orderer": orderer})
