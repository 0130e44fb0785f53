"""The chaincode lifecycle end to end on a real network (one orderer, two peers, TLS):
package -> install on both peers -> approve by both orgs -> checkcommitreadiness -> commit
-> querycommitted, through ``heddle peer lifecycle chaincode`` and the lifecycle client."""

from __future__ import annotations

import argparse
import json
import time

import pytest
from fabric_protos.peer.lifecycle import lifecycle_pb2 as lb

from heddle.chaincode.lifecycle import ccaas_package, client
from heddle.chaincode.lifecycle.client import Endpoint, LifecycleClientError, OrgAdmin, TransactionInvalid
from heddle.cli import CliError
from heddle.msp import load_signing_identity

pytestmark = pytest.mark.integration


def _parser() -> argparse.ArgumentParser:
    """`heddle` itself once the lead mounts the lifecycle commands; else just them."""
    from heddle.cli.main import build_parser

    parser = build_parser()
    try:
        parser.parse_args(["peer", "lifecycle", "chaincode", "queryinstalled"])
        return parser
    except SystemExit:
        from heddle.cli.lifecycle import register_lifecycle

        own = argparse.ArgumentParser(prog="heddle")
        peer = own.add_subparsers().add_parser("peer")
        register_lifecycle(peer.add_subparsers())
        return own


class Cli:
    """Runs lifecycle commands as an org's admin, with Fabric's CORE_PEER_* environment."""

    def __init__(self, net, monkeypatch, capsys):
        self.net, self.monkeypatch, self.capsys = net, monkeypatch, capsys
        self.parser = _parser()

    def as_org(self, i: int) -> Cli:
        net, mp = self.net, self.monkeypatch
        mp.setenv("CORE_PEER_LOCALMSPID", f"Org{i + 1}MSP")
        mp.setenv("CORE_PEER_MSPCONFIGPATH", str(net.user_msp(i, "Admin")))
        mp.setenv("CORE_PEER_ADDRESS", net.peer_address(i))
        mp.setenv("CORE_PEER_TLS_ROOTCERT_FILE", str(net.peer_tls_ca(i)))
        mp.setenv("CORE_PEER_TLS_ENABLED", "true")
        return self

    def orderer_flags(self) -> list[str]:
        return [
            "-o",
            self.net.orderer_address,
            "--ordererTLSHostnameOverride",
            "orderer.example.com",
            "--tls",
            "--cafile",
            str(self.net.orderer_tls_ca),
        ]

    def both_peers(self) -> list[str]:
        out = []
        for i in (0, 1):
            out += [
                "--peerAddresses",
                self.net.peer_address(i),
                "--tlsRootCertFiles",
                str(self.net.peer_tls_ca(i)),
            ]
        return out

    def __call__(self, *argv: str) -> str:
        self.capsys.readouterr()
        args = self.parser.parse_args(["peer", "lifecycle", "chaincode", *argv])
        assert args.func(args) == 0
        return self.capsys.readouterr().out


@pytest.fixture
def cli(network, monkeypatch, capsys):
    return Cli(network, monkeypatch, capsys)


def definition(name: str, seq: int = 1, version: str = "1.0") -> list[str]:
    return ["-C", "mychannel", "-n", name, "-v", version, "--sequence", str(seq)]


def test_package_install_approve_commit_query(network, cli, tmp_path):
    pkg = tmp_path / "basic.tar.gz"
    cli("package", str(pkg), "--lang", "ccaas", "--address", "127.0.0.1:9999", "--label", "basic_1.0")

    # install on both peers, each by its org's admin
    ids = set()
    for i in (0, 1):
        out = cli.as_org(i)("install", str(pkg))
        assert "Chaincode code package identifier: basic_1.0:" in out
        ids.add(out.strip().splitlines()[-1].rpartition(" ")[2])
    [pkg_id] = ids
    out = cli.as_org(0)("queryinstalled")
    assert "Installed chaincodes on peer:" in out and f"Package ID: {pkg_id}, Label: basic_1.0" in out
    with pytest.raises(CliError, match="chaincode already successfully installed"):
        cli.as_org(0)("install", str(pkg))

    # Org1 approves; readiness shows Org1 only; a commit now is refused before ordering
    out = cli.as_org(0)("approveformyorg", *cli.orderer_flags(), *definition("basic"), "--package-id", pkg_id)
    assert "committed with status (VALID)" in out
    ready = json.loads(cli.as_org(0)("checkcommitreadiness", *definition("basic"), "--output", "json"))
    assert ready == {"approvals": {"Org1MSP": True, "Org2MSP": False}}
    with pytest.raises(CliError, match="approvals from 1 of 2 orgs"):
        cli.as_org(0)("commit", *cli.orderer_flags(), *definition("basic"), *cli.both_peers())

    # Org2 approves; both true; commit endorsed by both orgs' peers
    cli.as_org(1)("approveformyorg", *cli.orderer_flags(), *definition("basic"), "--package-id", pkg_id)
    out = cli.as_org(1)("checkcommitreadiness", *definition("basic"))
    assert "Org1MSP: true" in out and "Org2MSP: true" in out
    # Org1's peer sees Org2's approval once it has committed that block too
    deadline = time.monotonic() + 30
    while "Org2MSP: true" not in cli.as_org(0)("checkcommitreadiness", *definition("basic")):
        assert time.monotonic() < deadline, "Org1's peer never saw Org2's approval"
        time.sleep(0.1)
    out = cli.as_org(0)("commit", *cli.orderer_flags(), *definition("basic"), *cli.both_peers())
    assert out.count("committed with status (VALID)") == 2

    # querycommitted on each peer
    for i in (0, 1):
        got = json.loads(
            cli.as_org(i)("querycommitted", "-C", "mychannel", "-n", "basic", "--output", "json")
        )
        assert got["sequence"] == 1 and got["version"] == "1.0"
        assert got["endorsement_plugin"] == "escc" and got["validation_plugin"] == "vscc"
        assert got["approvals"] == {"Org1MSP": True, "Org2MSP": True}
    out = cli.as_org(1)("querycommitted", "-C", "mychannel")
    assert "Name: basic, Version: 1.0, Sequence: 1" in out
    out = cli.as_org(1)("queryapproved", "-C", "mychannel", "-n", "basic")
    assert f"package-id: {pkg_id}" in out and "sequence: 1" in out

    # the same sequence cannot be committed twice
    with pytest.raises(CliError, match="requested sequence is 1, but new definition must be sequence 2"):
        cli.as_org(0)("commit", *cli.orderer_flags(), *definition("basic"), *cli.both_peers())


