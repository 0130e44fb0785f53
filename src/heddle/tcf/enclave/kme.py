"""Key-management enclave (KME) of a TCF worker pool.

The KME holds the pool's worker identity (signing and encryption keys, sealed to its
measurement). A work-order-processing enclave (WPE) joins only after the KME has
verified the WPE's evidence itself: fresh nonce, platform signature, report data
binding the WPE's keys, and a measurement from ``CONFIG["wpe_measurements"]``, which is
part of this bundle and therefore of the KME's own measurement. The KME then endorses
the WPE's verifying key, and for each work order re-wraps the requester's session key
and data keys to that WPE's encryption key only.

On the virtual platform the KME checks WPE quotes with the platform root the runtime
already holds; on SGX this step is local attestation (EREPORT/EGETKEY) between enclaves
of the same platform.
"""

from __future__ import annotations

import json
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from heddle_enclave.evidence import VIRTUAL, Evidence, VirtualQuote, report_data

from heddle.tcf import crypto, processor
from heddle.tcf.codes import ErrorCode, TcfError
from heddle.tcf.enclave.worker import identity, install_keys, seal_keys

CONFIG: dict[str, object] = {"wpe_measurements": []}


def verify_wpe(ctx, evidence: Evidence, nonce: bytes) -> dict[str, bytes]:
    """Verify a WPE's evidence inside the KME; return its bound public keys."""
    if evidence.type != VIRTUAL:
        raise PermissionError(f"evidence type {evidence.type!r} is not supported by this KME")
    quote = VirtualQuote.from_bytes(evidence.quote)
    root = ctx._rt._root.public_key()  # the platform root the measured runtime loaded
    try:
        root.verify(quote.signature, quote.signed_bytes(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise PermissionError("WPE quote is not signed by this platform") from None
    if quote.report_data != report_data(evidence.public_keys, nonce):
        raise PermissionError("WPE evidence does not bind its keys and the KME's nonce")
    allowed = {bytes.fromhex(m) for m in CONFIG.get("wpe_measurements", [])}  # type: ignore[union-attr]
    if quote.measurement not in allowed:
        raise PermissionError(f"WPE measurement {quote.measurement.hex()[:16]} is not allowed")
    if quote.debug and not ctx.debug:
        raise PermissionError("a debug WPE may not join a production KME")
    return dict(evidence.public_keys)


def setup(ctx) -> None:
    state: dict[str, processor.WorkerKeys] = {}
    nonces: set[bytes] = set()
    wpes: dict[str, dict[str, str]] = {}

    def keys() -> processor.WorkerKeys:
        if "keys" not in state:
            raise RuntimeError("worker keys are not installed (call tcf.init)")
        return state["keys"]

    @ctx.host_handler("tcf.init")
    def init(body: bytes) -> bytes:
        if "keys" in state:
            raise RuntimeError("worker keys are already installed")
        k = install_keys(ctx, state, body)
        return json.dumps({"sealed": seal_keys(ctx, k).hex(), **identity(k)}).encode()

    @ctx.host_handler("kme.nonce")
    def nonce(body: bytes) -> bytes:
        n = os.urandom(32)
        nonces.add(n)
        return n

    @ctx.host_handler("kme.register_wpe")
    def register_wpe(body: bytes) -> bytes:
        doc = json.loads(body)
        n = bytes.fromhex(doc["nonce"])
        if n not in nonces:
            raise PermissionError("unknown or used nonce")
        nonces.discard(n)
        public = verify_wpe(ctx, Evidence.from_bytes(bytes.fromhex(doc["evidence"])), n)
        vk_pem = _pem(public["tcf.verifying"])
        ek_pem = _pem(public["tcf.encryption"])
        wpe_id = crypto.sha256(public["tcf.verifying"]).hex()
        wpes[wpe_id] = {"verificationKey": vk_pem, "encryptionKey": ek_pem}
        ctx.log.info("WPE %s joined the pool", wpe_id[:16])
        return json.dumps(
            {"wpeId": wpe_id, "workerId": keys().worker_id, **processor.endorse(keys(), vk_pem)}
        ).encode()

    @ctx.host_handler("kme.preprocess")
    def preprocess(body: bytes) -> bytes:
        doc = json.loads(body)
        wpe = wpes.get(doc.get("wpeId", ""))
        if wpe is None:
            raise PermissionError("no such WPE in this pool")
        params = doc["params"]
        k = keys()
        try:
            session_key = crypto.unwrap_key(k.encryption, params["encryptedSessionKey"])
            processor.verify_requester(params, session_key)
        except (crypto.CryptoError, KeyError, TypeError):
            session_key = None
        except TcfError as exc:
            return json.dumps({"error": exc.to_json()}).encode()
        if session_key is None:
            err = TcfError(ErrorCode.INVALID_PARAMETER, "encryptedSessionKey does not open under this worker")
            return json.dumps({"error": err.to_json()}).encode()
        rewrapped = {params["encryptedSessionKey"]: crypto.wrap_key(wpe["encryptionKey"], session_key)}
        for item in [*(params.get("inData") or []), *(params.get("outData") or [])]:
            marker = item.get("encryptedDataEncryptionKey") or ""
            if marker and marker not in crypto.SESSION_KEY_MARKERS and marker != crypto.PLAINTEXT_MARKER:
                try:
                    rewrapped[marker] = crypto.wrap_key(
                        wpe["encryptionKey"], crypto.unwrap_key(k.encryption, marker)
                    )
                except crypto.CryptoError:
                    continue  # the WPE reports the item as undecryptable
        return json.dumps({"keys": rewrapped}).encode()

    @ctx.host_handler("kme.complete")
    def complete(body: bytes) -> bytes:
        doc = json.loads(body)
        k = keys()
        if "result" in doc:
            result = doc["result"]
            processor.verify_result(k.verification_key, result)  # only an endorsed WPE's result
            return json.dumps(processor.completion_receipt(k, result)).encode()
        err = TcfError(int(doc["error"]["code"]), str(doc["error"]["message"]))
        return json.dumps(processor.failure_receipt(k, str(doc["workOrderId"]), err)).encode()


def _pem(der: bytes) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_der_public_key(der)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
