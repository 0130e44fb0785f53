"""Crypto material for a network, laid out the way Fabric's cryptogen writes it.

Input is a crypto-config.yaml (OrdererOrgs / PeerOrgs, each with Name, Domain,
EnableNodeOUs, CA, Specs, Template, Users); output is the folder tree Fabric's tools,
samples and test-network expect::

    DIR/peerOrganizations/org1.example.com/
        ca/{ca.org1.example.com-cert.pem, priv_sk}
        tlsca/{tlsca.org1.example.com-cert.pem, priv_sk}
        msp/{cacerts, tlscacerts, admincerts (NodeOUs off), config.yaml (NodeOUs on)}
        peers/peer0.org1.example.com/{msp/{cacerts, keystore/priv_sk, signcerts,
            tlscacerts, config.yaml}, tls/{ca.crt, server.crt, server.key}}
        users/User1@org1.example.com/{msp/..., tls/{ca.crt, client.crt, client.key}}
    DIR/ordererOrganizations/example.com/ ... orderers/orderer.example.com/ ...

Certificates are ECDSA P-256, valid 3650 days from five minutes before now.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from heddle.crypto import generate_key, private_key_pem
from heddle.msp.config import node_ous_yaml

VALIDITY = dt.timedelta(days=3650)
BACKDATE = dt.timedelta(minutes=5)
KEY_FILE = "priv_sk"

_TEMPLATE_VAR = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


class CryptoConfigError(ValueError):
    """crypto-config.yaml is invalid; the message names the bad key."""


# -- results ----------------------------------------------------------------------


@dataclass(frozen=True)
class NodeMaterial:
    """One generated node or user: its local MSP folder and TLS folder."""

    name: str  # common name, also the folder name: peer0.org1.example.com, User1@org1...
    hostname: str  # peer0, or the user name (User1, Admin)
    role: str  # peer | orderer | client | admin
    msp_dir: Path
    tls_dir: Path

    @property
    def tls_cert(self) -> Path:
        return self.tls_dir / ("client.crt" if self.role in ("client", "admin") else "server.crt")

    @property
    def tls_key(self) -> Path:
        return self.tls_dir / ("client.key" if self.role in ("client", "admin") else "server.key")

    @property
    def tls_ca(self) -> Path:
        return self.tls_dir / "ca.crt"


@dataclass(frozen=True)
class OrgMaterial:
    """One generated organisation."""

    name: str  # Name from crypto-config (Org1, Orderer)
    domain: str
    kind: str  # "orderer" or "peer"
    path: Path
    node_ous: bool
    nodes: tuple[NodeMaterial, ...]
    users: tuple[NodeMaterial, ...]

    @property
    def mspid(self) -> str:
        """The MSP id test-network gives this org in configtx.yaml (Org1 -> Org1MSP)."""
        return f"{self.name}MSP"

    @property
    def msp_dir(self) -> Path:
        return self.path / "msp"

    @property
    def ca_dir(self) -> Path:
        return self.path / "ca"

    @property
    def tlsca_dir(self) -> Path:
        return self.path / "tlsca"

    @property
    def admin(self) -> NodeMaterial:
        return self.user("Admin")

    def user(self, name: str) -> NodeMaterial:
        for u in self.users:
            if name in (u.hostname, u.name):
                return u
        raise KeyError(f"no user {name!r} in {self.domain}")

    def node(self, name: str) -> NodeMaterial:
        for n in self.nodes:
            if name in (n.hostname, n.name):
                return n
        raise KeyError(f"no node {name!r} in {self.domain}")


@dataclass(frozen=True)
class CryptoMaterial:
    """Everything ``generate`` wrote."""

    output_dir: Path
    orgs: tuple[OrgMaterial, ...] = field(default=())

    def org(self, name: str) -> OrgMaterial:
        """An org by Name, domain or MSP id."""
        for o in self.orgs:
            if name in (o.name, o.domain, o.mspid):
                return o
        raise KeyError(f"no organisation {name!r}")

    @property
    def orderer_orgs(self) -> tuple[OrgMaterial, ...]:
        return tuple(o for o in self.orgs if o.kind == "orderer")

    @property
    def peer_orgs(self) -> tuple[OrgMaterial, ...]:
        return tuple(o for o in self.orgs if o.kind == "peer")


# -- the default topology -----------------------------------------------------------


def default_crypto_config(
    orderers: int = 1, peer_orgs: int = 2, peers_per_org: int = 1, users_per_org: int = 1
) -> dict[str, Any]:
    """crypto-config for Fabric's test-network shape.

    Orderer org "Orderer" (example.com) with orderer.example.com and, for Raft,
    orderer2..ordererN; peer orgs Org1..OrgN (orgN.example.com) with peer0.. and
    Admin plus User1..; NodeOUs on everywhere.
    """
    if orderers < 1 or peer_orgs < 0 or peers_per_org < 0 or users_per_org < 0:
        raise CryptoConfigError("need at least one orderer and non-negative counts")
    specs = [{"Hostname": "orderer" if i == 1 else f"orderer{i}"} for i in range(1, orderers + 1)]
    return {
        "OrdererOrgs": [{"Name": "Orderer", "Domain": "example.com", "EnableNodeOUs": True, "Specs": specs}],
        "PeerOrgs": [
            {
                "Name": f"Org{i}",
                "Domain": f"org{i}.example.com",
                "EnableNodeOUs": True,
                "Template": {"Count": peers_per_org},
                "Users": {"Count": users_per_org},
            }
            for i in range(1, peer_orgs + 1)
        ],
    }


def generate_default_network(
    output_dir: str | os.PathLike[str],
    *,
    orderers: int = 1,
    peer_orgs: int = 2,
    peers_per_org: int = 1,
    users_per_org: int = 1,
    now: dt.datetime | None = None,
) -> CryptoMaterial:
    """Write the test-network crypto material (see ``default_crypto_config``)."""
    config = default_crypto_config(orderers, peer_orgs, peers_per_org, users_per_org)
    return generate(config, output_dir, now=now)


# -- config parsing ----------------------------------------------------------------


def load_crypto_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CryptoConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CryptoConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise CryptoConfigError(f"{path}: expected a mapping with OrdererOrgs and/or PeerOrgs")
    return doc


def _render(template: str, values: Mapping[str, Any], where: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise CryptoConfigError(f"{where}: unknown template field .{m.group(1)}")
        return str(values[m.group(1)])

    return _TEMPLATE_VAR.sub(sub, template)


def _get(
    spec: Mapping[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    where: str,
    default: Any = None,
) -> Any:
    value = spec.get(key, default)
    if value is None:
        return default
    if kind is int and isinstance(value, bool):
        raise CryptoConfigError(f"{where}.{key}: expected an integer")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise CryptoConfigError(f"{where}.{key}: expected {names}, got {type(value).__name__}")
    return value


_ORG_KEYS = {"Name", "Domain", "EnableNodeOUs", "CA", "Specs", "Template", "Users"}
_CA_KEYS = {
    "Hostname", "CommonName", "Country", "Province", "Locality",
    "OrganizationalUnit", "StreetAddress", "PostalCode",
}  # fmt: skip


@dataclass
class _NodeSpec:
    hostname: str
    common_name: str
    sans: list[str]


@dataclass
class _OrgSpec:
    name: str
    domain: str
    kind: str
    node_ous: bool
    ca: dict[str, str]
    nodes: list[_NodeSpec]
    users: list[str]


def _org_spec(spec: Any, kind: str, where: str) -> _OrgSpec:
    if not isinstance(spec, Mapping):
        raise CryptoConfigError(f"{where}: expected a mapping")
    unknown = sorted(set(spec) - _ORG_KEYS)
    if unknown:
        raise CryptoConfigError(f"{where}: unknown key {unknown[0]}")
    name = _get(spec, "Name", str, where)
    domain = _get(spec, "Domain", str, where)
    if not name:
        raise CryptoConfigError(f"{where}.Name: required")
    if not domain:
        raise CryptoConfigError(f"{where}.Domain: required")
    where = f"{where} ({name})"
    ca_in = _get(spec, "CA", Mapping, where, {})
    unknown = sorted(set(ca_in) - _CA_KEYS)
    if unknown:
        raise CryptoConfigError(f"{where}.CA: unknown key {unknown[0]}")
    ca_host = _get(ca_in, "Hostname", str, f"{where}.CA", "ca")
    ca = {
        "CommonName": _render(
            _get(ca_in, "CommonName", str, f"{where}.CA", "{{.Hostname}}.{{.Domain}}"),
            {"Hostname": ca_host, "Domain": domain},
            f"{where}.CA.CommonName",
        ),
        "Country": _get(ca_in, "Country", str, f"{where}.CA", "US"),
        "Province": _get(ca_in, "Province", str, f"{where}.CA", "California"),
        "Locality": _get(ca_in, "Locality", str, f"{where}.CA", "San Francisco"),
        "OrganizationalUnit": _get(ca_in, "OrganizationalUnit", str, f"{where}.CA", ""),
        "StreetAddress": _get(ca_in, "StreetAddress", str, f"{where}.CA", ""),
        "PostalCode": _get(ca_in, "PostalCode", str, f"{where}.CA", ""),
    }
    nodes: list[_NodeSpec] = []

    def add_node(hostname: str, cn_template: str, sans: list[Any], w: str) -> None:
        values = {"Hostname": hostname, "Domain": domain}
        cn = _render(cn_template, values, f"{w}.CommonName")
        values["CommonName"] = cn
        rendered = []
        for i, san in enumerate(sans):
            if not isinstance(san, str):
                raise CryptoConfigError(f"{w}.SANS[{i}]: expected a string")
            rendered.append(_render(san, values, f"{w}.SANS[{i}]"))
        nodes.append(_NodeSpec(hostname, cn, rendered))

    template = _get(spec, "Template", Mapping, where, {})
    if template:
        tw = f"{where}.Template"
        count = _get(template, "Count", int, tw, 0)
        start = _get(template, "Start", int, tw, 0)
        if count < 0 or start < 0:
            raise CryptoConfigError(f"{tw}: Count and Start must not be negative")
        host_t = _get(template, "Hostname", str, tw, "{{.Prefix}}{{.Index}}")
        sans = _get(template, "SANS", list, tw, [])
        prefix = "orderer" if kind == "orderer" else "peer"
        for index in range(start, start + count):
            hostname = _render(host_t, {"Prefix": prefix, "Index": index, "Domain": domain}, f"{tw}.Hostname")
            add_node(hostname, "{{.Hostname}}.{{.Domain}}", sans, f"{tw}[{index}]")
    for i, node in enumerate(_get(spec, "Specs", list, where, [])):
        sw = f"{where}.Specs[{i}]"
        if not isinstance(node, Mapping):
            raise CryptoConfigError(f"{sw}: expected a mapping")
        hostname = _get(node, "Hostname", str, sw)
        if not hostname:
            raise CryptoConfigError(f"{sw}.Hostname: required")
        algo = _get(node, "PublicKeyAlgorithm", str, sw, "ecdsa")
        if algo.lower() != "ecdsa":
            raise CryptoConfigError(f"{sw}.PublicKeyAlgorithm: only ecdsa is supported")
        cn_t = _get(node, "CommonName", str, sw, "{{.Hostname}}.{{.Domain}}")
        add_node(hostname, cn_t, _get(node, "SANS", list, sw, []), sw)
    seen: set[str] = set()
    for n in nodes:
        if n.common_name in seen:
            raise CryptoConfigError(f"{where}: duplicate node {n.common_name}")
        seen.add(n.common_name)

    users_in = _get(spec, "Users", Mapping, where, {})
    users = ["Admin"]
    count = _get(users_in, "Count", int, f"{where}.Users", 0)
    if count < 0:
        raise CryptoConfigError(f"{where}.Users.Count: must not be negative")
    users += [f"User{i}" for i in range(1, count + 1)]
    for i, u in enumerate(_get(users_in, "Specs", list, f"{where}.Users", [])):
        uname = u.get("Name") if isinstance(u, Mapping) else None
        if not isinstance(uname, str) or not uname:
            raise CryptoConfigError(f"{where}.Users.Specs[{i}].Name: required")
        if uname not in users:
            users.append(uname)
    return _OrgSpec(
        name=name,
        domain=domain,
        kind=kind,
        node_ous=bool(_get(spec, "EnableNodeOUs", bool, where, False)),
        ca=ca,
        nodes=nodes,
        users=users,
    )


def parse_crypto_config(config: Mapping[str, Any]) -> list[_OrgSpec]:
    """Validate a crypto-config mapping; CryptoConfigError names the bad key."""
    if not isinstance(config, Mapping):
        raise CryptoConfigError("crypto-config: expected a mapping with OrdererOrgs and/or PeerOrgs")
    unknown = sorted(set(config) - {"OrdererOrgs", "PeerOrgs"})
    if unknown:
        raise CryptoConfigError(f"crypto-config: unknown key {unknown[0]}")
    orgs: list[_OrgSpec] = []
    for key, kind in (("OrdererOrgs", "orderer"), ("PeerOrgs", "peer")):
        entries = config.get(key) or []
        if not isinstance(entries, list):
            raise CryptoConfigError(f"crypto-config: {key} must be a list")
        for i, spec in enumerate(entries):
            orgs.append(_org_spec(spec, kind, f"{key}[{i}]"))
    domains = [(o.kind, o.domain) for o in orgs]
    for kd in domains:
        if domains.count(kd) > 1:
            raise CryptoConfigError(f"crypto-config: domain {kd[1]} appears twice")
    if not orgs:
        raise CryptoConfigError("crypto-config: no OrdererOrgs or PeerOrgs")
    return orgs


# -- certificates ----------------------------------------------------------------


def _ski(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """Key identifier: SHA-256 of the uncompressed public point (as cryptogen computes it)."""
    point = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(point)
    return digest.finalize()


def _serial() -> int:
    return int.from_bytes(os.urandom(16), "big") >> 1 or 1


class _CertAuthority:
    """A CA whose key signs the org's certificates (never logged or shown)."""

    def __init__(self, ca: Mapping[str, str], common_name: str, org: str, not_before: dt.datetime):
        self._key = generate_key()
        self._base = ca
        self.not_before = not_before
        self.name = common_name
        self.subject = self.subject_for(common_name, organization=org, ou=ca["OrganizationalUnit"])
        self.ski = _ski(self._key.public_key())
        ku = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=True,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
        builder = (
            self._builder(self.subject, self._key.public_key())
            .issuer_name(self.subject)
            .add_extension(ku, critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier(self.ski), critical=False)
        )
        self.cert = builder.sign(self._key, hashes.SHA256())

    def __repr__(self) -> str:
        return f"_CertAuthority({self.name!r})"

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return private_key_pem(self._key)

    def subject_for(self, common_name: str, organization: str = "", ou: str = "") -> x509.Name:
        # Attribute order as Go's pkix.Name emits it.
        attrs = []
        for oid, value in (
            (NameOID.COUNTRY_NAME, self._base["Country"]),
            (NameOID.STATE_OR_PROVINCE_NAME, self._base["Province"]),
            (NameOID.LOCALITY_NAME, self._base["Locality"]),
            (NameOID.STREET_ADDRESS, self._base["StreetAddress"]),
            (NameOID.POSTAL_CODE, self._base["PostalCode"]),
            (NameOID.ORGANIZATION_NAME, organization),
            (NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
            (NameOID.COMMON_NAME, common_name),
        ):
            if value:
                attrs.append(x509.NameAttribute(oid, value))
        return x509.Name(attrs)

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .public_key(public_key)
            .serial_number(_serial())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_before + VALIDITY)
        )

    def issue(
        self,
        common_name: str,
        public_key: ec.EllipticCurvePublicKey,
        *,
        ou: str = "",
        tls: bool = False,
        sans: list[str] | None = None,
    ) -> x509.Certificate:
        """A leaf certificate: signing (digitalSignature) or TLS (client+server auth)."""
        ku = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=tls,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
        builder = (
            self._builder(self.subject_for(common_name, ou=ou), public_key)
            .issuer_name(self.subject)
            .add_extension(ku, critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier(_ski(public_key)), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier(self.ski, None, None), critical=False)
        )
        if tls:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        if sans:
            names: list[x509.GeneralName] = []
            for san in dict.fromkeys(sans):
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(san)))
                except ValueError:
                    names.append(x509.DNSName(san))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self._key, hashes.SHA256())


