"""Sealing: encrypt data so that only an enclave with the same measurement, on the
same platform, can decrypt it.

The key is derived inside the enclave with HKDF-SHA256 from the per-installation
platform secret and the measurement; it never leaves the enclave. Sealed blobs are
``version || nonce || AES-256-GCM(ciphertext || tag)`` with the measurement and a
caller label as associated data.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = b"\x01"
_NONCE = 12


class SealError(Exception):
    """Sealed data cannot be opened here (other measurement, other platform, or tampered)."""


class SealingKey:
    """A sealing key bound to one measurement. Its repr never shows key material."""

    __slots__ = ("_aead", "measurement")

    def __init__(self, platform_secret: bytes, measurement: bytes) -> None:
        if len(platform_secret) < 32:
            raise ValueError("platform secret must be at least 32 bytes")
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"heddle.tee.seal.v1",
            info=b"measurement:" + measurement,
        ).derive(platform_secret)
        self._aead = AESGCM(key)
        self.measurement = measurement

    def __repr__(self) -> str:
        return f"SealingKey(measurement={self.measurement.hex()[:16]}..., key=<hidden>)"

    def seal(self, data: bytes, label: bytes = b"") -> bytes:
        """Encrypt ``data``; ``label`` must match when unsealing."""
        nonce = os.urandom(_NONCE)
        return VERSION + nonce + self._aead.encrypt(nonce, data, self._aad(label))

    def unseal(self, blob: bytes, label: bytes = b"") -> bytes:
        """Decrypt a blob made by :meth:`seal` under the same measurement and platform."""
        if len(blob) < 1 + _NONCE + 16 or blob[:1] != VERSION:
            raise SealError("not a sealed blob (bad version or too short)")
        try:
            return self._aead.decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], self._aad(label))
        except InvalidTag:
            raise SealError(
                "cannot unseal: the data was sealed to a different measurement or platform, "
                "under another label, or it was modified"
            ) from None

    def _aad(self, label: bytes) -> bytes:
        return b"heddle.seal|" + self.measurement + b"|" + label
