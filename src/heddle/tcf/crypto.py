"""TCF cryptography: keys, data encryption, and the request-hash and signature recipes.

The recipes follow the EEA Off-Chain Trusted Compute specification (work order request
hash, section 6.1.8.1; work order result signature, 6.1.8.2; receipt create and
update signatures, 7.2.2 and 7.2.7) as Hyperledger Avalon computed them, so hashes and
signatures interoperate:

* request hash  = SHA-256( B64(SHA-256(requesterNonce|workOrderId|workerId|workloadId|requesterId))
                          | item hashes of inData | item hashes of outData )
  where an item hash is B64(SHA-256(dataHash|data|encryptedDataEncryptionKey|iv)),
  items taken in ``index`` order, absent fields as empty strings;
* result hash   = the same with ``workerNonce`` in place of the requester nonce and the
  response's outData as the only items;
* signatures    = ECDSA over secp256k1 with SHA-256, applied to the 32-byte hash, DER
  encoded, base64 in JSON; verifying keys are PEM SubjectPublicKeyInfo.

Encryption: a session key and per-item data keys are AES-256-GCM keys (tag appended to
the ciphertext); keys travel wrapped with RSA-OAEP (SHA-256, MGF1-SHA-256) under the
worker's 3072-bit encryption key. Every encryption uses a fresh 12-byte IV from the
operating system's CSPRNG; nothing here accepts a caller's IV for encryption.

This module is bundled into the worker enclave: it imports only the standard library
and ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_SIZE = 32  # AES-256
IV_SIZE = 12  # AES-GCM nonce
RSA_BITS = 3072
NONCE_SIZE = 16

HASHING_ALGORITHM = "SHA-256"
SIGNING_ALGORITHM = "SECP256K1"
KEY_ENCRYPTION_ALGORITHM = "RSA-OAEP-3072"
DATA_ENCRYPTION_ALGORITHM = "AES-GCM-256"
SIGNATURE_RULES = "SHA-256/SECP256K1"

# encryptedDataEncryptionKey markers (TCF 6.1.7): empty or "null": the item is
# encrypted with the session key; "-": the item is not encrypted (base64 only).
SESSION_KEY_MARKERS = ("", "null")
PLAINTEXT_MARKER = "-"

_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})*$")


class CryptoError(ValueError):
    """Malformed key, ciphertext, hex or signature; the message carries no secret."""


# --- encodings ------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, what: str = "value") -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, AttributeError):
        raise CryptoError(f"{what} is not valid base64") from None


def to_hex(data: bytes) -> str:
    return data.hex()


def from_hex(text: str, what: str = "value") -> bytes:
    if not isinstance(text, str) or not _HEX.match(text):
        raise CryptoError(f"{what} is not an even-length hex string")
    return bytes.fromhex(text)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def random_bytes(n: int) -> bytes:
    """Secrets, keys, IVs and nonces all come from here: the OS CSPRNG."""
    return os.urandom(n)


def new_nonce() -> str:
    return random_bytes(NONCE_SIZE).hex()


# --- keys -------------------------------------------------------------------------


def generate_signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256K1())


def generate_encryption_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


def public_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def public_der(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pem_to_der(pem: str) -> bytes:
    key = _load_public(pem)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_public(pem: str) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError, AttributeError):
        raise CryptoError("not a PEM public key") from None
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return key
    raise CryptoError("unsupported public key type")


def load_verifying_key(pem: str) -> ec.EllipticCurvePublicKey:
    key = _load_public(pem)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256K1):
        raise CryptoError("verifying key must be a secp256k1 EC key")
    return key


def load_encryption_key(pem: str) -> rsa.RSAPublicKey:
    key = _load_public(pem)
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < 2048:
        raise CryptoError("encryption key must be an RSA key of at least 2048 bits")
    return key


# --- signatures -------------------------------------------------------------------


def sign_hash(key: ec.EllipticCurvePrivateKey, digest: bytes) -> str:
    """Base64 DER ECDSA-SHA256 signature over ``digest`` (a recipe's 32-byte hash)."""
    return b64(key.sign(digest, ec.ECDSA(hashes.SHA256())))


def verify_hash(verifying_key_pem: str, digest: bytes, signature_b64: str) -> None:
    """Raise :class:`CryptoError` unless ``signature_b64`` signs ``digest``."""
    key = load_verifying_key(verifying_key_pem)
    sig = unb64(signature_b64, "signature")
    try:
        key.verify(sig, digest, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise CryptoError("signature does not verify") from None


# --- key wrapping and data encryption ---------------------------------------------

_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def new_key() -> bytes:
    return random_bytes(KEY_SIZE)


def wrap_key(encryption_key_pem: str, key: bytes) -> str:
    """RSA-OAEP-wrap ``key`` to the worker's encryption key; hex, as TCF carries it."""
    return load_encryption_key(encryption_key_pem).encrypt(key, _OAEP).hex()


def unwrap_key(private_key: rsa.RSAPrivateKey, wrapped_hex: str) -> bytes:
    try:
        key = private_key.decrypt(from_hex(wrapped_hex, "wrapped key"), _OAEP)
    except ValueError:
        raise CryptoError("wrapped key does not decrypt under this worker's key") from None
    if len(key) != KEY_SIZE:
        raise CryptoError("wrapped key is not a 256-bit AES key")
    return key


def encrypt(key: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    """AES-256-GCM with a fresh random IV; returns (ciphertext||tag, iv)."""
    iv = random_bytes(IV_SIZE)
    return AESGCM(key).encrypt(iv, plaintext, None), iv


def encrypt_with_iv(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """For published test vectors only: the caller vouches that ``iv`` is never reused."""
    return AESGCM(key).encrypt(iv, plaintext, None)


def decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    if len(key) != KEY_SIZE or len(iv) != IV_SIZE:
        raise CryptoError("AES-256-GCM needs a 32-byte key and a 12-byte IV")
    try:
        return AESGCM(key).decrypt(iv, ciphertext, None)
    except InvalidTag:
        raise CryptoError("ciphertext fails authentication (tampered or wrong key)") from None


# --- the hash recipes ---------------------------------------------------------------


def _text(item: Mapping[str, object], name: str) -> str:
    value = item.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CryptoError(f"{name} must be a string")
    return value


def item_hashes(items: Iterable[Mapping[str, object]]) -> str:
    """Concatenated base64 item hashes of inData or outData, in ``index`` order."""
    ordered = sorted(items, key=lambda it: int(it.get("index", 0)))  # type: ignore[call-overload]
    out = []
    for item in ordered:
        material = (
            _text(item, "dataHash")
            + _text(item, "data")
            + _text(item, "encryptedDataEncryptionKey")
            + _text(item, "iv")
        )
        out.append(b64(sha256(material.encode("utf-8"))))
    return "".join(out)


def _header_hash(params: Mapping[str, object], nonce_field: str) -> str:
    material = "".join(
        _text(params, name) for name in (nonce_field, "workOrderId", "workerId", "workloadId", "requesterId")
    )
    return b64(sha256(material.encode("utf-8")))


def request_hash(params: Mapping[str, object]) -> bytes:
    """Work order request hash (TCF 6.1.8.1) over a WorkOrderSubmit ``params`` object."""
    in_data = params.get("inData") or []
    out_data = params.get("outData") or []
    if not isinstance(in_data, list) or not isinstance(out_data, list):
        raise CryptoError("inData and outData must be arrays")
    material = _header_hash(params, "requesterNonce") + item_hashes(in_data) + item_hashes(out_data)
    return sha256(material.encode("utf-8"))


def response_hash(result: Mapping[str, object]) -> bytes:
    """Work order result hash (TCF 6.1.8.2) over a WorkOrderGetResult ``result`` object."""
    out_data = result.get("outData") or []
    if not isinstance(out_data, list):
        raise CryptoError("outData must be an array")
    material = _header_hash(result, "workerNonce") + item_hashes(out_data)
    return sha256(material.encode("utf-8"))


def receipt_create_hash(params: Mapping[str, object]) -> bytes:
    """Receipt create signature hash (TCF 7.2.2)."""
    material = (
        _text(params, "workOrderId")
        + _text(params, "workerServiceId")
        + _text(params, "workerId")
        + _text(params, "requesterId")
        + str(params.get("receiptCreateStatus", ""))
        + _text(params, "workOrderRequestHash")
        + _text(params, "requesterGeneratedNonce")
    )
    return sha256(material.encode("utf-8"))


def receipt_update_hash(params: Mapping[str, object]) -> bytes:
    """Receipt update signature hash (TCF 7.2.7)."""
    material = _text(params, "workOrderId") + str(params.get("updateType", "")) + _text(params, "updateData")
    return sha256(material.encode("utf-8"))


def encryption_key_hash(encryption_key: str, nonce: str, tag: str) -> bytes:
    """What a worker signs to vouch for its encryption key (EncryptionKeyGet result)."""
    return sha256((encryption_key + nonce + tag).encode("utf-8"))


def data_hash(plaintext: bytes) -> str:
    """``dataHash`` of an item: hex SHA-256 of its plaintext."""
    return sha256(plaintext).hex()


def hashes_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.lower().encode(), b.lower().encode())


__all__ = [
    "DATA_ENCRYPTION_ALGORITHM",
    "HASHING_ALGORITHM",
    "IV_SIZE",
    "KEY_ENCRYPTION_ALGORITHM",
    "KEY_SIZE",
    "PLAINTEXT_MARKER",
    "SESSION_KEY_MARKERS",
    "SIGNATURE_RULES",
    "SIGNING_ALGORITHM",
    "CryptoError",
    "b64",
    "data_hash",
    "decrypt",
    "encrypt",
    "encryption_key_hash",
    "from_hex",
    "generate_encryption_key",
    "generate_signing_key",
    "item_hashes",
    "new_key",
    "new_nonce",
    "public_der",
    "public_pem",
    "receipt_create_hash",
    "receipt_update_hash",
    "request_hash",
    "response_hash",
    "sign_hash",
    "unb64",
    "unwrap_key",
    "verify_hash",
    "wrap_key",
]
