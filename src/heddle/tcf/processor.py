"""Work order processing as it happens inside a worker enclave (sans-I/O).

``WorkerKeys`` holds the worker's secp256k1 signing key and RSA-3072 encryption key;
``process`` takes a WorkOrderSubmit ``params`` object and returns the result object
(TCF 6.1.2) with encrypted outData and the worker's signature, or raises ``TcfError``.
The enclave application calls it; nothing here touches files, sockets or clocks.

This module is bundled into the worker enclave.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from heddle.tcf import crypto, schema, workloads
from heddle.tcf.codes import ErrorCode, ReceiptStatus, TcfError, invalid


@dataclass
class WorkerKeys:
    """A worker's private keys; they exist only inside the enclave that made them."""

    signing: ec.EllipticCurvePrivateKey = field(repr=False)
    encryption: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> WorkerKeys:
        return cls(crypto.generate_signing_key(), crypto.generate_encryption_key())

    @property
    def verification_key(self) -> str:
        return crypto.public_pem(self.signing)

    @property
    def encryption_key(self) -> str:
        return crypto.public_pem(self.encryption)

    @property
    def worker_id(self) -> str:
        """A worker's id: hex SHA-256 of its verifying key (DER)."""
        return crypto.sha256(crypto.public_der(self.signing)).hex()

    def sign(self, digest: bytes) -> str:
        return crypto.sign_hash(self.signing, digest)


def verify_requester(params: dict[str, Any], session_key: bytes) -> bytes:
    """Check encryptedRequestHash and requesterSignature; return the request hash."""
    digest = crypto.request_hash(params)
    try:
        sealed = crypto.from_hex(params["encryptedRequestHash"], "encryptedRequestHash")
        iv = crypto.from_hex(params["sessionKeyIv"], "sessionKeyIv")
        claimed = crypto.decrypt(session_key, iv, sealed)
    except crypto.CryptoError as exc:
        raise TcfError(ErrorCode.INVALID_SIGNATURE, f"encryptedRequestHash: {exc}") from None
    if not hmac.compare_digest(claimed, digest):
        raise TcfError(ErrorCode.INVALID_SIGNATURE, "encryptedRequestHash does not match the request")
    try:
        crypto.verify_hash(params["verifyingKey"], digest, params["requesterSignature"])
    except crypto.CryptoError as exc:
        raise TcfError(ErrorCode.INVALID_SIGNATURE, f"requesterSignature: {exc}") from None
    return digest


Unwrap = Callable[[str], bytes]


def _item_key(unwrap: Unwrap, item: dict[str, Any], session_key: bytes) -> bytes | None:
    marker = item.get("encryptedDataEncryptionKey") or ""
    if marker in crypto.SESSION_KEY_MARKERS:
        return session_key
    if marker == crypto.PLAINTEXT_MARKER:
        return None
    try:
        return unwrap(marker)
    except crypto.CryptoError as exc:
        raise invalid(f"inData[{item['index']}].encryptedDataEncryptionKey: {exc}") from None


def decrypt_inputs(unwrap: Unwrap, params: dict[str, Any], session_key: bytes) -> list[bytes]:
    """Decrypt inData in index order, checking dataHash; refuse a reused IV."""
    items = sorted(params["inData"], key=lambda it: it["index"])
    used: set[tuple[bytes, str]] = {(session_key, params["sessionKeyIv"].lower())}
    out = []
    for item in items:
        where = f"inData[{item['index']}]"
        key = _item_key(unwrap, item, session_key)
        data = crypto.unb64(item.get("data", ""), f"{where}.data")
        if key is None:
            plain = data
        else:
            iv_hex = (item.get("iv") or "").lower()
            if not iv_hex:
                raise invalid(f"{where}.iv is required for an encrypted item")
            if (key, iv_hex) in used:
                raise invalid(f"{where}.iv reuses an IV under the same key; use a fresh IV per item")
            used.add((key, iv_hex))
            try:
                plain = crypto.decrypt(key, bytes.fromhex(iv_hex), data)
            except crypto.CryptoError as exc:
                raise invalid(f"{where}: {exc}") from None
        expected = item.get("dataHash") or ""
        if expected and not crypto.hashes_equal(expected, crypto.data_hash(plain)):
            raise invalid(f"{where}.dataHash does not match the decrypted data")
        out.append(plain)
    return out


