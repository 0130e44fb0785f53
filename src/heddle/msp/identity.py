"""Identities: an X.509 certificate bound to the MSP that vouches for it.

An ``Identity`` is what a validated ``SerializedIdentity`` turns into: its MSP id,
its certificate, the roles the MSP granted it and the means to check its signatures.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from fabric_protos.msp import identities_pb2, msp_principal_pb2
from google.protobuf.message import DecodeError

from heddle.crypto import EcdsaSigner, public_key_from_cert, verify

# Roles an identity can hold; "member" is implied by passing MSP validation.
ROLES = ("member", "client", "peer", "orderer", "admin")

_ROLE_FOR_MSP_ROLE = {
    msp_principal_pb2.MSPRole.MEMBER: "member",
    msp_principal_pb2.MSPRole.ADMIN: "admin",
    msp_principal_pb2.MSPRole.CLIENT: "client",
    msp_principal_pb2.MSPRole.PEER: "peer",
    msp_principal_pb2.MSPRole.ORDERER: "orderer",
}


class MspError(ValueError):
    """An identity or an MSP definition failed a check; the message says which."""


def serialize_identity(mspid: str, cert_pem: bytes) -> bytes:
    """SerializedIdentity bytes (mspid, PEM certificate), as Fabric puts in a creator."""
    return identities_pb2.SerializedIdentity(mspid=mspid, id_bytes=cert_pem).SerializeToString()


def parse_serialized_identity(serialized: bytes) -> tuple[str, bytes]:
    """Split SerializedIdentity bytes into (mspid, id_bytes); MspError if malformed."""
    try:
        sid = identities_pb2.SerializedIdentity.FromString(serialized)
    except (DecodeError, TypeError) as exc:
        raise MspError("malformed SerializedIdentity") from exc
    if not sid.mspid or not sid.id_bytes:
        raise MspError("malformed SerializedIdentity")
    return sid.mspid, sid.id_bytes


def load_certificate(pem_or_der: bytes, what: str = "certificate") -> x509.Certificate:
    """Parse one certificate from PEM (as Fabric stores them) or DER bytes."""
    try:
        if pem_or_der.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(pem_or_der)
        return x509.load_der_x509_certificate(pem_or_der)
    except ValueError as exc:
        raise MspError(f"could not parse {what}: {exc}") from exc


def certificate_ous(cert: x509.Certificate) -> tuple[str, ...]:
    """The subject's OrganizationalUnit values, in order."""
    return tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME))


class Identity:
    """A certificate that an MSP validated, with the roles it grants.

    Built by ``Msp.deserialize_identity``; ``roles`` always holds "member" and holds
    at most one of client/peer/orderer, plus "admin" for admins.
    """

    __slots__ = (
        "_public_key",
        "certificate",
        "certifiers_id",
        "fingerprint",
        "mspid",
        "organizational_units",
        "roles",
        "serialized",
    )

    def __init__(
        self,
        mspid: str,
        certificate: x509.Certificate,
        serialized: bytes | None = None,
        *,
        roles: Iterable[str] = ("member",),
        certifiers_id: bytes = b"",
    ):
        self.mspid = mspid
        self.certificate = certificate
        if serialized is None:
            serialized = serialize_identity(mspid, certificate.public_bytes(Encoding.PEM))
        self.serialized = serialized
        self.roles: frozenset[str] = frozenset(roles) | {"member"}
        self.organizational_units: tuple[str, ...] = certificate_ous(certificate)
        # SHA-256 over the DER of the certificates above the leaf, parent first; what
        # an ORGANIZATION_UNIT principal's certifiers_identifier names.
        self.certifiers_id = certifiers_id
        self._public_key = public_key_from_cert(certificate)
        # SHA-256 of the certificate's DER: who signed, however the certificate was encoded
        self.fingerprint: bytes = certificate.fingerprint(hashes.SHA256())

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public_key

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check a low-S ECDSA signature by this identity; raise SignatureError if bad."""
        verify(self._public_key, signature, message)

    def satisfies_principal(self, principal: msp_principal_pb2.MSPPrincipal) -> bool:
        """True if this (validated) identity matches an MSPPrincipal.

        ROLE: same MSP and the role is held (MEMBER always); IDENTITY: byte-equal
        serialized identity; ORGANIZATION_UNIT: same MSP, the OU is in the subject and
        the certifiers identifier (if given) matches; ANONYMITY: X.509 is nominal.
        """
        cls = principal.principal_classification
        try:
            if cls == msp_principal_pb2.MSPPrincipal.ROLE:
                role = msp_principal_pb2.MSPRole.FromString(principal.principal)
                wanted = _ROLE_FOR_MSP_ROLE.get(role.role)
                return role.msp_identifier == self.mspid and wanted in self.roles
            if cls == msp_principal_pb2.MSPPrincipal.IDENTITY:
                return principal.principal == self.serialized
            if cls == msp_principal_pb2.MSPPrincipal.ORGANIZATION_UNIT:
                ou = msp_principal_pb2.OrganizationUnit.FromString(principal.principal)
                if ou.msp_identifier != self.mspid:
                    return False
                if ou.organizational_unit_identifier not in self.organizational_units:
                    return False
                return not ou.certifiers_identifier or ou.certifiers_identifier == self.certifiers_id
            if cls == msp_principal_pb2.MSPPrincipal.ANONYMITY:
                anon = msp_principal_pb2.MSPIdentityAnonymity.FromString(principal.principal)
                return anon.anonymity_type == msp_principal_pb2.MSPIdentityAnonymity.NOMINAL
        except DecodeError:
            return False
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other.serialized == self.serialized

    def __hash__(self) -> int:
        return hash(self.serialized)

    def __repr__(self) -> str:
        roles = ",".join(r for r in ROLES if r in self.roles)
        return f"{type(self).__name__}(mspid={self.mspid!r}, subject={self.subject!r}, roles={roles})"


class SigningIdentity(Identity):
    """An identity whose private key we hold; signs with low-S ECDSA."""

    __slots__ = ("signer",)

    def __init__(
        self,
        mspid: str,
        certificate: x509.Certificate,
        signer: EcdsaSigner,
        serialized: bytes | None = None,
        *,
        roles: Iterable[str] = ("member",),
        certifiers_id: bytes = b"",
    ):
        super().__init__(mspid, certificate, serialized, roles=roles, certifiers_id=certifiers_id)
        if signer.public_key.public_numbers() != self.public_key.public_numbers():
            raise MspError("private key does not match the certificate's public key")
        self.signer = signer

    def sign(self, message: bytes) -> bytes:
        return self.signer.sign(message)
