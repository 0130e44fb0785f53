"""cryptogen equivalent: folder layout, certificate shapes, MSP folders heddle and Fabric read."""

from __future__ import annotations

import datetime as dt
import importlib.util
import ipaddress
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fabric_protos.msp import msp_config_pb2

from heddle.msp import Msp, MspManager, load_signing_identity, msp_config_from_dir
from heddle.msp.cryptogen import (
    CryptoConfigError,
    default_crypto_config,
    generate,
    generate_default_network,
)

GEN_TIME = dt.datetime(2030, 1, 1, 12, 34, 56, tzinfo=dt.UTC)
CHECK_TIME = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)

CONFIG = {
    "OrdererOrgs": [
        {
            "Name": "Orderer",
            "Domain": "example.com",
            "EnableNodeOUs": True,
            "Specs": [{"Hostname": "orderer", "SANS": ["orderer.internal", "10.0.0.7"]}],
        }
    ],
    "PeerOrgs": [
        {
            "Name": "Org1",
            "Domain": "org1.example.com",
            "EnableNodeOUs": True,
            "Template": {"Count": 2, "SANS": ["{{.Hostname}}.lan"]},
            "Users": {"Count": 1},
        }
    ],
}


def local_msp(base: str, cn: str, domain: str, tls: tuple[str, str]) -> set[str]:
    return {
        f"{base}/msp/cacerts/ca.{domain}-cert.pem",
        f"{base}/msp/tlscacerts/tlsca.{domain}-cert.pem",
        f"{base}/msp/config.yaml",
        f"{base}/msp/keystore/priv_sk",
        f"{base}/msp/signcerts/{cn}-cert.pem",
        f"{base}/tls/ca.crt",
        f"{base}/tls/{tls[0]}",
        f"{base}/tls/{tls[1]}",
    }


def org_files(root: str, domain: str) -> set[str]:
    return {
        f"{root}/ca/ca.{domain}-cert.pem",
        f"{root}/ca/priv_sk",
        f"{root}/tlsca/tlsca.{domain}-cert.pem",
        f"{root}/tlsca/priv_sk",
        f"{root}/msp/cacerts/ca.{domain}-cert.pem",
        f"{root}/msp/tlscacerts/tlsca.{domain}-cert.pem",
        f"{root}/msp/config.yaml",
    }


def expected_tree() -> set[str]:
    o, p = "ordererOrganizations/example.com", "peerOrganizations/org1.example.com"
    client, server = ("client.crt", "client.key"), ("server.crt", "server.key")
    files = org_files(o, "example.com") | org_files(p, "org1.example.com")
    files |= local_msp(f"{o}/orderers/orderer.example.com", "orderer.example.com", "example.com", server)
    files |= local_msp(f"{o}/users/Admin@example.com", "Admin@example.com", "example.com", client)
    for peer in ("peer0", "peer1"):
        cn = f"{peer}.org1.example.com"
        files |= local_msp(f"{p}/peers/{cn}", cn, "org1.example.com", server)
    for user in ("Admin", "User1"):
        cn = f"{user}@org1.example.com"
        files |= local_msp(f"{p}/users/{cn}", cn, "org1.example.com", client)
    return files


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("crypto")
    generate(CONFIG, d, now=GEN_TIME)
    return d


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_layout_matches_cryptogen(out: Path) -> None:
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files == expected_tree()


def test_private_keys_are_owner_only(out: Path) -> None:
    keys = [p for p in out.rglob("*") if p.name in ("priv_sk", "server.key", "client.key")]
    assert len(keys) == 2 * 2 + 6 * 2  # two CAs per org; signing + TLS key for 6 nodes/users
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        assert b"PRIVATE KEY" in key.read_bytes()


def test_ca_certificates(out: Path) -> None:
    org = out / "peerOrganizations/org1.example.com"
    ca = cert(org / "ca/ca.org1.example.com-cert.pem")
    assert ca.subject.rfc4514_string() == (
        "CN=ca.org1.example.com,O=org1.example.com,L=San Francisco,ST=California,C=US"
    )
    assert ca.issuer == ca.subject
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign and ku.digital_signature
    assert ca.not_valid_before_utc == dt.datetime(2030, 1, 1, 12, 29, tzinfo=dt.UTC)
    assert ca.not_valid_after_utc - ca.not_valid_before_utc == dt.timedelta(days=3650)
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert len(ski) == 32
    tlsca = cert(org / "tlsca/tlsca.org1.example.com-cert.pem")
    assert tlsca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "tlsca.org1.example.com"
    assert (org / "msp/cacerts/ca.org1.example.com-cert.pem").read_bytes() == (
        org / "ca/ca.org1.example.com-cert.pem"
    ).read_bytes()


