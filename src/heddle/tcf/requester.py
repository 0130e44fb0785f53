"""The requester's side of a work order, without I/O: build, sign, open, verify.

``build_work_order`` makes a WorkOrderSubmit ``params`` object: a fresh session key
wrapped to the worker's encryption key, a fresh IV for every encrypted item, the
request hash encrypted under the session key, and the requester's signature.
``open_result`` verifies a result (ids, the worker's or its endorsed WPE's signature,
every dataHash) and decrypts it. The direct-mode client and a future proxy-mode
client share these.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from heddle.tcf import crypto, processor, workloads
from heddle.tcf.codes import ErrorCode, ReceiptStatus, TcfError
from heddle.tcf.signup import WorkerInfo


@dataclass
class Requester:
    """A requester's secp256k1 key; its id is the hex SHA-256 of its verifying key."""

    key: ec.EllipticCurvePrivateKey = field(repr=False, default_factory=crypto.generate_signing_key)

    @property
    def verifying_key(self) -> str:
        return crypto.public_pem(self.key)

    @property
    def requester_id(self) -> str:
        return crypto.sha256(crypto.public_der(self.key)).hex()

    def sign(self, digest: bytes) -> str:
        return crypto.sign_hash(self.key, digest)


@dataclass(frozen=True)
class SealedItem:
    """An inData item encrypted by its owner (a hospital) under its own data key."""

    data: str  # base64 ciphertext
    iv: str
    data_hash: str
    encrypted_data_encryption_key: str  # the owner's key, wrapped to the worker


@dataclass
class PendingWorkOrder:
    """A submitted work order and the secrets needed to open its result (kept by the requester)."""

    params: dict[str, Any]
    worker: WorkerInfo
    session_key: bytes = field(repr=False)
    request_hash: bytes

    @property
    def work_order_id(self) -> str:
        return self.params["workOrderId"]


def build_work_order(
    worker: WorkerInfo,
    workload: str,
    inputs: list[bytes | SealedItem],
    requester: Requester,
    *,
    work_order_id: str | None = None,
) -> PendingWorkOrder:
    """A signed WorkOrderSubmit ``params`` object; plaintext inputs go under the session key."""
    session_key = crypto.new_key()
    in_data: list[dict[str, Any]] = []
    for index, value in enumerate(inputs):
        if isinstance(value, SealedItem):
            in_data.append(
                {
                    "index": index,
                    "dataHash": value.data_hash,
                    "data": value.data,
                    "encryptedDataEncryptionKey": value.encrypted_data_encryption_key,
                    "iv": value.iv,
                }
            )
            continue
        cipher, iv = crypto.encrypt(session_key, value)
        in_data.append(
            {
                "index": index,
                "dataHash": crypto.data_hash(value),
                "data": crypto.b64(cipher),
                "encryptedDataEncryptionKey": "null",
                "iv": iv.hex(),
            }
        )
    params: dict[str, Any] = {
        "responseTimeoutMSecs": 60000,
        "payloadFormat": "JSON-RPC",
        "resultUri": "",
        "notifyUri": "",
        "workOrderId": work_order_id or uuid.uuid4().hex,
        "workerId": worker.worker_id,
        "workloadId": workloads.workload_id(workload),
        "requesterId": requester.requester_id,
        "workerEncryptionKey": crypto.sha256(worker.encryption_key.encode()).hex(),
        "dataEncryptionAlgorithm": crypto.DATA_ENCRYPTION_ALGORITHM,
        "encryptedSessionKey": crypto.wrap_key(worker.encryption_key, session_key),
        "requesterNonce": crypto.new_nonce(),
        "inData": in_data,
        "outData": [],
    }
    digest = crypto.request_hash(params)
    sealed, iv = crypto.encrypt(session_key, digest)
    params["sessionKeyIv"] = iv.hex()
    params["encryptedRequestHash"] = sealed.hex()
    params["requesterSignature"] = requester.sign(digest)
    params["verifyingKey"] = requester.verifying_key
    return PendingWorkOrder(params, worker, session_key, digest)


def open_result(pending: PendingWorkOrder, result: dict[str, Any]) -> list[bytes]:
    """Verify ``result`` for ``pending`` and return the decrypted outData, in index order.

    Raises ``TcfError``: INVALID_SIGNATURE for a bad or missing worker signature,
    INVALID_PARAMETER for a result about another work order or tampered data.
    """
    for name in ("workOrderId", "workerId", "workloadId", "requesterId"):
        if result.get(name) != pending.params[name]:
            raise TcfError(ErrorCode.INVALID_PARAMETER, f"result {name} does not match the request")
    processor.verify_result(pending.worker.verification_key, result)
    outputs = []
    for item in sorted(result.get("outData") or [], key=lambda it: int(it["index"])):
        try:
            plain = crypto.decrypt(
                pending.session_key, crypto.from_hex(item["iv"], "iv"), crypto.unb64(item["data"], "data")
            )
        except (crypto.CryptoError, KeyError, TypeError) as exc:
            raise TcfError(ErrorCode.INVALID_PARAMETER, f"outData[{item.get('index')}]: {exc}") from None
        if not crypto.hashes_equal(str(item.get("dataHash", "")), crypto.data_hash(plain)):
            raise TcfError(ErrorCode.INVALID_PARAMETER, "outData dataHash does not match the decrypted data")
        outputs.append(plain)
    return outputs


def receipt_create(
    pending: PendingWorkOrder, requester: Requester, worker_service_id: str = ""
) -> dict[str, Any]:
    """A WorkOrderReceiptCreate ``params`` object (TCF 7.2.2), signed by the requester."""
    params: dict[str, Any] = {
        "workOrderId": pending.work_order_id,
        "workerServiceId": worker_service_id or pending.worker.worker_id,
        "workerId": pending.worker.worker_id,
        "requesterId": requester.requester_id,
        "receiptCreateStatus": int(ReceiptStatus.PENDING),
        "workOrderRequestHash": pending.request_hash.hex(),
        "requesterGeneratedNonce": crypto.new_nonce(),
        "signatureRules": crypto.SIGNATURE_RULES,
        "receiptVerificationKey": requester.verifying_key,
    }
    params["requesterSignature"] = requester.sign(crypto.receipt_create_hash(params))
    return params


__all__ = ["PendingWorkOrder", "Requester", "SealedItem", "build_work_order", "open_result", "receipt_create"]
