"""Evidence: what an enclave presents to prove what it is, and the report-data recipe.

Every evidence type carries 64 bytes of report data chosen by the enclave and
covered by the platform's signature. heddle fills them as

    report_data = SHA-256(public keys) || SHA-256("heddle.tee.nonce.v1" || nonce)

so a verifier learns that the enclave holding those public keys produced the
evidence after the verifier chose ``nonce``. This module also holds the virtual
platform's quote layout, which the virtual enclave produces.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

REPORT_DATA_SIZE = 64
VIRTUAL = "virtual"

_KEYS_DOMAIN = b"heddle.tee.keys.v1\x00"
_NONCE_DOMAIN = b"heddle.tee.nonce.v1\x00"


class EvidenceFormatError(ValueError):
    """Evidence bytes do not parse."""


def keys_digest(public_keys: Mapping[str, bytes]) -> bytes:
    """SHA-256 over named public keys (DER SubjectPublicKeyInfo), in name order."""
    h = hashlib.sha256(_KEYS_DOMAIN)
    for name in sorted(public_keys):
        n = name.encode()
        key = public_keys[name]
        h.update(struct.pack(">H", len(n)) + n + struct.pack(">I", len(key)) + key)
    return h.digest()


def report_data(public_keys: Mapping[str, bytes], nonce: bytes) -> bytes:
    """The 64 bytes of report data binding ``public_keys`` and the verifier's ``nonce``."""
    return keys_digest(public_keys) + hashlib.sha256(_NONCE_DOMAIN + nonce).digest()


@dataclass(frozen=True)
class Evidence:
    """Typed attestation evidence.

    ``quote`` is the platform's signed structure (an SGX quote, an SEV-SNP report, a
    virtual quote); ``public_keys`` are the enclave's keys whose digest is in the
    report data; ``collateral`` carries what a verifier may need besides its trust
    anchors (certificates, for instance).
    """

    type: str
    quote: bytes
    public_keys: Mapping[str, bytes] = field(default_factory=dict)
    collateral: Mapping[str, bytes] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """Serialize as JSON with base64 fields (stable, language neutral)."""

        def b64(d: Mapping[str, bytes]) -> dict[str, str]:
            return {k: base64.b64encode(v).decode() for k, v in sorted(d.items())}

        doc = {
            "type": self.type,
            "quote": base64.b64encode(self.quote).decode(),
            "public_keys": b64(self.public_keys),
            "collateral": b64(self.collateral),
        }
        return json.dumps(doc, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Evidence:
        """Parse :meth:`to_bytes` output; raises :class:`EvidenceFormatError`."""
        try:
            doc = json.loads(raw)

            def unb64(d: object) -> dict[str, bytes]:
                if not isinstance(d, dict):
                    raise TypeError("expected an object")
                return {str(k): base64.b64decode(v, validate=True) for k, v in d.items()}

            etype = doc["type"]
            if not isinstance(etype, str):
                raise TypeError("type must be a string")
            return cls(
                type=etype,
                quote=base64.b64decode(doc["quote"], validate=True),
                public_keys=unb64(doc.get("public_keys", {})),
                collateral=unb64(doc.get("collateral", {})),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise EvidenceFormatError(f"malformed evidence: {exc}") from None


# --- the virtual platform's quote -------------------------------------------------

VIRTUAL_MAGIC = b"HVQ1"
VIRTUAL_VERSION = 1
FLAG_DEBUG = 0x1
FLAG_INSECURE = 0x2
_VQ = struct.Struct(">4sHH32s64s32s")


@dataclass(frozen=True)
class VirtualQuote:
    """The body a virtual platform root signs. Always flagged insecure."""

    measurement: bytes
    report_data: bytes
    platform_id: bytes
    debug: bool
    insecure: bool = True
    signature: bytes = b""

    def signed_bytes(self) -> bytes:
        flags = (FLAG_DEBUG if self.debug else 0) | (FLAG_INSECURE if self.insecure else 0)
        return _VQ.pack(
            VIRTUAL_MAGIC,
            VIRTUAL_VERSION,
            flags,
            self.measurement,
            self.report_data,
            self.platform_id,
        )

    def to_bytes(self) -> bytes:
        return self.signed_bytes() + struct.pack(">H", len(self.signature)) + self.signature

    @classmethod
    def from_bytes(cls, raw: bytes) -> VirtualQuote:
        if len(raw) < _VQ.size + 2:
            raise EvidenceFormatError("virtual quote is too short")
        magic, version, flags, meas, rdata, pid = _VQ.unpack_from(raw)
        if magic != VIRTUAL_MAGIC or version != VIRTUAL_VERSION:
            raise EvidenceFormatError("not a version-1 virtual quote")
        (slen,) = struct.unpack_from(">H", raw, _VQ.size)
        sig = raw[_VQ.size + 2 :]
        if len(sig) != slen:
            raise EvidenceFormatError("virtual quote signature length mismatch")
        return cls(meas, rdata, pid, bool(flags & FLAG_DEBUG), bool(flags & FLAG_INSECURE), sig)