def process(
    keys: WorkerKeys,
    params: dict[str, Any],
    *,
    worker_id: str | None = None,
    unwrap: Unwrap | None = None,
    endorsement: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one work order; return the signed result object (TCF 6.1.2).

    A singleton worker passes only its keys. A pool's WPE passes the pool's
    ``worker_id``, an ``unwrap`` that opens the keys the KME re-wrapped for it, and its
    ``endorsement`` (extVerificationKey and the KME's extVerificationKeySignature),
    which the result carries so the client can chain the WPE's key to the worker's.
    """
    params = schema.work_order_submit(params)
    if params["workerId"].lower() != (worker_id or keys.worker_id):
        raise invalid("workerId names a different worker")
    name = workloads.workload_name(params["workloadId"])
    if name is None:
        raise TcfError(ErrorCode.INVALID_WORKLOAD, "workloadId names no workload this worker runs")
    if unwrap is None:

        def unwrap(wrapped: str) -> bytes:
            return crypto.unwrap_key(keys.encryption, wrapped)

    try:
        session_key = unwrap(params["encryptedSessionKey"])
    except crypto.CryptoError as exc:
        raise invalid(f"encryptedSessionKey: {exc}") from None
    verify_requester(params, session_key)
    inputs = decrypt_inputs(unwrap, params, session_key)
    try:
        outputs = workloads.run(name, inputs)
    except workloads.WorkloadError as exc:
        raise TcfError(ErrorCode.INVALID_PARAMETER, f"{name}: {exc}") from None
    requested = {it["index"]: it for it in params.get("outData") or []}
    out_data = []
    for index, plain in enumerate(outputs):
        wanted = requested.get(index, {})
        marker = wanted.get("encryptedDataEncryptionKey") or ""
        if marker and marker not in crypto.SESSION_KEY_MARKERS and marker != crypto.PLAINTEXT_MARKER:
            key = unwrap(marker)
        else:
            key = session_key  # results are always encrypted; "-" is not honoured for outData
        cipher, iv = crypto.encrypt(key, plain)
        out_data.append(
            {
                "index": index,
                "dataHash": crypto.data_hash(plain),
                "data": crypto.b64(cipher),
                "encryptedDataEncryptionKey": marker if key is not session_key else "",
                "iv": iv.hex(),
            }
        )
    result = {
        "workOrderId": params["workOrderId"],
        "workloadId": params["workloadId"],
        "workerId": params["workerId"],
        "requesterId": params["requesterId"],
        "workerNonce": crypto.new_nonce(),
        "outData": out_data,
    }
    if endorsement:
        result["extVerificationKey"] = endorsement["extVerificationKey"]
        result["extVerificationKeySignature"] = endorsement["extVerificationKeySignature"]
    result["workerSignature"] = keys.sign(crypto.response_hash(result))
    return result


def endorse(keys: WorkerKeys, ext_verification_key: str) -> dict[str, str]:
    """The KME's endorsement of a WPE's verifying key: sign SHA-256(extVerificationKey)."""
    digest = crypto.sha256(ext_verification_key.encode("utf-8"))
    return {"extVerificationKey": ext_verification_key, "extVerificationKeySignature": keys.sign(digest)}


def check_endorsement(verification_key: str, result: dict[str, Any]) -> str:
    """The key that must verify ``result``'s workerSignature (the worker's, or an endorsed WPE's)."""
    ext = result.get("extVerificationKey")
    if not ext:
        return verification_key
    if not isinstance(ext, str) or not isinstance(result.get("extVerificationKeySignature"), str):
        raise TcfError(ErrorCode.INVALID_SIGNATURE, "extVerificationKey fields must be strings")
    try:
        crypto.verify_hash(
            verification_key, crypto.sha256(ext.encode("utf-8")), result["extVerificationKeySignature"]
        )
    except crypto.CryptoError:
        raise TcfError(
            ErrorCode.INVALID_SIGNATURE, "extVerificationKeySignature is not the worker's endorsement"
        ) from None
    return ext


def verify_result(verification_key: str, result: dict[str, Any]) -> None:
    """Raise TcfError(INVALID_SIGNATURE) unless the worker (or its endorsed WPE) signed ``result``."""
    key = check_endorsement(verification_key, result)
    signature = result.get("workerSignature")
    if not isinstance(signature, str):
        raise TcfError(ErrorCode.INVALID_SIGNATURE, "result has no workerSignature")
    try:
        crypto.verify_hash(key, crypto.response_hash(result), signature)
    except crypto.CryptoError as exc:
        raise TcfError(ErrorCode.INVALID_SIGNATURE, f"workerSignature: {exc}") from None


def receipt_update(
    keys: WorkerKeys, work_order_id: str, update_type: int, update_data: str
) -> dict[str, Any]:
    """A WorkOrderReceiptUpdate ``params`` object signed by the worker (TCF 7.2.7)."""
    params: dict[str, Any] = {
        "workOrderId": work_order_id,
        "updaterId": keys.worker_id,
        "updateType": int(update_type),
        "updateData": update_data,
        "signatureRules": crypto.SIGNATURE_RULES,
        "receiptVerificationKey": keys.verification_key,
    }
    params["updateSignature"] = keys.sign(crypto.receipt_update_hash(params))
    return params


def completion_receipt(keys: WorkerKeys, result: dict[str, Any]) -> dict[str, Any]:
    """The receipt update a worker posts when it completes a work order."""
    return receipt_update(
        keys, result["workOrderId"], ReceiptStatus.COMPLETED, crypto.response_hash(result).hex()
    )


def failure_receipt(keys: WorkerKeys, work_order_id: str, error: TcfError) -> dict[str, Any]:
    return receipt_update(keys, work_order_id, ReceiptStatus.FAILED, f"{error.code}: {error.message}")


__all__ = [
    "WorkerKeys",
    "completion_receipt",
    "check_endorsement",
    "decrypt_inputs",
    "endorse",
    "failure_receipt",
    "process",
    "receipt_update",
    "verify_requester",
    "verify_result",
]
