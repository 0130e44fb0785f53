"""ECDSA over P-256 with SHA-256, the way Fabric signs.

Fabric only accepts signatures whose S is in the lower half of the curve order
(so a signature cannot be re-shaped into a second valid one); signing here always
normalises to low-S and verification refuses high-S signatures.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

# Orders of the curves we sign on; half of each bounds a low-S signature.
_CURVE_ORDERS = {
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp384r1": int(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
        16,
    ),
    "secp256k1": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
}

_HASH_FOR_CURVE = {"secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384, "secp256k1": hashes.SHA256}
# The signature algorithm objects are immutable: made once, not per signature
_ECDSA_FOR_CURVE = {name: ec.ECDSA(h()) for name, h in _HASH_FOR_CURVE.items()}


class SignatureError(ValueError):
    """A signature is malformed, high-S, or does not verify."""


def _order(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> int:
    try:
        return _CURVE_ORDERS[key.curve.name]
    except KeyError as exc:  # pragma: no cover - only P-256/P-384/secp256k1 keys are issued
        raise SignatureError(f"unsupported curve {key.curve.name}") from exc


def is_low_s(signature: bytes, order: int = _CURVE_ORDERS["secp256r1"]) -> bool:
    """True if the DER signature's S is at most half the curve order."""
    _, s = decode_dss_signature(signature)
    return s <= order // 2


def to_low_s(signature: bytes, order: int = _CURVE_ORDERS["secp256r1"]) -> bytes:
    """Return the low-S form of a DER ECDSA signature."""
    r, s = decode_dss_signature(signature)
    if s > order // 2:
        s = order - s
    return encode_dss_signature(r, s)


def generate_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    """A fresh private key (P-256 unless another curve is given)."""
    return ec.generate_private_key(curve or ec.SECP256R1())


class EcdsaSigner:
    """Signs messages with one private key; the only signer abstraction in heddle.

    Signatures are DER-encoded and always low-S.
    """

    def __init__(self, private_key: ec.EllipticCurvePrivateKey):
        self._key = private_key
        self._order = _order(private_key)
        self._algorithm = _ECDSA_FOR_CURVE[private_key.curve.name]

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign(self, message: bytes) -> bytes:
        sig = self._key.sign(message, self._algorithm)
        return to_low_s(sig, self._order)

    def __repr__(self) -> str:  # never show key material
        return f"EcdsaSigner(curve={self._key.curve.name})"


def verify(public_key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> None:
    """Verify a DER ECDSA signature; raise SignatureError if it is malformed, high-S or wrong."""
    curve = public_key.curve.name
    order = _CURVE_ORDERS.get(curve)
    if order is None:
        raise SignatureError(f"unsupported curve {curve}")
    try:
        r, s = decode_dss_signature(signature)
    except ValueError as exc:
        raise SignatureError("signature is not a valid DER ECDSA signature") from exc
    if r <= 0 or s <= 0 or r >= order or s >= order:
        raise SignatureError("signature values out of range")
    if s > order // 2:
        raise SignatureError("signature is not in low-S form")
    try:
        public_key.verify(signature, message, _ECDSA_FOR_CURVE[curve])
    except InvalidSignature as exc:
        raise SignatureError("signature does not verify") from exc


def load_private_key_pem(data: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("expected an EC private key")
    return key


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8 PEM, as Fabric's cryptogen writes into keystore/."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_from_cert(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureError("certificate does not hold an EC public key")
    return key