def test_signing_certificates_carry_node_ous(out: Path) -> None:
    org = out / "peerOrganizations/org1.example.com"
    ca = cert(org / "ca/ca.org1.example.com-cert.pem")
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    cases = {
        "peers/peer0.org1.example.com/msp/signcerts/peer0.org1.example.com-cert.pem": "peer",
        "users/Admin@org1.example.com/msp/signcerts/Admin@org1.example.com-cert.pem": "admin",
        "users/User1@org1.example.com/msp/signcerts/User1@org1.example.com-cert.pem": "client",
    }
    for rel, ou in cases.items():
        leaf = cert(org / rel)
        leaf.verify_directly_issued_by(ca)
        assert [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] == [
            ou
        ]
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == ca_ski
    node = out / "ordererOrganizations/example.com/orderers/orderer.example.com"
    orderer = cert(node / "msp/signcerts/orderer.example.com-cert.pem")
    assert orderer.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "orderer"


def test_tls_certificates(out: Path) -> None:
    org = out / "peerOrganizations/org1.example.com"
    tlsca = cert(org / "tlsca/tlsca.org1.example.com-cert.pem")
    server = cert(org / "peers/peer1.org1.example.com/tls/server.crt")
    server.verify_directly_issued_by(tlsca)
    assert (org / "peers/peer1.org1.example.com/tls/ca.crt").read_bytes() == (
        org / "tlsca/tlsca.org1.example.com-cert.pem"
    ).read_bytes()
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        "peer1.org1.example.com",
        "peer1",
        "peer1.lan",
        "localhost",
    ]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku and ExtendedKeyUsageOID.CLIENT_AUTH in eku
    orderer = cert(out / "ordererOrganizations/example.com/orderers/orderer.example.com/tls/server.crt")
    osan = orderer.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "orderer.internal" in osan.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("10.0.0.7") in osan.get_values_for_type(x509.IPAddress)
    client = cert(org / "users/User1@org1.example.com/tls/client.crt")
    client.verify_directly_issued_by(tlsca)
    assert (
        ExtendedKeyUsageOID.CLIENT_AUTH
        in client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )


def test_node_ous_config_yaml(out: Path) -> None:
    doc = yaml.safe_load((out / "peerOrganizations/org1.example.com/msp/config.yaml").read_text())
    node_ous = doc["NodeOUs"]
    assert node_ous["Enable"] is True
    for key, ou in (
        ("ClientOUIdentifier", "client"),
        ("PeerOUIdentifier", "peer"),
        ("AdminOUIdentifier", "admin"),
        ("OrdererOUIdentifier", "orderer"),
    ):
        assert node_ous[key] == {
            "Certificate": "cacerts/ca.org1.example.com-cert.pem",
            "OrganizationalUnitIdentifier": ou,
        }


def test_msp_config_from_dir_uses_fabric_fields(out: Path) -> None:
    msp_dir = out / "peerOrganizations/org1.example.com/msp"
    config = msp_config_from_dir(msp_dir, "Org1MSP")
    assert config.type == 0
    fab = msp_config_pb2.FabricMSPConfig.FromString(config.config)
    ca_pem = (msp_dir / "cacerts/ca.org1.example.com-cert.pem").read_bytes()
    assert fab.name == "Org1MSP"
    assert list(fab.root_certs) == [ca_pem]
    assert list(fab.tls_root_certs) == [(msp_dir / "tlscacerts/tlsca.org1.example.com-cert.pem").read_bytes()]
    assert not fab.intermediate_certs and not fab.admins and not fab.revocation_list
    assert not fab.HasField("signing_identity")
    assert fab.crypto_config.signature_hash_family == "SHA2"
    assert fab.crypto_config.identity_identifier_hash_function == "SHA256"
    assert fab.fabric_node_ous.enable
    for field, ou in (
        ("client_ou_identifier", "client"),
        ("peer_ou_identifier", "peer"),
        ("admin_ou_identifier", "admin"),
        ("orderer_ou_identifier", "orderer"),
    ):
        ident = getattr(fab.fabric_node_ous, field)
        assert ident.certificate == ca_pem and ident.organizational_unit_identifier == ou


