"""X.509 MSP: decides which certificates are members of an organisation, in which roles.

Validation of an identity certificate:
1. it is an end-entity certificate (not a CA);
2. it chains, by issuer name and signature, through the MSP's intermediate CAs to
   one of its root CAs;
3. every certificate of that chain is inside its validity window at ``now``;
4. no CRL of the MSP, signed by the issuer of a chain member, revokes that member;
5. when organizational_unit_identifiers are configured, it carries one of them;
6. when NodeOUs are enabled, it carries exactly one of the client/peer/admin/orderer
   OUs (certified by the CA the identifier names).

Parsing and steps 1, 2, 4-6 depend only on the certificate bytes and the MSP
definition, so ``deserialize_identity`` caches them; the time window (step 3) is
checked on every call.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from fabric_protos.msp import msp_config_pb2
from google.protobuf.message import DecodeError

from heddle.crypto import EcdsaSigner, load_private_key_pem, sha256
from heddle.msp.config import FABRIC_MSP_TYPE, NODE_OU_KEYS, msp_config_from_dir
from heddle.msp.identity import (
    Identity,
    MspError,
    SigningIdentity,
    certificate_ous,
    load_certificate,
    parse_serialized_identity,
    serialize_identity,
)

_MAX_CHAIN = 8  # certificates from leaf to root; deeper chains are refused
_CACHE_SIZE = 1024

# FabricNodeOUs field -> role it grants.
_NODE_OU_ROLES = {
    "client_ou_identifier": "client",
    "peer_ou_identifier": "peer",
    "admin_ou_identifier": "admin",
    "orderer_ou_identifier": "orderer",
}


def _utc(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    return now if now.tzinfo else now.replace(tzinfo=dt.UTC)


def _stamp(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class _Checked:
    """What the time-independent checks concluded about one certificate."""

    identity: Identity
    not_before: dt.datetime  # latest notBefore along the chain
    not_after: dt.datetime  # earliest notAfter along the chain
    expiring: x509.Certificate  # the chain member whose notAfter that is


@dataclass(frozen=True)
class _OuIdentifier:
    ou: str
    certifier: bytes | None  # DER of the CA certificate it names, if any


class Msp:
    """One organisation's X.509 MSP, built from a channel's MSPConfig or a folder."""

    def __init__(self, config: msp_config_pb2.MSPConfig):
        if config.type != FABRIC_MSP_TYPE:
            raise MspError(f"unsupported MSP type {config.type} (only X.509 MSPs, type 0)")
        try:
            fab = msp_config_pb2.FabricMSPConfig.FromString(config.config)
        except DecodeError as exc:
            raise MspError("malformed FabricMSPConfig") from exc
        if not fab.name:
            raise MspError("MSP config has no name")
        self._config = msp_config_pb2.MSPConfig()
        self._config.CopyFrom(config)
        self.mspid: str = fab.name
        self.roots = [
            load_certificate(c, f"root CA certificate of MSP '{self.mspid}'") for c in fab.root_certs
        ]
        if not self.roots:
            raise MspError(f"MSP '{self.mspid}' has no root CA certificate")
        self.intermediates = [
            load_certificate(c, f"intermediate CA certificate of MSP '{self.mspid}'")
            for c in fab.intermediate_certs
        ]
        for ca in self.roots + self.intermediates:
            if not _is_ca(ca):
                raise MspError(f"MSP '{self.mspid}': {ca.subject.rfc4514_string()} is not a CA certificate")
        self._root_ders = {_der(c) for c in self.roots}
        for inter in self.intermediates:
            self._chain_of(inter)  # each intermediate must lead to a root
        self._admin_ders = {
            _der(load_certificate(c, f"admin certificate of MSP '{self.mspid}'")) for c in fab.admins
        }
        self.crls: list[x509.CertificateRevocationList] = []
        for raw in fab.revocation_list:
            try:
                self.crls.append(
                    x509.load_pem_x509_crl(raw)
                    if raw.lstrip().startswith(b"-----BEGIN")
                    else x509.load_der_x509_crl(raw)
                )
            except ValueError as exc:
                raise MspError(f"MSP '{self.mspid}': could not parse CRL: {exc}") from exc
        self._ou_identifiers = [self._ou_identifier(i) for i in fab.organizational_unit_identifiers]
        self.node_ous_enabled = bool(fab.HasField("fabric_node_ous") and fab.fabric_node_ous.enable)
        self._node_ous: dict[str, _OuIdentifier] = {}
        if self.node_ous_enabled:
            for _, field in NODE_OU_KEYS:
                if fab.fabric_node_ous.HasField(field):
                    ident = getattr(fab.fabric_node_ous, field)
                    if ident.organizational_unit_identifier:
                        self._node_ous[_NODE_OU_ROLES[field]] = self._ou_identifier(ident)
        self.tls_root_certs: list[bytes] = list(fab.tls_root_certs)
        self.tls_intermediate_certs: list[bytes] = list(fab.tls_intermediate_certs)
        self._cache: OrderedDict[bytes, _Checked] = OrderedDict()
        self._lock = threading.Lock()

    # -- construction -------------------------------------------------------------

    @classmethod
    def from_config(cls, config: msp_config_pb2.MSPConfig) -> Msp:
        return cls(config)

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str], mspid: str) -> Msp:
        return cls(msp_config_from_dir(path, mspid))

    def to_config(self) -> msp_config_pb2.MSPConfig:
        out = msp_config_pb2.MSPConfig()
        out.CopyFrom(self._config)
        return out

    def _ou_identifier(self, ident: msp_config_pb2.FabricOUIdentifier) -> _OuIdentifier:
        if not ident.certificate:
            return _OuIdentifier(ident.organizational_unit_identifier, None)
        cert = load_certificate(ident.certificate, f"OU identifier certificate of MSP '{self.mspid}'")
        return _OuIdentifier(ident.organizational_unit_identifier, _der(cert))

    # -- validation ---------------------------------------------------------------

    def _issuer_of(self, cert: x509.Certificate) -> x509.Certificate | None:
        for ca in self.intermediates + self.roots:
            if ca.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return ca
        return None

    def _chain_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        """[cert, issuer, ..., root], or MspError if it does not reach a root CA."""
        chain = [cert]
        while _der(chain[-1]) not in self._root_ders:
            if len(chain) >= _MAX_CHAIN:
                raise MspError(f"certificate chain longer than {_MAX_CHAIN} in MSP '{self.mspid}'")
            issuer = self._issuer_of(chain[-1])
            if issuer is None or any(_der(issuer) == _der(c) for c in chain):
                raise MspError(f"certificate not issued by any CA of MSP '{self.mspid}'")
            chain.append(issuer)
        return chain

    def _revoked(self, cert: x509.Certificate, issuer: x509.Certificate) -> bool:
        for crl in self.crls:
            if crl.issuer != issuer.subject:
                continue
            try:
                if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                    continue
            except TypeError:
                continue
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                return True
        return False

    def _check(self, cert: x509.Certificate, serialized: bytes | None) -> _Checked:
        """Every check but the time window."""
        if _is_ca(cert):
            raise MspError("a CA certificate cannot be used as an identity")
        chain = self._chain_of(cert)
        for member, issuer in zip(chain, chain[1:], strict=False):
            if self._revoked(member, issuer):
                raise MspError("certificate has been revoked")
        above = chain[1:]
        above_ders = {_der(c) for c in above}
        ous = certificate_ous(cert)

        def carries(ident: _OuIdentifier) -> bool:
            return ident.ou in ous and (ident.certifier is None or ident.certifier in above_ders)

        if self._ou_identifiers and not any(carries(i) for i in self._ou_identifiers):
            raise MspError(f"identity does not carry any organizational unit of MSP '{self.mspid}'")
        roles = {"member"}
        if self.node_ous_enabled:
            node_roles = sorted(role for role, ident in self._node_ous.items() if carries(ident))
            if not node_roles:
                raise MspError("identity has no NodeOU role (client, peer, admin, orderer)")
            if len(node_roles) > 1:
                raise MspError(f"identity has more than one NodeOU role ({', '.join(node_roles)})")
            roles.add(node_roles[0])
        if _der(cert) in self._admin_ders:
            roles.add("admin")
        certifiers_id = sha256(*(_der(c) for c in above))
        identity = Identity(self.mspid, cert, serialized, roles=roles, certifiers_id=certifiers_id)
        expiring = min(chain, key=lambda c: c.not_valid_after_utc)
        return _Checked(
            identity=identity,
            not_before=max(c.not_valid_before_utc for c in chain),
            not_after=expiring.not_valid_after_utc,
            expiring=expiring,
        )

    def _check_time(self, checked: _Checked, now: dt.datetime | None) -> None:
        t = _utc(now)
        if t > checked.not_after:
            who = "certificate" if checked.expiring is checked.identity.certificate else "CA certificate"
            raise MspError(f"{who} expired at {_stamp(checked.not_after)}")
        if t < checked.not_before:
            raise MspError(f"certificate is not yet valid (valid from {_stamp(checked.not_before)})")

    def validate(self, identity: Identity | x509.Certificate, now: dt.datetime | None = None) -> None:
        """Raise MspError unless the identity is a valid member of this MSP at ``now``."""
        if isinstance(identity, Identity):
            if identity.mspid != self.mspid:
                raise MspError(f"identity belongs to MSP '{identity.mspid}', not '{self.mspid}'")
            cert, serialized = identity.certificate, identity.serialized
        else:
            cert, serialized = identity, None
        self._check_time(self._check(cert, serialized), now)

    def identity_for(self, cert: x509.Certificate, now: dt.datetime | None = None) -> Identity:
        """Validate a certificate and return it as an Identity of this MSP, with its roles."""
        checked = self._check(cert, None)
        self._check_time(checked, now)
        return checked.identity

    def deserialize_identity(self, serialized: bytes, now: dt.datetime | None = None) -> Identity:
        """Parse and validate SerializedIdentity bytes of this MSP (cached by bytes)."""
        with self._lock:
            checked = self._cache.get(serialized)
            if checked is not None:
                self._cache.move_to_end(serialized)
        if checked is None:
            mspid, id_bytes = parse_serialized_identity(serialized)
            if mspid != self.mspid:
                raise MspError(f"identity belongs to MSP '{mspid}', not '{self.mspid}'")
            cert = load_certificate(id_bytes, f"certificate of an identity of MSP '{mspid}'")
            checked = self._check(cert, serialized)
            with self._lock:
                self._cache[serialized] = checked
                if len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        self._check_time(checked, now)
        return checked.identity

    def __repr__(self) -> str:
        return f"Msp(mspid={self.mspid!r}, roots={len(self.roots)}, node_ous={self.node_ous_enabled})"


class MspManager:
    """The MSPs of a channel (or a node), by MSP id; the policy evaluator's deserializer."""

    def __init__(self, msps: Iterable[Msp] = ()):
        self._msps: dict[str, Msp] = {}
        for msp in msps:
            if msp.mspid in self._msps:
                raise MspError(f"duplicate MSP '{msp.mspid}'")
            self._msps[msp.mspid] = msp

    @property
    def mspids(self) -> list[str]:
        return sorted(self._msps)

    def get(self, mspid: str) -> Msp:
        try:
            return self._msps[mspid]
        except KeyError:
            raise MspError(f"unknown MSP '{mspid}'") from None

    def __contains__(self, mspid: object) -> bool:
        return mspid in self._msps

    def deserialize_identity(self, serialized: bytes, now: dt.datetime | None = None) -> Identity:
        mspid, _ = parse_serialized_identity(serialized)
        return self.get(mspid).deserialize_identity(serialized, now)

    def __repr__(self) -> str:
        return f"MspManager({self.mspids})"


