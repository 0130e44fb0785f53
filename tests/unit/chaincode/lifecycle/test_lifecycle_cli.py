"""``heddle peer lifecycle chaincode``: argument handling that needs no network."""

from __future__ import annotations

import argparse
import json

import pytest
from fabric_protos.peer import policy_pb2

from heddle.chaincode.lifecycle import parse_package
from heddle.chaincode.lifecycle.client import LifecycleClientError, application_policy
from heddle.cli import CliError
from heddle.cli.lifecycle import register_lifecycle
from heddle.policy import format_signature_policy


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="heddle")
    sub = parser.add_subparsers()
    peer = sub.add_parser("peer")
    register_lifecycle(peer.add_subparsers())
    args = parser.parse_args(["peer", "lifecycle", "chaincode", *argv])
    return args.func(args)


def test_package_python_source(tmp_path):
    src = tmp_path / "cc"
    src.mkdir()
    (src / "contract.py").write_text("x = 1\n")
    out = tmp_path / "basic.tar.gz"
    assert run(["package", str(out), "--path", str(src), "--lang", "python", "--label", "basic_1.0"]) == 0
    parsed = parse_package(out.read_bytes())
    assert (parsed.label, parsed.type) == ("basic_1.0", "python")


def test_package_ccaas_from_address(tmp_path):
    out = tmp_path / "svc.tar.gz"
    run(["package", str(out), "--lang", "ccaas", "--address", "127.0.0.1:9999", "--label", "svc_1"])
    parsed = parse_package(out.read_bytes())
    assert parsed.type == "ccaas" and parsed.connection["address"] == "127.0.0.1:9999"


def test_package_errors_are_cli_errors(tmp_path):
    with pytest.raises(CliError, match="invalid label"):
        run(["package", str(tmp_path / "x.tar.gz"), "--path", str(tmp_path), "--label=-bad"])
    with pytest.raises(CliError, match="does not exist"):
        run(["package", str(tmp_path / "x.tar.gz"), "--path", str(tmp_path / "nope"), "--label", "ok"])


def test_install_needs_identity_and_a_readable_package(tmp_path, monkeypatch):
    monkeypatch.delenv("CORE_PEER_LOCALMSPID", raising=False)
    with pytest.raises(CliError, match="failed to read chaincode package"):
        run(["install", str(tmp_path / "missing.tar.gz")])
    pkg = tmp_path / "p.tar.gz"
    pkg.write_bytes(b"x")
    with pytest.raises(CliError, match="CORE_PEER_LOCALMSPID"):
        run(["install", str(pkg)])


def test_policy_flags():
    assert application_policy() == b""
    sig = policy_pb2.ApplicationPolicy.FromString(application_policy("AND('Org1MSP.peer','Org2MSP.peer')"))
    assert format_signature_policy(sig.signature_policy) == "AND('Org1MSP.peer', 'Org2MSP.peer')"
    ref = policy_pb2.ApplicationPolicy.FromString(application_policy("", "/Channel/Application/Admins"))
    assert ref.channel_config_policy_reference == "/Channel/Application/Admins"
    with pytest.raises(LifecycleClientError, match="cannot specify both"):
        application_policy("OR('A.peer')", "/Channel/Application/Admins")
    with pytest.raises(LifecycleClientError, match="invalid signature policy"):
        application_policy("NOPE(")


def test_collections_config_is_refused(monkeypatch, tmp_path):
    with pytest.raises(CliError, match="private data is not supported yet"):
        run(
            [
                "checkcommitreadiness", "-C", "mychannel", "-n", "basic", "-v", "1", "--sequence", "1",
                "--collections-config", str(tmp_path / "c.json"),
            ]
        )  # fmt: skip


def test_json_helper_prints_fabric_field_names():
    from fabric_protos.peer.lifecycle import lifecycle_pb2 as lb

    from heddle.cli.lifecycle import _json

    msg = lb.QueryInstalledChaincodesResult()
    msg.installed_chaincodes.add(package_id="a:1", label="a")
    assert json.loads(_json(msg)) == {"installed_chaincodes": [{"package_id": "a:1", "label": "a"}]}
    definition = lb.QueryChaincodeDefinitionResult(sequence=3, version="1.0")
    assert json.loads(_json(definition)) == {"sequence": 3, "version": "1.0"}
