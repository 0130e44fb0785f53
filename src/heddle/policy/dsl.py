"""Fabric's signature-policy language, to and from ``SignaturePolicyEnvelope``.

    AND('Org1MSP.peer', OR('Org2MSP.admin', "Org3MSP.member"))
    OutOf(2, 'A.member', 'B.member', 'C.member')

Operators are case-insensitive; AND(x1..xn) is OutOf(n, ...), OR(...) is OutOf(1, ...).
A principal is 'MSPID.ROLE' with ROLE one of member, admin, client, peer, orderer.

The bytes must be the ones Fabric's peer CLI and configtxgen produce, because peers
compare and hash these envelopes (chaincode definitions, config updates). Fabric does
not deduplicate principals: every occurrence gets its own entry in ``identities``.
Entries are numbered gate by gate in post-order: the principals named directly in a
gate are numbered after every gate nested inside it, so
``AND('A.member', OR('B.member', 'C.member'))`` lists B, C, A.

Also here: the "RULE SubPolicy" form of ImplicitMeta policies that configtx.yaml uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fabric_protos.common import policies_pb2
from fabric_protos.msp import msp_principal_pb2

from heddle.policy.errors import PolicyError

_ROLES = {
    "member": msp_principal_pb2.MSPRole.MEMBER,
    "admin": msp_principal_pb2.MSPRole.ADMIN,
    "client": msp_principal_pb2.MSPRole.CLIENT,
    "peer": msp_principal_pb2.MSPRole.PEER,
    "orderer": msp_principal_pb2.MSPRole.ORDERER,
}
_ROLE_NAMES = {v: k for k, v in _ROLES.items()}

# MSP ids are ASCII letters, digits, '.' and '-'; the role is the last dotted part.
_PRINCIPAL = re.compile(r"([A-Za-z0-9.-]+)\.(member|admin|client|peer|orderer)")

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<int>[0-9]+)
      | '(?P<sq>[^']*)'
      | "(?P<dq>[^"]*)"
      | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)

_MAX_DEPTH = 64


@dataclass(frozen=True)
class _Principal:
    mspid: str
    role: int


@dataclass(frozen=True)
class _Gate:
    n: int
    children: tuple[_Gate | _Principal, ...]


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos == len(text):
                break
            m = _TOKEN.match(text, pos)
            if m is None:
                raise PolicyError(
                    f"unexpected character {text[pos]!r} at offset {pos} in policy {text!r}"
                )
            kind = m.lastgroup
            assert kind is not None
            value = m.group(kind)
            self.tokens.append(("str" if kind in ("sq", "dq") else kind, value, m.start(kind)))
            pos = m.end()
        self.i = 0

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _next(self, expected: str) -> tuple[str, str, int]:
        tok = self._peek()
        if tok is None:
            raise PolicyError(f"policy {self.text!r} ends early: expected {expected}")
        self.i += 1
        return tok

    def _expect_punct(self, p: str) -> None:
        kind, value, at = self._next(repr(p))
        if kind != "punct" or value != p:
            raise PolicyError(
                f"expected {p!r} at offset {at} in policy {self.text!r}, got {value!r}"
            )

    def parse(self) -> _Gate:
        tok = self._peek()
        if tok is None:
            raise PolicyError("empty signature policy")
        if tok[0] != "name":
            raise PolicyError(
                f"signature policy must start with AND, OR or OutOf, "
                f"got {tok[1]!r} in {self.text!r}"
            )
        gate = self._gate(0)
        rest = self._peek()
        if rest is not None:
            raise PolicyError(f"unexpected {rest[1]!r} at offset {rest[2]} in policy {self.text!r}")
        return gate

    def _gate(self, depth: int) -> _Gate:
        if depth > _MAX_DEPTH:
            raise PolicyError(f"policy nests deeper than {_MAX_DEPTH} gates")
        _, name, at = self._next("a gate")
        op = name.lower()
        if op not in ("and", "or", "outof"):
            raise PolicyError(
                f"unknown operator {name!r} at offset {at} in policy {self.text!r} "
                "(expected AND, OR or OutOf)"
            )
        self._expect_punct("(")
        n = None
        if op == "outof":
            kind, value, vat = self._next("a number")
            if kind != "int":
                raise PolicyError(
                    f"OutOf at offset {at} needs a whole number first, "
                    f"got {value!r} in policy {self.text!r}"
                )
            n = int(value)
            self._expect_punct(",")
        children: list[_Gate | _Principal] = []
        while True:
            children.append(self._operand(depth))
            kind, value, vat = self._next("',' or ')'")
            if kind == "punct" and value == ")":
                break
            if not (kind == "punct" and value == ","):
                raise PolicyError(
                    f"expected ',' or ')' at offset {vat} in policy {self.text!r}, got {value!r}"
                )
        if op == "and":
            n = len(children)
        elif op == "or":
            n = 1
        assert n is not None
        if n > len(children):
            raise PolicyError(
                f"OutOf({n}, ...) at offset {at} has only {len(children)} operand(s) "
                f"in policy {self.text!r}"
            )
        return _Gate(n, tuple(children))

    def _operand(self, depth: int) -> _Gate | _Principal:
        tok = self._peek()
        if tok is None:
            raise PolicyError(f"policy {self.text!r} ends early: expected a principal or a gate")
        kind, value, at = tok
        if kind == "name":
            return self._gate(depth + 1)
        if kind == "str":
            self.i += 1
            m = _PRINCIPAL.fullmatch(value)
            if m is None:
                raise PolicyError(
                    f"bad principal {value!r} at offset {at} in policy {self.text!r}: expected "
                    "'MSPID.ROLE' with ROLE member, admin, client, peer or orderer"
                )
            return _Principal(m.group(1), _ROLES[m.group(2)])
        raise PolicyError(
            f"expected a principal or a gate at offset {at} in policy {self.text!r}, got {value!r}"
        )


def _role_principal(mspid: str, role: int) -> msp_principal_pb2.MSPPrincipal:
    return msp_principal_pb2.MSPPrincipal(
        principal_classification=msp_principal_pb2.MSPPrincipal.ROLE,
        principal=msp_principal_pb2.MSPRole(msp_identifier=mspid, role=role).SerializeToString(),
    )


def _build(
    gate: _Gate, identities: list[msp_principal_pb2.MSPPrincipal]
) -> policies_pb2.SignaturePolicy:
    rules: list[policies_pb2.SignaturePolicy | None] = [None] * len(gate.children)
    # Nested gates first, then this gate's own principals: Fabric's numbering.
    for i, child in enumerate(gate.children):
        if isinstance(child, _Gate):
            rules[i] = _build(child, identities)
    for i, child in enumerate(gate.children):
        if isinstance(child, _Principal):
            identities.append(_role_principal(child.mspid, child.role))
            rules[i] = policies_pb2.SignaturePolicy(signed_by=len(identities) - 1)
    out = policies_pb2.SignaturePolicy()
    out.n_out_of.n = gate.n
    out.n_out_of.rules.extend(rules)
    return out


def parse_signature_policy(text: str) -> policies_pb2.SignaturePolicyEnvelope:
    """Parse e.g. ``OR('Org1MSP.admin', 'Org1MSP.peer')`` into the envelope Fabric builds."""
    gate = _Parser(text).parse()
    identities: list[msp_principal_pb2.MSPPrincipal] = []
    rule = _build(gate, identities)
    return policies_pb2.SignaturePolicyEnvelope(version=0, rule=rule, identities=identities)


def describe_principal(principal: msp_principal_pb2.MSPPrincipal) -> str:
    """``'Org1MSP.admin'`` for a ROLE principal; a short description for the other kinds."""
    cls = principal.principal_classification
    if cls == msp_principal_pb2.MSPPrincipal.ROLE:
        role = msp_principal_pb2.MSPRole()
        try:
            role.ParseFromString(principal.principal)
        except Exception as exc:  # protobuf's DecodeError
            raise PolicyError(f"ROLE principal does not hold an MSPRole: {exc}") from exc
        name = _ROLE_NAMES.get(role.role)
        if name is None or not re.fullmatch(r"[A-Za-z0-9.-]+", role.msp_identifier):
            raise PolicyError(
                f"principal {role.msp_identifier!r} with role {role.role} cannot be written "
                "in the policy language"
            )
        return f"'{role.msp_identifier}.{name}'"
    try:
        kind = msp_principal_pb2.MSPPrincipal.Classification.Name(cls)
    except ValueError:
        kind = f"classification {cls}"
    raise PolicyError(f"{kind} principals cannot be written in the policy language")


def _format_rule(
    rule: policies_pb2.SignaturePolicy,
    identities: list[msp_principal_pb2.MSPPrincipal],
    names: dict[int, str],
    depth: int,
) -> str:
    if depth > _MAX_DEPTH:
        raise PolicyError(f"policy nests deeper than {_MAX_DEPTH} gates")
    which = rule.WhichOneof("Type")
    if which == "signed_by":
        idx = rule.signed_by
        if not 0 <= idx < len(identities):
            raise PolicyError(f"signed_by index {idx} out of range ({len(identities)} identities)")
        if idx not in names:
            names[idx] = describe_principal(identities[idx])
        return names[idx]
    if which == "n_out_of":
        gate = rule.n_out_of
        if not gate.rules:
            raise PolicyError(f"OutOf({gate.n}) gate has no operands")
        parts = ", ".join(_format_rule(r, identities, names, depth + 1) for r in gate.rules)
        if gate.n == 1:
            return f"OR({parts})"
        if gate.n == len(gate.rules):
            return f"AND({parts})"
        return f"OutOf({gate.n}, {parts})"
    raise PolicyError("signature policy rule is empty")


def format_signature_policy(envelope: policies_pb2.SignaturePolicyEnvelope) -> str:
    """Write an envelope in the policy language (``OR`` for 1-of, ``AND`` for all-of).

    ``parse_signature_policy(format_signature_policy(e))`` gives back ``e`` byte for byte
    whenever ``e`` is laid out as Fabric's parser lays it out (as configtxgen's are).
    Raises PolicyError for what the language cannot express (non-ROLE principals, empty gates).
    """
    if not envelope.HasField("rule"):
        raise PolicyError("signature policy envelope has no rule")
    return _format_rule(envelope.rule, list(envelope.identities), {}, 0)


_IMPLICIT_RULES = {
    "ANY": policies_pb2.ImplicitMetaPolicy.ANY,
    "ALL": policies_pb2.ImplicitMetaPolicy.ALL,
    "MAJORITY": policies_pb2.ImplicitMetaPolicy.MAJORITY,
}
_IMPLICIT_NAMES = {v: k for k, v in _IMPLICIT_RULES.items()}


def parse_implicit_meta_policy(text: str) -> policies_pb2.ImplicitMetaPolicy:
    """Parse configtx.yaml's ImplicitMeta rule, e.g. ``"MAJORITY Admins"``."""
    parts = text.split()
    if len(parts) != 2:
        raise PolicyError(f"ImplicitMeta rule {text!r} must be '<ANY|ALL|MAJORITY> <SubPolicy>'")
    rule = _IMPLICIT_RULES.get(parts[0].upper())
    if rule is None:
        raise PolicyError(f"ImplicitMeta rule {text!r}: {parts[0]!r} is not ANY, ALL or MAJORITY")
    return policies_pb2.ImplicitMetaPolicy(sub_policy=parts[1], rule=rule)


def format_implicit_meta_policy(policy: policies_pb2.ImplicitMetaPolicy) -> str:
    """``"MAJORITY Admins"``."""
    name = _IMPLICIT_NAMES.get(policy.rule)
    if name is None:
        raise PolicyError(f"unknown ImplicitMeta rule {policy.rule}")
    return f"{name} {policy.sub_policy}"
