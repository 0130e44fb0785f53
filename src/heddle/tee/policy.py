"""Verification policy: which enclaves a verifier accepts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

PRODUCTION_TYPES = frozenset({"sgx-dcap", "sev-snp"})


@dataclass(frozen=True)
class VerificationPolicy:
    """Allowed measurements, accepted evidence types, and whether debug enclaves pass.

    The default accepts only hardware evidence types: ``virtual`` evidence is refused
    unless a policy names it explicitly (see :meth:`development`).
    """

    allowed_measurements: frozenset[bytes]
    accepted_types: frozenset[str] = field(default=PRODUCTION_TYPES)
    allow_debug: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed_measurements", frozenset(self.allowed_measurements))
        object.__setattr__(self, "accepted_types", frozenset(self.accepted_types))

    @classmethod
    def production(cls, measurements: Iterable[bytes]) -> VerificationPolicy:
        """Hardware evidence only, no debug enclaves."""
        return cls(frozenset(measurements))

    @classmethod
    def development(cls, measurements: Iterable[bytes], *, allow_debug: bool = True) -> VerificationPolicy:
        """Also accepts the insecure ``virtual`` evidence; for tests and local networks."""
        return cls(frozenset(measurements), PRODUCTION_TYPES | {"virtual"}, allow_debug)