# -- writing -----------------------------------------------------------------------


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = 0o600 if private else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_verifying_msp(
    msp: Path, ca: _CertAuthority, tlsca: _CertAuthority, spec: _OrgSpec, admin_pem: bytes | None
) -> None:
    _write(msp / "cacerts" / f"{ca.name}-cert.pem", ca.cert_pem)
    _write(msp / "tlscacerts" / f"{tlsca.name}-cert.pem", tlsca.cert_pem)
    if spec.node_ous:
        _write(msp / "config.yaml", node_ous_yaml(f"cacerts/{ca.name}-cert.pem").encode())
    elif admin_pem is not None:
        _write(msp / "admincerts" / f"Admin@{spec.domain}-cert.pem", admin_pem)


def _write_local(
    base: Path,
    *,
    spec: _OrgSpec,
    ca: _CertAuthority,
    tlsca: _CertAuthority,
    common_name: str,
    role: str,
    sans: list[str],
    admin_pem: bytes | None,
) -> tuple[Path, Path, bytes]:
    """A node's or user's msp/ and tls/ folders; returns them and the signing cert PEM."""
    msp, tls = base / "msp", base / "tls"
    key = generate_key()
    ou = role if spec.node_ous else spec.ca["OrganizationalUnit"]
    cert_pem = _pem(ca.issue(common_name, key.public_key(), ou=ou))
    _write_verifying_msp(
        msp,
        ca,
        tlsca,
        spec,
        admin_pem if admin_pem is not None else cert_pem if role == "admin" else None,
    )
    _write(msp / "signcerts" / f"{common_name}-cert.pem", cert_pem)
    _write(msp / "keystore" / KEY_FILE, private_key_pem(key), private=True)
    tls_key = generate_key()
    tls_cert = tlsca.issue(common_name, tls_key.public_key(), tls=True, sans=sans)
    prefix = "client" if role in ("client", "admin") else "server"
    _write(tls / "ca.crt", tlsca.cert_pem)
    _write(tls / f"{prefix}.crt", _pem(tls_cert))
    _write(tls / f"{prefix}.key", private_key_pem(tls_key), private=True)
    return msp, tls, cert_pem