def test_generated_identities_validate_with_roles(out: Path) -> None:
    org1 = out / "peerOrganizations/org1.example.com"
    orderer_org = out / "ordererOrganizations/example.com"
    manager = MspManager(
        [Msp.from_dir(org1 / "msp", "Org1MSP"), Msp.from_dir(orderer_org / "msp", "OrdererMSP")]
    )
    cases = [
        (org1 / "users/Admin@org1.example.com/msp", "Org1MSP", "admin"),
        (org1 / "users/User1@org1.example.com/msp", "Org1MSP", "client"),
        (org1 / "peers/peer0.org1.example.com/msp", "Org1MSP", "peer"),
        (orderer_org / "orderers/orderer.example.com/msp", "OrdererMSP", "orderer"),
        (orderer_org / "users/Admin@example.com/msp", "OrdererMSP", "admin"),
    ]
    for msp_dir, mspid, role in cases:
        signer = load_signing_identity(msp_dir, mspid, now=CHECK_TIME)
        assert signer.roles == {"member", role}
        ident = manager.deserialize_identity(signer.serialized, CHECK_TIME)
        assert ident.roles == {"member", role}
        ident.verify(b"msg", signer.sign(b"msg"))


def test_without_node_ous_admincerts_are_written(tmp_path: Path) -> None:
    config = {"PeerOrgs": [{"Name": "Org3", "Domain": "org3.example.com", "Template": {"Count": 1}}]}
    material = generate(config, tmp_path, now=GEN_TIME)
    org = material.org("Org3MSP")
    admin_pem = (org.admin.msp_dir / "signcerts/Admin@org3.example.com-cert.pem").read_bytes()
    assert (org.msp_dir / "admincerts/Admin@org3.example.com-cert.pem").read_bytes() == admin_pem
    assert (
        org.node("peer0").msp_dir / "admincerts/Admin@org3.example.com-cert.pem"
    ).read_bytes() == admin_pem
    assert not (org.msp_dir / "config.yaml").exists()
    leaf = x509.load_pem_x509_certificate(admin_pem)
    assert not leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    msp = Msp.from_dir(org.msp_dir, "Org3MSP")
    assert not msp.node_ous_enabled
    admin = load_signing_identity(org.admin.msp_dir, "Org3MSP", now=CHECK_TIME)
    assert msp.deserialize_identity(admin.serialized, CHECK_TIME).roles == {"member", "admin"}


def test_default_network_topology(tmp_path: Path) -> None:
    material = generate_default_network(tmp_path, orderers=3, now=GEN_TIME)
    assert [o.mspid for o in material.orgs] == ["OrdererMSP", "Org1MSP", "Org2MSP"]
    orderer_org = material.org("OrdererMSP")
    assert [n.name for n in orderer_org.nodes] == [
        "orderer.example.com",
        "orderer2.example.com",
        "orderer3.example.com",
    ]
    assert orderer_org.path == tmp_path / "ordererOrganizations/example.com"
    assert [u.name for u in orderer_org.users] == ["Admin@example.com"]
    for name in ("Org1", "Org2"):
        org = material.org(name)
        dom = f"{name.lower()}.example.com"
        assert org.path == tmp_path / "peerOrganizations" / dom
        assert [n.name for n in org.nodes] == [f"peer0.{dom}"]
        assert [u.name for u in org.users] == [f"Admin@{dom}", f"User1@{dom}"]
        assert org.node("peer0").tls_cert == org.path / f"peers/peer0.{dom}/tls/server.crt"
        assert org.user("User1").tls_key.is_file()
        assert org.admin.tls_cert == org.path / f"users/Admin@{dom}/tls/client.crt"
    assert default_crypto_config()["PeerOrgs"][1]["Domain"] == "org2.example.com"


