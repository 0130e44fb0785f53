"""The virtual platform: a locally generated root standing in for SGX/SEV hardware.

``VirtualPlatform.ensure(directory)`` is the installation step: it creates the
platform root key (which signs virtual evidence) and the platform secret (from which
sealing keys derive), readable only by the installing user. The enclave process
reads them; the host side only needs the root certificate, to verify evidence.
Virtual evidence is always flagged insecure: nothing but file permissions protects
these secrets from the host's operator (see docs/security.md).
"""

from __future__ import annotations

import datetime
import hashlib
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from heddle.tee.attestation import Claims
from heddle.tee.enclave.evidence import VIRTUAL, Evidence, VirtualQuote
from heddle.tee.enclave.runtime import ROOT_KEY_FILE, SEAL_SECRET_FILE
from heddle.tee.enclave.tls import spki
from heddle.tee.errors import AttestationError

ROOT_CERT_FILE = "root.crt"


class VirtualPlatform:
    """One installation's virtual platform, identified by its root certificate."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        try:
            pem = (self.directory / ROOT_CERT_FILE).read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no virtual platform in {self.directory} (run VirtualPlatform.ensure first)"
            ) from None
        self.root_certificate = x509.load_pem_x509_certificate(pem)
        root_key = self.root_certificate.public_key()
        if not isinstance(root_key, ec.EllipticCurvePublicKey):
            raise ValueError("virtual platform root must be an EC key")
        self.root_public_key = root_key
        self.platform_id = hashlib.sha256(spki(root_key)).digest()

    def __repr__(self) -> str:
        return f"VirtualPlatform({str(self.directory)!r}, id={self.platform_id.hex()[:16]})"

    @classmethod
    def ensure(cls, directory: str | os.PathLike[str]) -> VirtualPlatform:
        """Create the platform in ``directory`` if it does not exist yet, then load it."""
        d = Path(directory)
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not (d / ROOT_CERT_FILE).exists():
            key = ec.generate_private_key(ec.SECP256R1())
            _write_private(
                d / ROOT_KEY_FILE,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            _write_private(d / SEAL_SECRET_FILE, os.urandom(32))
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "heddle virtual platform root")])
            now = datetime.datetime.now(datetime.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256())
            )
            tmp = d / (ROOT_CERT_FILE + ".tmp")
            tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            tmp.replace(d / ROOT_CERT_FILE)  # the certificate last: its presence means complete
        return cls(d)

    def verifier(self) -> VirtualVerifier:
        """A verifier that trusts this platform's root."""
        return VirtualVerifier([self.root_public_key])


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


class VirtualVerifier:
    """Verifies ``virtual`` evidence against trusted virtual-platform roots."""

    evidence_type = VIRTUAL

    def __init__(self, trusted_roots: list[ec.EllipticCurvePublicKey]) -> None:
        self._roots = {hashlib.sha256(spki(k)).digest(): k for k in trusted_roots}

    def parse(self, evidence: Evidence) -> Claims:
        q = VirtualQuote.from_bytes(evidence.quote)
        return Claims(
            type=VIRTUAL,
            measurement=q.measurement,
            report_data=q.report_data,
            debug=q.debug,
            insecure=True,
            details={"platform_id": q.platform_id.hex()},
        )

    def authenticate(self, evidence: Evidence, claims: Claims) -> None:
        q = VirtualQuote.from_bytes(evidence.quote)
        root = self._roots.get(q.platform_id)
        if root is None:
            raise AttestationError("virtual: evidence is from an untrusted virtual platform")
        try:
            root.verify(q.signature, q.signed_bytes(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise AttestationError("virtual: quote signature does not verify") from None
        if not q.insecure:
            raise AttestationError("virtual: quote is not flagged insecure")