def _generate_org(spec: _OrgSpec, out: Path, not_before: dt.datetime) -> OrgMaterial:
    org_dir = out / ("ordererOrganizations" if spec.kind == "orderer" else "peerOrganizations") / spec.domain
    if org_dir.exists():
        shutil.rmtree(org_dir)
    ca = _CertAuthority(spec.ca, spec.ca["CommonName"], spec.domain, not_before)
    tlsca = _CertAuthority(spec.ca, "tls" + spec.ca["CommonName"], spec.domain, not_before)
    _write(org_dir / "ca" / f"{ca.name}-cert.pem", ca.cert_pem)
    _write(org_dir / "ca" / KEY_FILE, ca.key_pem, private=True)
    _write(org_dir / "tlsca" / f"{tlsca.name}-cert.pem", tlsca.cert_pem)
    _write(org_dir / "tlsca" / KEY_FILE, tlsca.key_pem, private=True)

    users: list[NodeMaterial] = []
    admin_pem: bytes | None = None
    for uname in spec.users:  # Admin first: nodes without NodeOUs list its cert
        cn = f"{uname}@{spec.domain}"
        role = "admin" if uname == "Admin" else "client"
        msp, tls, cert_pem = _write_local(
            org_dir / "users" / cn, spec=spec, ca=ca, tlsca=tlsca, common_name=cn,
            role=role, sans=[cn], admin_pem=admin_pem,
        )  # fmt: skip
        if role == "admin":
            admin_pem = cert_pem
        users.append(NodeMaterial(cn, uname, role, msp, tls))
    _write_verifying_msp(org_dir / "msp", ca, tlsca, spec, admin_pem)

    nodes: list[NodeMaterial] = []
    node_role = "orderer" if spec.kind == "orderer" else "peer"
    folder = "orderers" if spec.kind == "orderer" else "peers"
    for node in spec.nodes:
        sans = [node.common_name, node.hostname, *node.sans, "localhost", "127.0.0.1"]
        msp, tls, _ = _write_local(
            org_dir / folder / node.common_name, spec=spec, ca=ca, tlsca=tlsca,
            common_name=node.common_name, role=node_role, sans=sans, admin_pem=admin_pem,
        )  # fmt: skip
        nodes.append(NodeMaterial(node.common_name, node.hostname, node_role, msp, tls))
    return OrgMaterial(
        name=spec.name,
        domain=spec.domain,
        kind=spec.kind,
        path=org_dir,
        node_ous=spec.node_ous,
        nodes=tuple(nodes),
        users=tuple(users),
    )


def generate(
    config: Mapping[str, Any] | str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    now: dt.datetime | None = None,
) -> CryptoMaterial:
    """Write crypto material for every org of a crypto-config (mapping or YAML path).

    An org's folder is replaced if it exists; other content of output_dir is kept.
    """
    doc = config if isinstance(config, Mapping) else load_crypto_config(config)
    specs = parse_crypto_config(doc)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t = now or dt.datetime.now(dt.UTC)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    not_before = t.replace(second=0, microsecond=0) - BACKDATE
    return CryptoMaterial(out, tuple(_generate_org(s, out, not_before) for s in specs))
