"""Evaluating signature policies (``SignaturePolicyEnvelope``) over signed data.

Semantics follow Fabric exactly, because every peer must reach the same verdict:

1. The signature set becomes a list of *valid signers*: each entry's identity is
   deserialized (failures are skipped), an identity already accepted earlier in the
   set is skipped before its signature is checked, and entries whose signature does
   not verify are skipped. Each signature is therefore checked at most once.
2. The rule is evaluated greedily over that list. ``signed_by`` takes the first
   signer not yet used that satisfies the principal and marks it used, so one
   signature never fills two slots. An ``n_out_of`` gate tries every sub-rule in
   order on a scratch copy of the marks, keeps the marks of each sub-rule that
   succeeds (even beyond n) and succeeds when at least n did; a gate that fails
   leaves its parent's marks as they were.
   The greedy order matters (AND('A.member', 'A.admin') signed by an admin first and
   a plain member second is *not* satisfied in Fabric) and is kept on purpose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fabric_protos.common import policies_pb2
from fabric_protos.msp import msp_principal_pb2
from google.protobuf.message import DecodeError

from heddle.policy.dsl import describe_principal, format_signature_policy
from heddle.policy.errors import PolicyError

# A compiled rule: an int is "signed by principal #i"; a tuple is (n, sub-rules).
_Rule = int | tuple[int, tuple["_Rule", ...]]

_MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class SignedData:
    """One signature over some bytes, by a serialized identity (Fabric's SignedData)."""

    data: bytes
    identity: bytes
    signature: bytes


class Identity(Protocol):
    mspid: str
    serialized: bytes

    def verify(self, message: bytes, signature: bytes) -> None: ...

    def satisfies_principal(self, principal: msp_principal_pb2.MSPPrincipal) -> bool: ...


class IdentityDeserializer(Protocol):
    """Turns SerializedIdentity bytes into an identity; heddle.msp.MspManager is one."""

    def deserialize_identity(self, serialized: bytes) -> Identity: ...


def _identity_key(identity: Any) -> tuple[str, bytes]:
    # Fabric keys identities by MSP id and a hash of the certificate, so two encodings
    # of one certificate count as one signer (heddle.msp.Identity.fingerprint); an identity
    # without a certificate is keyed by its serialized form.
    fingerprint = getattr(identity, "fingerprint", None)
    return identity.mspid, identity.serialized if fingerprint is None else fingerprint


@dataclass
class SignerSet:
    """The valid, deduplicated signers of one signature set, computed once.

    Shared by every policy evaluated for the same request (an ImplicitMeta policy
    evaluates many signature policies over one set), together with a cache of which
    signer satisfies which principal.
    """

    identities: list[Any]
    skipped: list[str]
    _satisfies: dict[bytes, tuple[bool, ...]] = field(default_factory=dict)

    @classmethod
    def from_signed_data(
        cls, signed_data: Sequence[SignedData], deserializer: IdentityDeserializer
    ) -> SignerSet:
        identities: list[Any] = []
        skipped: list[str] = []
        seen: set[tuple[str, bytes]] = set()
        for i, sd in enumerate(signed_data):
            try:
                identity = deserializer.deserialize_identity(sd.identity)
            except (ValueError, DecodeError) as exc:
                skipped.append(f"signature {i}: identity rejected ({exc})")
                continue
            key = _identity_key(identity)
            if key in seen:
                skipped.append(f"signature {i}: duplicate of an earlier signer from {key[0]}")
                continue
            try:
                identity.verify(sd.data, sd.signature)
            except ValueError as exc:  # heddle.crypto.SignatureError
                skipped.append(f"signature {i} by {identity.mspid}: invalid ({exc})")
                continue
            seen.add(key)
            identities.append(identity)
        return cls(identities, skipped)

    def satisfying(self, principal: msp_principal_pb2.MSPPrincipal, key: bytes) -> tuple[bool, ...]:
        """For each signer, whether it satisfies ``principal`` (cached under ``key``)."""
        row = self._satisfies.get(key)
        if row is None:
            row = tuple(_satisfies(identity, principal) for identity in self.identities)
            self._satisfies[key] = row
        return row

    def describe(self) -> str:
        signers = ", ".join(sorted(identity.mspid for identity in self.identities)) or "none"
        text = f"{len(self.identities)} valid signer(s) [{signers}]"
        if self.skipped:
            text += "; skipped " + "; ".join(self.skipped)
        return text


def _satisfies(identity: Any, principal: msp_principal_pb2.MSPPrincipal) -> bool:
    try:
        return bool(identity.satisfies_principal(principal))
    except (ValueError, DecodeError):
        return False


class SignaturePolicy:
    """A SignaturePolicyEnvelope checked and compiled once, evaluated many times."""

    __slots__ = ("_keys", "_principals", "_rule", "envelope", "name")

    def __init__(
        self, envelope: policies_pb2.SignaturePolicyEnvelope, name: str = "signature policy"
    ):
        if envelope.version != 0:
            raise PolicyError(
                f"{name}: unsupported SignaturePolicyEnvelope version {envelope.version}"
            )
        if not envelope.HasField("rule"):
            raise PolicyError(f"{name}: signature policy has no rule")
        self.envelope = envelope
        self.name = name
        self._principals = list(envelope.identities)
        self._keys = [p.SerializeToString(deterministic=True) for p in self._principals]
        self._rule = self._compile(envelope.rule, 0)

    @classmethod
    def from_bytes(cls, value: bytes, name: str = "signature policy") -> SignaturePolicy:
        envelope = policies_pb2.SignaturePolicyEnvelope()
        try:
            envelope.ParseFromString(value)
        except DecodeError as exc:
            raise PolicyError(f"{name}: not a SignaturePolicyEnvelope ({exc})") from exc
        return cls(envelope, name)

    def _compile(self, rule: policies_pb2.SignaturePolicy, depth: int) -> _Rule:
        if depth > _MAX_DEPTH:
            raise PolicyError(f"{self.name}: rule nests deeper than {_MAX_DEPTH} gates")
        which = rule.WhichOneof("Type")
        if which == "signed_by":
            if not 0 <= rule.signed_by < len(self._principals):
                raise PolicyError(
                    f"{self.name}: signed_by index {rule.signed_by} out of range "
                    f"({len(self._principals)} identities)"
                )
            return rule.signed_by
        if which == "n_out_of":
            subs = tuple(self._compile(r, depth + 1) for r in rule.n_out_of.rules)
            return (rule.n_out_of.n, subs)
        raise PolicyError(f"{self.name}: empty rule element")

    def is_satisfied(self, signers: SignerSet) -> bool:
        """True if the already-verified ``signers`` satisfy this policy."""
        return self._eval(self._rule, signers, [False] * len(signers.identities))

    def _eval(self, rule: _Rule, signers: SignerSet, used: list[bool]) -> bool:
        if isinstance(rule, int):
            row = signers.satisfying(self._principals[rule], self._keys[rule])
            for i, ok in enumerate(row):
                if ok and not used[i]:
                    used[i] = True
                    return True
            return False
        n, subs = rule
        verified = 0
        for sub in subs:
            scratch = used.copy()
            if self._eval(sub, signers, scratch):
                verified += 1
                used[:] = scratch
        return verified >= n

    def check(self, signers: SignerSet) -> None:
        """Raise PolicyError naming this policy and what was missing, unless satisfied."""
        if self.is_satisfied(signers):
            return
        raise PolicyError(f"{self.name} {self._text()} not satisfied: {self._missing(signers)}")

    def evaluate(
        self, signed_data: Sequence[SignedData], deserializer: IdentityDeserializer
    ) -> None:
        """Verify ``signed_data`` and check it; raise PolicyError unless satisfied."""
        self.check(SignerSet.from_signed_data(signed_data, deserializer))

    def _text(self) -> str:
        try:
            return format_signature_policy(self.envelope)
        except PolicyError:
            return "(not expressible in the policy language)"

    def _missing(self, signers: SignerSet) -> str:
        # Explain at the top gate: which of its operands had no signer.
        rule = self._rule
        if isinstance(rule, int):
            detail = f"no signer for {self._describe(rule)}"
        else:
            n, subs = rule
            used = [False] * len(signers.identities)
            unmet = []
            met = 0
            for sub in subs:
                scratch = used.copy()
                if self._eval(sub, signers, scratch):
                    met += 1
                    used[:] = scratch
                else:
                    unmet.append(self._describe(sub))
            detail = f"{met} of {n} required operand(s) met"
            if unmet:
                detail += "; unmet: " + ", ".join(unmet)
        return f"{detail}; {signers.describe()}"

    def _describe(self, rule: _Rule) -> str:
        if isinstance(rule, int):
            try:
                return describe_principal(self._principals[rule])
            except PolicyError:
                return f"principal #{rule}"
        n, subs = rule
        inner = ", ".join(self._describe(s) for s in subs)
        if n == 1:
            return f"OR({inner})"
        if n == len(subs):
            return f"AND({inner})"
        return f"OutOf({n}, {inner})"


def evaluate_signature_policy(
    envelope: policies_pb2.SignaturePolicyEnvelope,
    signed_data: Sequence[SignedData],
    deserializer: IdentityDeserializer,
    *,
    name: str = "signature policy",
) -> None:
    """Raise PolicyError (with the reason) unless ``signed_data`` satisfies ``envelope``."""
    SignaturePolicy(envelope, name).evaluate(signed_data, deserializer)
