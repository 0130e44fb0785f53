"""Trusted execution: the host/enclave boundary, the virtual enclave, attestation,
and attested channels that end inside the enclave.

Host side::

    platform = VirtualPlatform.ensure(path)
    enclave = await Enclave.start("my_app.py", platform=platform)
    policy = VerificationPolicy.development([expected_measurement("my_app.py")])
    session = await AttestedSession.connect(enclave, policy=policy,
                                            verifiers=[platform.verifier()])
    reply = await session.call("method", b"secret request")

Enclave side (``my_app.py``) defines ``setup(ctx: EnclaveContext)`` and registers
handlers with ``@ctx.handler("method")``. See docs/security.md for the threat model.
"""

from heddle.tee.attestation import (
    AttestationResult,
    Claims,
    EvidenceVerifier,
    check_policy,
    verify_evidence,
)
from heddle.tee.channel import AttestedSession, Relay, TlsClientChannel
from heddle.tee.enclave.evidence import Evidence, keys_digest, report_data
from heddle.tee.enclave.runtime import EnclaveContext, HostCallError, Session
from heddle.tee.errors import (
    AttestationError,
    ChannelClosed,
    EnclaveDied,
    EnclaveError,
    EnclaveStartError,
    EvidenceNotSupported,
    SealError,
    TeeError,
)
from heddle.tee.host import Enclave, expected_measurement
from heddle.tee.policy import VerificationPolicy
from heddle.tee.sev_snp import SevSnpReport, SevSnpVerifier, parse_snp_report
from heddle.tee.sgx import SgxDcapVerifier, SgxQuote, parse_sgx_quote
from heddle.tee.virtual import VirtualPlatform, VirtualVerifier

__all__ = [
    "AttestationError",
    "AttestationResult",
    "AttestedSession",
    "ChannelClosed",
    "Claims",
    "Enclave",
    "EnclaveContext",
    "EnclaveDied",
    "EnclaveError",
    "EnclaveStartError",
    "Evidence",
    "EvidenceNotSupported",
    "EvidenceVerifier",
    "HostCallError",
    "Relay",
    "SealError",
    "Session",
    "SevSnpReport",
    "SevSnpVerifier",
    "SgxDcapVerifier",
    "SgxQuote",
    "TeeError",
    "TlsClientChannel",
    "VerificationPolicy",
    "VirtualPlatform",
    "VirtualVerifier",
    "check_policy",
    "expected_measurement",
    "keys_digest",
    "parse_sgx_quote",
    "parse_snp_report",
    "report_data",
    "verify_evidence",
]
