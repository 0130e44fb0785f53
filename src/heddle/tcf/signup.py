"""Worker signup data: what a worker publishes, and how anyone checks it.

A worker registers ``details.workerTypeData`` with its verification key, encryption key
(and the worker's signature over it), and proof data: the enclave's attestation
evidence. The evidence binds the two keys (as public keys ``tcf.verifying`` and
``tcf.encryption``) and a nonce derived from the worker id, so it can be checked later
by anyone, from the registry alone, like Avalon's registration-time IAS report.
``verify_signup`` is that check: evidence under the verifier's own policy, then the
keys in the evidence must be the keys in the registry entry.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from heddle.tcf import crypto
from heddle.tcf.codes import ErrorCode, TcfError, WorkerStatus, WorkerType
from heddle.tee import (
    AttestationError,
    AttestationResult,
    EvidenceVerifier,
    VerificationPolicy,
    verify_evidence,
)

PROOF_DATA_TYPE = "heddle-tee-evidence-v1"
_NONCE_DOMAIN = b"heddle.tcf.signup.v1\x00"


def signup_nonce(worker_id: str) -> bytes:
    """The nonce a worker's signup evidence is bound to."""
    return hashlib.sha256(_NONCE_DOMAIN + worker_id.encode("ascii")).digest()


def worker_details(identity: Mapping[str, str], evidence: bytes, *, uri: str = "") -> dict[str, Any]:
    """``details`` of a WorkerRegister request (TCF 5.1.1, 8.1) for a TEE worker."""
    return {
        "workOrderSyncUri": uri,
        "workOrderAsyncUri": uri,
        "workOrderPullUri": uri,
        "workOrderNotifyUri": "",
        "receiptInvocationUri": uri,
        "workOrderInvocationAddress": "",
        "receiptInvocationAddress": "",
        "fromAddress": "",
        "hashingAlgorithm": crypto.HASHING_ALGORITHM,
        "signingAlgorithm": crypto.SIGNING_ALGORITHM,
        "keyEncryptionAlgorithm": crypto.KEY_ENCRYPTION_ALGORITHM,
        "dataEncryptionAlgorithm": crypto.DATA_ENCRYPTION_ALGORITHM,
        "workOrderPayloadFormats": "JSON-RPC",
        "workerTypeData": {
            "verificationKey": identity["verificationKey"],
            "encryptionKey": identity["encryptionKey"],
            "encryptionKeyNonce": identity["encryptionKeyNonce"],
            "encryptionKeySignature": identity["encryptionKeySignature"],
            "extendedMeasurements": [],
            "proofDataType": PROOF_DATA_TYPE,
            "proofData": base64.b64encode(evidence).decode("ascii"),
        },
    }


def register_params(
    identity: Mapping[str, str],
    evidence: bytes,
    *,
    organization_id: str = "",
    application_type_ids: Iterable[str] = (),
    uri: str = "",
) -> dict[str, Any]:
    """A WorkerRegister ``params`` object for this worker."""
    return {
        "workerId": identity["workerId"],
        "workerType": int(WorkerType.TEE_SGX),
        "organizationId": organization_id or "00",
        "applicationTypeId": list(application_type_ids),
        "details": worker_details(identity, evidence, uri=uri),
    }


@dataclass(frozen=True)
class WorkerInfo:
    """A worker as a requester sees it after WorkerRetrieve."""

    worker_id: str
    verification_key: str
    encryption_key: str
    details: Mapping[str, Any]
    status: int = int(WorkerStatus.ACTIVE)

    @classmethod
    def from_retrieve(cls, worker_id: str, result: Mapping[str, Any]) -> WorkerInfo:
        try:
            details = result["details"]
            data = details["workerTypeData"]
            return cls(
                worker_id, data["verificationKey"], data["encryptionKey"], details, int(result["status"])
            )
        except (KeyError, TypeError, ValueError):
            raise TcfError(ErrorCode.INVALID_PARAMETER, "worker record lacks its keys") from None


def verify_signup(
    worker: WorkerInfo,
    *,
    policy: VerificationPolicy,
    verifiers: Iterable[EvidenceVerifier] | Mapping[str, EvidenceVerifier],
) -> AttestationResult:
    """Verify the worker's proof data under ``policy`` and that it binds the worker's keys.

    Raises ``AttestationError`` (the measurement is not allowed, the evidence does not
    verify, or it binds other keys).
    """
    data = worker.details.get("workerTypeData", {})
    if data.get("proofDataType") != PROOF_DATA_TYPE:
        raise AttestationError(f"proof data type {data.get('proofDataType')!r} is not supported")
    if worker.status != WorkerStatus.ACTIVE:
        raise AttestationError(f"worker status is {worker.status}, not active")
    try:
        evidence = base64.b64decode(str(data.get("proofData", "")), validate=True)
    except ValueError:
        raise AttestationError("proof data is not base64") from None
    result = verify_evidence(
        evidence, nonce=signup_nonce(worker.worker_id), policy=policy, verifiers=verifiers
    )
    try:
        keys_match = result.public_keys.get("tcf.verifying") == crypto.pem_to_der(
            worker.verification_key
        ) and result.public_keys.get("tcf.encryption") == crypto.pem_to_der(worker.encryption_key)
    except crypto.CryptoError:
        keys_match = False
    if not keys_match:
        raise AttestationError("the attested enclave holds other keys than the registered worker")
    if crypto.sha256(crypto.pem_to_der(worker.verification_key)).hex() != worker.worker_id:
        raise AttestationError("worker id is not derived from the worker's verification key")
    try:
        crypto.verify_hash(
            worker.verification_key,
            crypto.encryption_key_hash(worker.encryption_key, str(data.get("encryptionKeyNonce", "")), ""),
            str(data.get("encryptionKeySignature", "")),
        )
    except crypto.CryptoError:
        raise AttestationError("encryptionKeySignature is not the worker's") from None
    return result


__all__ = [
    "PROOF_DATA_TYPE",
    "WorkerInfo",
    "register_params",
    "signup_nonce",
    "verify_signup",
    "worker_details",
]