def test_approval_through_another_orgs_peer_is_refused(network, cli):
    # Org1's admin cannot approve on Org2's peer: that peer approves only for Org2
    cli.as_org(0)
    args = [*cli.orderer_flags(), *definition("other")]
    args += ["--peerAddresses", network.peer_address(1), "--tlsRootCertFiles", str(network.peer_tls_ca(1))]
    with pytest.raises(CliError, match="not an admin of the local MSP Org2MSP"):
        cli("approveformyorg", *args)


def _admins(net) -> list[OrgAdmin]:
    return [
        OrgAdmin(
            load_signing_identity(net.user_msp(i, "Admin"), f"Org{i + 1}MSP"),
            (Endpoint.of(net.peer_address(i), net.peer_tls_ca(i)),),
        )
        for i in (0, 1)
    ]


def test_commit_endorsed_by_one_org_fails_validation_then_deploy_upgrades(network):
    """LifecycleEndorsement (MAJORITY Endorsement) is enforced at commit: one org's
    endorsement gives ENDORSEMENT_POLICY_FAILURE; ``deploy`` then runs the whole flow."""
    net = network
    admins = _admins(net)
    orderer = Endpoint.of(net.orderer_address, net.orderer_tls_ca)
    data = ccaas_package("upgr_1", "127.0.0.1:9998")
    pkg_id = client.deploy(admins, orderer, "mychannel", "upgr", data)
    got = client.query_committed(admins[1].identity, "mychannel", "upgr", admins[1].peers[0])
    assert (got.sequence, got.version) == (1, "1.0")
    # deploying again (heddle up run twice) changes nothing
    assert client.deploy(admins, orderer, "mychannel", "upgr", data) == pkg_id
    assert client.committed_sequence(admins[0].identity, "mychannel", "upgr", admins[0].peers[0]) == 1

    # both orgs approve sequence 2 under a stricter policy ...
    policy = client.application_policy("AND('Org1MSP.peer','Org2MSP.peer')")
    all_peers = [a.peers[0] for a in admins]
    for admin in admins:
        args = lb.ApproveChaincodeDefinitionForMyOrgArgs(
            name="upgr", version="2.0", sequence=2, validation_parameter=policy
        )
        args.source.local_package.package_id = pkg_id
        # wait until both peers have the approval, as either may endorse the commit next
        client.approve(admin.identity, "mychannel", args, list(admin.peers), orderer, wait_peers=all_peers)
    commit = lb.CommitChaincodeDefinitionArgs(
        name="upgr", version="2.0", sequence=2, validation_parameter=policy
    )
    # ... but a commit endorsed by Org1's peer alone is ordered and then invalid
    with pytest.raises(TransactionInvalid) as info:
        client.commit(admins[0].identity, "mychannel", commit, list(admins[0].peers), orderer)
    assert info.value.code_name == "ENDORSEMENT_POLICY_FAILURE"
    got = client.query_committed(admins[0].identity, "mychannel", "upgr", admins[0].peers[0])
    assert got.sequence == 1

    # endorsed by both orgs it commits
    client.commit(admins[0].identity, "mychannel", commit, [a.peers[0] for a in admins], orderer)
    for admin in admins:
        got = client.query_committed(admin.identity, "mychannel", "upgr", admin.peers[0])
        assert (got.sequence, got.version) == (2, "2.0")
        assert (
            lb.QueryChaincodeDefinitionResult.FromString(got.SerializeToString()).validation_parameter
            == policy
        )

    with pytest.raises(LifecycleClientError, match="namespace nope is not defined"):
        client.query_committed(admins[0].identity, "mychannel", "nope", admins[0].peers[0])


def test_waiting_on_an_unknown_channel_fails_clearly(network):
    admin = _admins(network)[0]
    with pytest.raises(LifecycleClientError, match="NOT_FOUND on channel nochannel"):
        client.CommitWatcher(admin.identity, "nochannel", admin.peers[0], timeout=10)
