"""`heddle up` as a Fabric test-network user runs it: default ports, DATA/organizations, the
official Node client @hyperledger/fabric-gateway and heddle.client driving the asset flow,
then `heddle down --clean`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "integration" / "node"
PORTS = (7050, 7051, 7053, 9051, 1947)


def heddle(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "heddle.cli.main", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def data(tmp_path_factory, default_ports):
    busy = [p for p in PORTS if listening(p)]
    assert not busy, f"the default ports {busy} are taken; stop whatever uses them (heddle down?)"
    data = tmp_path_factory.mktemp("up") / "data"
    up = heddle("up", "--data", str(data), "--batch-timeout", "500ms")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "ready in" in up.stdout  # the progress bar finished
        yield data
    finally:
        down = heddle("down", "--data", str(data), "--clean")
        assert down.returncode == 0, down.stderr
    assert not data.exists()
    assert not any(listening(p) for p in PORTS)


def test_layout_is_the_test_network_layout(data):
    org1 = data / "organizations" / "peerOrganizations" / "org1.example.com"
    assert (org1 / "users" / "User1@org1.example.com" / "msp" / "signcerts").is_dir()
    assert (org1 / "users" / "User1@org1.example.com" / "msp" / "keystore").is_dir()
    assert (org1 / "peers" / "peer0.org1.example.com" / "tls" / "ca.crt").is_file()
    assert (data / "organizations" / "ordererOrganizations" / "example.com" / "orderers").is_dir()
    assert {p.name for p in (data / "logs").iterdir()} >= {
        "orderer.example.com.log",
        "peer0.org1.example.com.log",
        "peer0.org2.example.com.log",
    }
    assert all(listening(p) for p in PORTS)


def test_official_node_client_runs_the_asset_flow(data):
    env = dict(os.environ, DATA=str(data))
    proc = subprocess.run(
        ["node", "asset.mjs"], check=False, cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=180
    )
    steps = {
        s["step"]: s for s in (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{"))
    }
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert steps["config"]["peerEndpoint"] == "localhost:7051"
    assert {a["ID"] for a in steps["GetAllAssets"]["result"]} >= {f"asset{i}" for i in range(1, 7)}
    assert steps["TransferAsset"]["oldOwner"] == "Tom"
    failure = steps["UpdateAsset"]["error"]
    assert any("does not exist" in d["message"] for d in failure["details"])


def test_heddle_client_application_runs_the_asset_flow(data):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "asset_transfer_basic" / "app.py"), "--data", str(data)],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Successfully caught the error" in proc.stdout
    assert "the asset asset70 does not exist" in proc.stdout


def test_up_twice_is_refused_while_running(data):
    again = heddle("up", "--data", str(data))
    assert again.returncode == 1 and "already running" in again.stderr


def test_deploy_a_second_chaincode_as_a_service_address_is_validated(data):
    bad = heddle("deploy", "other", "not-a-folder-or-address", "--data", str(data))
    assert bad.returncode == 1 and "neither a folder nor a HOST:PORT" in bad.stderr


def test_trusted_compute_listener_serves_json_rpc_on_1947(data):
    import urllib.request

    body = json.dumps(
        {"jsonrpc": "2.0", "method": "WorkerLookUp", "id": 1, "params": {"workerType": 1}}
    ).encode()
    req = urllib.request.Request(
        "http://localhost:1947", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer = json.loads(resp.read())
    assert answer["result"]["totalCount"] >= 1  # the singleton worker heddle up started
    assert {p.name for p in (data / "logs").iterdir()} >= {
        "tcf-listener.log",
        "tcf-worker.log",
        "tcf-connector.log",
    }
