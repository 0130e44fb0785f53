"""Evidence verification: one plug-in per evidence type, one policy check for all.

``verify_evidence`` checks, in order: the policy accepts the evidence type; the
type's verifier parses the quote; the report data binds the evidence's public keys
and the verifier's nonce; the measurement and debug flag satisfy the policy; and
the verifier authenticates the quote (signature and certificate chain). Any failure
raises :class:`AttestationError`; a verifier that cannot authenticate raises
:class:`EvidenceNotSupported`, which is a refusal too.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from heddle.tee.enclave.evidence import Evidence, EvidenceFormatError, report_data
from heddle.tee.errors import AttestationError, EvidenceNotSupported
from heddle.tee.policy import VerificationPolicy


@dataclass(frozen=True)
class Claims:
    """What a quote says about the enclave, before any policy is applied."""

    type: str
    measurement: bytes
    report_data: bytes
    debug: bool
    insecure: bool = False
    details: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class AttestationResult:
    """A verified enclave: its claims and the public keys the evidence binds."""

    claims: Claims
    public_keys: Mapping[str, bytes]

    @property
    def measurement(self) -> bytes:
        return self.claims.measurement


class EvidenceVerifier(Protocol):
    """A plug-in for one evidence type."""

    evidence_type: str

    def parse(self, evidence: Evidence) -> Claims:
        """Parse the quote; raise ``AttestationError`` if it is malformed."""
        ...

    def authenticate(self, evidence: Evidence, claims: Claims) -> None:
        """Check the quote's signature and chain to the platform's root, or raise."""
        ...


def verify_evidence(
    evidence: Evidence | bytes,
    *,
    nonce: bytes,
    policy: VerificationPolicy,
    verifiers: Iterable[EvidenceVerifier] | Mapping[str, EvidenceVerifier],
) -> AttestationResult:
    """Verify ``evidence`` for ``nonce`` under ``policy``; return the verified result."""
    if isinstance(evidence, bytes | bytearray):
        try:
            evidence = Evidence.from_bytes(bytes(evidence))
        except EvidenceFormatError as exc:
            raise AttestationError(str(exc)) from None
    if evidence.type not in policy.accepted_types:
        raise AttestationError(
            f"evidence type {evidence.type!r} is not accepted by the policy "
            f"(accepted: {', '.join(sorted(policy.accepted_types)) or 'none'})"
        )
    table = dict(verifiers) if isinstance(verifiers, Mapping) else {v.evidence_type: v for v in verifiers}
    verifier = table.get(evidence.type)
    if verifier is None:
        raise EvidenceNotSupported(f"no verifier for evidence type {evidence.type!r}")
    try:
        claims = verifier.parse(evidence)
    except EvidenceFormatError as exc:
        raise AttestationError(f"{evidence.type}: {exc}") from None
    expected = report_data(evidence.public_keys, nonce)
    if not hmac.compare_digest(claims.report_data, expected):
        raise AttestationError(
            f"{evidence.type}: report data does not bind these public keys and this nonce "
            "(stale, replayed or substituted evidence)"
        )
    check_policy(claims, policy)
    verifier.authenticate(evidence, claims)
    return AttestationResult(claims, dict(evidence.public_keys))


def check_policy(claims: Claims, policy: VerificationPolicy) -> None:
    """Raise ``AttestationError`` unless ``claims`` satisfy ``policy``."""
    if claims.type not in policy.accepted_types:
        raise AttestationError(f"evidence type {claims.type!r} is not accepted by the policy")
    if claims.measurement not in policy.allowed_measurements:
        raise AttestationError(
            f"{claims.type}: measurement {claims.measurement.hex()} is not allowed by the policy"
        )
    if claims.debug and not policy.allow_debug:
        raise AttestationError(f"{claims.type}: debug enclaves are not allowed by the policy")