def _matching_key(keystore: Path, cert: x509.Certificate) -> EcdsaSigner:
    want = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    files = sorted(p for p in keystore.iterdir() if p.is_file()) if keystore.is_dir() else []
    for path in files:
        try:
            key = load_private_key_pem(path.read_bytes())
        except (ValueError, TypeError):
            continue
        got = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if got == want:
            return EcdsaSigner(key)
    raise MspError(f"no private key in {keystore} matches the signing certificate")


def load_signing_identity(
    msp_dir: str | os.PathLike[str], mspid: str, now: dt.datetime | None = None
) -> SigningIdentity:
    """The signing identity of a local MSP folder: signcerts/*.pem and its key in keystore/.

    When the folder has cacerts/, the certificate is validated against that MSP and
    gets its roles; otherwise it is only a member.
    """
    folder = Path(msp_dir)
    signcerts = folder / "signcerts"
    certs = sorted(p for p in signcerts.iterdir() if p.is_file()) if signcerts.is_dir() else []
    if not certs:
        raise MspError(f"no certificate in {signcerts}")
    cert_pem = certs[0].read_bytes()
    cert = load_certificate(cert_pem, f"signing certificate {certs[0]}")
    signer = _matching_key(folder / "keystore", cert)
    roles: Iterable[str] = ("member",)
    certifiers_id = b""
    if (folder / "cacerts").is_dir():
        ident = Msp.from_dir(folder, mspid).identity_for(cert, now)
        roles, certifiers_id = ident.roles, ident.certifiers_id
    return SigningIdentity(
        mspid,
        cert,
        signer,
        serialize_identity(mspid, cert_pem),
        roles=roles,
        certifiers_id=certifiers_id,
    )
