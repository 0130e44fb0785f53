"""MSP definitions on disk and on the wire.

``msp_config_from_dir`` reads a Fabric MSP folder (cacerts/, intermediatecerts/,
admincerts/, crls/, tlscacerts/, tlsintermediatecerts/, config.yaml) into the
``MSPConfig`` that configtxgen puts in a channel config; the signing identity is left
unset since a channel MSP only verifies.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml
from fabric_protos.msp import msp_config_pb2

from heddle.msp.identity import MspError

FABRIC_MSP_TYPE = 0  # MSPConfig.type for X.509 MSPs (1 is Idemix)

# config.yaml keys for the NodeOU identifiers and the FabricNodeOUs fields they fill.
NODE_OU_KEYS = (
    ("ClientOUIdentifier", "client_ou_identifier"),
    ("PeerOUIdentifier", "peer_ou_identifier"),
    ("AdminOUIdentifier", "admin_ou_identifier"),
    ("OrdererOUIdentifier", "orderer_ou_identifier"),
)

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----\r?\n?", re.DOTALL)


def _pem_files(folder: Path, kind: bytes) -> list[bytes]:
    """PEM blocks of one kind (b"CERTIFICATE", b"X509 CRL") from the files in a folder.

    A file with one block is kept byte for byte, as Fabric does; a bundle is split.
    """
    if not folder.is_dir():
        return []
    out: list[bytes] = []
    for name in sorted(os.listdir(folder)):
        path = folder / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        blocks = [m for m in _PEM_BLOCK.finditer(data) if m.group(1) == kind]
        if len(blocks) == 1:
            out.append(data)
        else:
            out.extend(m.group(0) for m in blocks)
    return out


def _read_ou_identifier(msp_dir: Path, entry: object, where: str) -> msp_config_pb2.FabricOUIdentifier:
    if not isinstance(entry, dict):
        raise MspError(f"{where}: expected a mapping with OrganizationalUnitIdentifier")
    ou = entry.get("OrganizationalUnitIdentifier")
    if not isinstance(ou, str) or not ou:
        raise MspError(f"{where}: missing OrganizationalUnitIdentifier")
    ident = msp_config_pb2.FabricOUIdentifier(organizational_unit_identifier=ou)
    cert_path = entry.get("Certificate")
    if cert_path:
        path = Path(cert_path) if os.path.isabs(cert_path) else msp_dir / cert_path
        try:
            ident.certificate = path.read_bytes()
        except OSError as exc:
            raise MspError(f"{where}.Certificate: cannot read {path}: {exc.strerror}") from exc
    return ident


def read_msp_config_yaml(msp_dir: str | os.PathLike[str]) -> dict:
    """The parsed config.yaml of an MSP folder ({} when there is none)."""
    path = Path(msp_dir) / "config.yaml"
    if not path.is_file():
        return {}
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise MspError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise MspError(f"{path}: expected a mapping at the top level")
    return doc


def msp_config_from_dir(path: str | os.PathLike[str], mspid: str) -> msp_config_pb2.MSPConfig:
    """Build the verifying MSPConfig (type FABRIC) of a Fabric MSP folder."""
    msp_dir = Path(path)
    if not msp_dir.is_dir():
        raise MspError(f"MSP folder {msp_dir} does not exist")
    roots = _pem_files(msp_dir / "cacerts", b"CERTIFICATE")
    if not roots:
        raise MspError(f"MSP folder {msp_dir} has no CA certificate in cacerts/")
    fab = msp_config_pb2.FabricMSPConfig(
        name=mspid,
        root_certs=roots,
        intermediate_certs=_pem_files(msp_dir / "intermediatecerts", b"CERTIFICATE"),
        admins=_pem_files(msp_dir / "admincerts", b"CERTIFICATE"),
        revocation_list=_pem_files(msp_dir / "crls", b"X509 CRL"),
        tls_root_certs=_pem_files(msp_dir / "tlscacerts", b"CERTIFICATE"),
        tls_intermediate_certs=_pem_files(msp_dir / "tlsintermediatecerts", b"CERTIFICATE"),
        crypto_config=msp_config_pb2.FabricCryptoConfig(
            signature_hash_family="SHA2", identity_identifier_hash_function="SHA256"
        ),
    )
    doc = read_msp_config_yaml(msp_dir)
    ous = doc.get("OrganizationalUnitIdentifiers") or []
    if not isinstance(ous, list):
        raise MspError("config.yaml: OrganizationalUnitIdentifiers must be a list")
    for i, entry in enumerate(ous):
        fab.organizational_unit_identifiers.append(
            _read_ou_identifier(msp_dir, entry, f"config.yaml: OrganizationalUnitIdentifiers[{i}]")
        )
    node_ous = doc.get("NodeOUs")
    if node_ous:
        if not isinstance(node_ous, dict):
            raise MspError("config.yaml: NodeOUs must be a mapping")
        fab.fabric_node_ous.enable = bool(node_ous.get("Enable", False))
        for key, field in NODE_OU_KEYS:
            if node_ous.get(key):
                getattr(fab.fabric_node_ous, field).CopyFrom(
                    _read_ou_identifier(msp_dir, node_ous[key], f"config.yaml: NodeOUs.{key}")
                )
    return msp_config_pb2.MSPConfig(type=FABRIC_MSP_TYPE, config=fab.SerializeToString())


def node_ous_yaml(ca_cert_file: str, *, with_admin_and_orderer: bool = True) -> str:
    """The config.yaml cryptogen writes to enable NodeOUs, certifying with one CA cert."""
    lines = ["NodeOUs:", "  Enable: true"]
    roles = [("ClientOUIdentifier", "client"), ("PeerOUIdentifier", "peer")]
    if with_admin_and_orderer:
        roles += [("AdminOUIdentifier", "admin"), ("OrdererOUIdentifier", "orderer")]
    for key, ou in roles:
        lines += [
            f"  {key}:",
            f"    Certificate: {ca_cert_file}",
            f"    OrganizationalUnitIdentifier: {ou}",
        ]
    return "\n".join(lines) + "\n"
