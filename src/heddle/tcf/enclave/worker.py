"""Singleton TCF worker enclave: holds the worker's keys and processes work orders.

Host calls (plaintext at the boundary; every secret inside them is encrypted to keys
that exist only here):

* ``tcf.init`` (sealed keys or empty) -> JSON {sealed, workerId, verificationKey,
  encryptionKey, encryptionKeyNonce, encryptionKeySignature}: generate the keys on first
  start, or unseal the ones a previous run of the same measurement sealed, so the worker
  keeps its identity across restarts; bind their public halves into the evidence.
* ``tcf.process`` (WorkOrderSubmit params JSON) -> JSON {result | error, receipt}: the
  signed result and the worker-signed receipt update.
"""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from heddle.tcf import crypto, processor
from heddle.tcf.codes import ErrorCode, TcfError

CONFIG: dict[str, object] = {}
SEAL_LABEL = b"heddle.tcf.worker-keys.v1"


def seal_keys(ctx, keys: processor.WorkerKeys) -> bytes:
    def der(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
        return key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).hex()

    doc = {"signing": der(keys.signing), "encryption": der(keys.encryption)}
    return ctx.seal(json.dumps(doc).encode(), label=SEAL_LABEL)


def unseal_keys(ctx, blob: bytes) -> processor.WorkerKeys:
    doc = json.loads(ctx.unseal(blob, label=SEAL_LABEL))
    signing = serialization.load_der_private_key(bytes.fromhex(doc["signing"]), None)
    encryption = serialization.load_der_private_key(bytes.fromhex(doc["encryption"]), None)
    if not isinstance(signing, ec.EllipticCurvePrivateKey) or not isinstance(encryption, rsa.RSAPrivateKey):
        raise TypeError("sealed worker keys have the wrong types")
    return processor.WorkerKeys(signing, encryption)


def identity(keys: processor.WorkerKeys) -> dict[str, str]:
    """The public signup data a worker publishes, with its self-signed encryption key."""
    nonce = crypto.new_nonce()
    encryption_key = keys.encryption_key
    return {
        "workerId": keys.worker_id,
        "verificationKey": keys.verification_key,
        "encryptionKey": encryption_key,
        "encryptionKeyNonce": nonce,
        "encryptionKeySignature": keys.sign(crypto.encryption_key_hash(encryption_key, nonce, "")),
    }


def install_keys(ctx, state: dict, body: bytes) -> processor.WorkerKeys:
    keys = unseal_keys(ctx, body) if body else processor.WorkerKeys.generate()
    ctx.add_public_key("tcf.verifying", crypto.public_der(keys.signing))
    ctx.add_public_key("tcf.encryption", crypto.public_der(keys.encryption))
    state["keys"] = keys
    return keys


def run_work_order(keys: processor.WorkerKeys, params: dict, **kw) -> dict:
    """Process one work order; a refusal becomes a signed failure receipt, never a crash."""
    work_order_id = params.get("workOrderId") if isinstance(params, dict) else None
    try:
        result = processor.process(keys, params, **kw)
    except Exception as exc:  # any failure becomes a signed failure, never a stuck order
        err = exc if isinstance(exc, TcfError) else TcfError(ErrorCode.UNKNOWN_ERROR, type(exc).__name__)
        doc: dict[str, object] = {"error": err.to_json()}
        if isinstance(work_order_id, str):
            doc["receipt"] = processor.failure_receipt(keys, work_order_id, err)
        return doc
    return {"result": result, "receipt": processor.completion_receipt(keys, result)}


def setup(ctx) -> None:
    state: dict[str, processor.WorkerKeys] = {}

    @ctx.host_handler("tcf.init")
    def init(body: bytes) -> bytes:
        if "keys" in state:
            raise RuntimeError("worker keys are already installed")
        keys = install_keys(ctx, state, body)
        doc = {"sealed": seal_keys(ctx, keys).hex(), **identity(keys)}
        ctx.log.info("worker keys ready")
        return json.dumps(doc).encode()

    @ctx.host_handler("tcf.process")
    def process(body: bytes) -> bytes:
        keys = state.get("keys")
        if keys is None:
            raise RuntimeError("worker keys are not installed (call tcf.init)")
        try:
            params = json.loads(body)
        except ValueError:
            return json.dumps(
                {"error": {"code": int(ErrorCode.INVALID_PARAMETER), "message": "bad JSON"}}
            ).encode()
        return json.dumps(run_work_order(keys, params)).encode()
