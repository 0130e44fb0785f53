"""Cryptographic primitives: ECDSA P-256 low-S signing, hashing, key files."""

from heddle.crypto.ecdsa import (
    EcdsaSigner,
    SignatureError,
    generate_key,
    is_low_s,
    load_private_key_pem,
    private_key_pem,
    public_key_from_cert,
    to_low_s,
    verify,
)
from heddle.crypto.hashing import sha256

__all__ = [
    "EcdsaSigner",
    "SignatureError",
    "generate_key",
    "is_low_s",
    "load_private_key_pem",
    "private_key_pem",
    "public_key_from_cert",
    "sha256",
    "to_low_s",
    "verify",
]
