"""Typed errors of the trusted execution layer. Messages never carry key material."""

from heddle.tee.enclave.sealing import SealError


class TeeError(Exception):
    """Base class for trusted execution errors."""


class EnclaveError(TeeError):
    """The enclave refused or failed a request; the message says why."""


class EnclaveStartError(TeeError):
    """The enclave process did not come up (bad application, bad platform, timeout)."""


class EnclaveDied(TeeError):
    """The enclave process is gone; every pending and later request fails with this."""


class AttestationError(TeeError):
    """Evidence was refused: malformed, unauthentic, stale, or outside the policy."""


class EvidenceNotSupported(AttestationError):
    """This evidence cannot be verified here (no verifier, or no trusted chain library).

    It is a refusal, never a pass: a caller that catches ``AttestationError`` refuses it too.
    """


class ChannelClosed(TeeError):
    """The attested session is closed; the message says whether by error or by request."""


__all__ = [
    "AttestationError",
    "ChannelClosed",
    "EnclaveDied",
    "EnclaveError",
    "EnclaveStartError",
    "EvidenceNotSupported",
    "SealError",
    "TeeError",
]
