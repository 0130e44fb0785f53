"""Client identities and signers, as fabric-gateway models them.

A signer is a callable taking the *digest* of a message (SHA-256 by default) and returning
an ASN.1 DER ECDSA signature, so a key kept in an HSM, a wallet or another process can sign
(see offline signing in :mod:`heddle.client.gateway`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from fabric_protos.msp import identities_pb2

Signer = Callable[[bytes], bytes]
Hash = Callable[[bytes], bytes]

_ORDERS = {
    "secp256r1": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp384r1": int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16
    ),
}


@dataclass(frozen=True)
class Identity:
    """An MSP id and the PEM certificate that identifies the client in that MSP."""

    mspid: str
    credentials: bytes

    def serialized(self) -> bytes:
        """The SerializedIdentity bytes that go into headers as the creator."""
        return identities_pb2.SerializedIdentity(
            mspid=self.mspid, id_bytes=self.credentials
        ).SerializeToString()


def sha256(message: bytes) -> bytes:
    return hashlib.sha256(message).digest()


def identity_from_msp_dir(path: str | Path, mspid: str) -> Identity:
    """The identity whose certificate is in ``path/signcerts`` (an MSP folder as cryptogen writes)."""
    certs = sorted(p for p in (Path(path) / "signcerts").iterdir() if p.is_file())
    if not certs:
        raise FileNotFoundError(f"no certificate in {Path(path) / 'signcerts'}")
    return Identity(mspid, certs[0].read_bytes())


def signer_from_key_pem(pem: bytes, password: bytes | None = None) -> Signer:
    """A signer over digests with an EC private key (low-S signatures, as Fabric requires)."""
    key = serialization.load_pem_private_key(pem, password)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("only EC private keys can sign Fabric transactions")
    order = _ORDERS.get(key.curve.name)
    if order is None:
        raise ValueError(f"unsupported curve {key.curve.name}")
    prehash = utils.Prehashed(hashes.SHA256() if key.curve.key_size <= 256 else hashes.SHA384())

    def sign(digest: bytes) -> bytes:
        r, s = utils.decode_dss_signature(key.sign(digest, ec.ECDSA(prehash)))
        if s > order // 2:
            s = order - s
        return utils.encode_dss_signature(r, s)

    return sign


def signer_from_msp_dir(path: str | Path) -> Signer:
    """A signer with the private key in ``path/keystore``."""
    keys = sorted(p for p in (Path(path) / "keystore").iterdir() if p.is_file())
    if not keys:
        raise FileNotFoundError(f"no private key in {Path(path) / 'keystore'}")
    return signer_from_key_pem(keys[0].read_bytes())