def test_regenerating_replaces_an_org(tmp_path: Path) -> None:
    generate(CONFIG, tmp_path, now=GEN_TIME)
    first = (tmp_path / "peerOrganizations/org1.example.com/ca/ca.org1.example.com-cert.pem").read_bytes()
    smaller = {"PeerOrgs": [dict(CONFIG["PeerOrgs"][0], Template={"Count": 1})]}
    generate(smaller, tmp_path, now=GEN_TIME)
    org = tmp_path / "peerOrganizations/org1.example.com"
    assert (org / "ca/ca.org1.example.com-cert.pem").read_bytes() != first
    assert not (org / "peers/peer1.org1.example.com").exists()
    assert (tmp_path / "ordererOrganizations/example.com").is_dir()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"PeerOrgs": [{"Name": "Org1"}]}, r"PeerOrgs\[0\]\.Domain: required"),
        ({"PeerOrgs": [{"Name": "Org1", "Domain": "d", "Bogus": 1}]}, r"PeerOrgs\[0\]: unknown key Bogus"),
        (
            {"PeerOrgs": [{"Name": "O", "Domain": "d", "Template": {"Count": "two"}}]},
            r"PeerOrgs\[0\] \(O\)\.Template\.Count: expected int",
        ),
        (
            {"OrdererOrgs": [{"Name": "O", "Domain": "d", "Specs": [{}]}]},
            r"OrdererOrgs\[0\] \(O\)\.Specs\[0\]\.Hostname: required",
        ),
        (
            {
                "PeerOrgs": [
                    {"Name": "O", "Domain": "d", "Specs": [{"Hostname": "a", "CommonName": "{{.Nope}}"}]}
                ]
            },
            r"unknown template field \.Nope",
        ),
        (
            {"PeerOrgs": [{"Name": "O", "Domain": "d", "Specs": [{"Hostname": "a"}, {"Hostname": "a"}]}]},
            "duplicate node a.d",
        ),
        ({"Orgs": []}, "crypto-config: unknown key Orgs"),
        ({}, "no OrdererOrgs or PeerOrgs"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, config: dict, message: str) -> None:
    with pytest.raises(CryptoConfigError, match=message):
        generate(config, tmp_path)


def _main_with_available_commands(monkeypatch: pytest.MonkeyPatch):
    """heddle.cli.main, limited to the subcommand modules that exist in this tree."""
    from heddle.cli import main as cli_main

    present = [m for m in cli_main._COMMAND_MODULES if importlib.util.find_spec(f"heddle.cli.{m}")]
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", present)
    return cli_main.main


def test_cli_generate_writes_the_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    config_file = tmp_path / "crypto-config.yaml"
    config_file.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / "organizations"
    main = _main_with_available_commands(monkeypatch)
    assert main(["crypto", "generate", "--config", str(config_file), "--output", str(out)]) == 0
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files == expected_tree()
    assert str(out / "peerOrganizations/org1.example.com") in capsys.readouterr().out


def test_cli_reports_bad_config_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    config_file = tmp_path / "crypto-config.yaml"
    config_file.write_text("PeerOrgs:\n  - Name: Org1\n")
    main = _main_with_available_commands(monkeypatch)
    rc = main(["crypto", "generate", "--config", str(config_file), "--output", str(tmp_path / "o")])
    assert rc == 1
    assert capsys.readouterr().err.strip() == "Error: PeerOrgs[0].Domain: required"
    rc = main(["crypto", "generate", "--config", str(tmp_path / "missing.yaml"), "--output", str(tmp_path)])
    assert rc == 1
    assert "cannot read" in capsys.readouterr().err


TEST_NETWORK_YAML = """
# the shape of fabric-samples test-network's crypto-config-*.yaml
OrdererOrgs:
  - Name: Orderer
    Domain: example.com
    EnableNodeOUs: true
    Specs:
      - Hostname: orderer
        SANS:
          - localhost
      - Hostname: orderer2
        SANS:
          - localhost
PeerOrgs:
  - Name: Org1
    Domain: org1.example.com
    EnableNodeOUs: true
    Template:
      Count: 1
      Start: 3
      Hostname: node{{ .Index }}
      SANS:
        - localhost
    Users:
      Count: 2
"""


def test_test_network_style_yaml(tmp_path: Path) -> None:
    config_file = tmp_path / "crypto-config.yaml"
    config_file.write_text(TEST_NETWORK_YAML)
    material = generate(config_file, tmp_path / "organizations", now=GEN_TIME)
    org1 = material.org("Org1")
    assert [n.name for n in org1.nodes] == ["node3.org1.example.com"]
    assert [u.hostname for u in org1.users] == ["Admin", "User1", "User2"]
    server = cert(org1.node("node3").tls_cert)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node3.org1.example.com", "node3", "localhost"]
    assert [n.name for n in material.org("OrdererMSP").nodes] == [
        "orderer.example.com",
        "orderer2.example.com",
    ]
