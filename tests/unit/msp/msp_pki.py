"""A tiny PKI for MSP tests: CAs, leaves, CRLs, with explicit validity windows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fabric_protos.msp import msp_config_pb2

from heddle.crypto import generate_key

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
YEAR = dt.timedelta(days=365)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str, ous: tuple[str, ...] = (), org: str = "") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "US")]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    attrs += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou) for ou in ous]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


@dataclass
class Leaf:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return pem(self.cert)


class TestCA:
    """A CA that issues certificates with any validity window and OUs."""

    __test__ = False  # not a pytest test class

    def __init__(self, cn: str, parent: TestCA | None = None):
        self.key = generate_key()
        self.name = _name(cn, org=cn.split(".", 1)[-1])
        builder = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(parent.name if parent else self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - 5 * YEAR)
            .not_valid_after(NOW + 5 * YEAR)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        )
        signer = parent.key if parent else self.key
        self.cert = builder.sign(signer, hashes.SHA256())

    @property
    def pem(self) -> bytes:
        return pem(self.cert)

    def issue(
        self,
        cn: str,
        ous: tuple[str, ...] = ("client",),
        not_before: dt.datetime = NOW - YEAR,
        not_after: dt.datetime = NOW + YEAR,
    ) -> Leaf:
        key = generate_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, ous))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        return Leaf(cert, key)

    def crl(self, *revoked: x509.Certificate) -> bytes:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.name)
            .last_update(NOW - YEAR)
            .next_update(NOW + YEAR)
        )
        for cert in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(cert.serial_number)
                .revocation_date(NOW - YEAR)
                .build()
            )
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def msp_config(
    mspid: str,
    roots: list[TestCA],
    *,
    intermediates: list[TestCA] = (),
    crls: list[bytes] = (),
    admins: list[bytes] = (),
    node_ous: bool = True,
    ou_certifier: bytes | None = None,
) -> msp_config_pb2.MSPConfig:
    fab = msp_config_pb2.FabricMSPConfig(
        name=mspid,
        root_certs=[r.pem for r in roots],
        intermediate_certs=[i.pem for i in intermediates],
        revocation_list=list(crls),
        admins=list(admins),
        crypto_config=msp_config_pb2.FabricCryptoConfig(
            signature_hash_family="SHA2", identity_identifier_hash_function="SHA256"
        ),
    )
    if node_ous:
        certifier = roots[0].pem if ou_certifier is None else ou_certifier
        nous = fab.fabric_node_ous
        nous.enable = True
        for field, ou in (
            ("client_ou_identifier", "client"),
            ("peer_ou_identifier", "peer"),
            ("admin_ou_identifier", "admin"),
            ("orderer_ou_identifier", "orderer"),
        ):
            getattr(nous, field).CopyFrom(
                msp_config_pb2.FabricOUIdentifier(certificate=certifier, organizational_unit_identifier=ou)
            )
    return msp_config_pb2.MSPConfig(type=0, config=fab.SerializeToString())
