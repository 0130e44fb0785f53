"""Fabric's official Node client (@hyperledger/fabric-gateway 1.11) runs the asset flow against heddle.

Needs node and npm: ``make test`` runs ``npm ci`` in tests/integration/node from its lockfile
(and this fixture does too if node_modules is missing or older than the lockfile).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_gateway import start_basic_network

pytestmark = pytest.mark.integration

NODE_DIR = Path(__file__).resolve().parent / "node"


@pytest.fixture(scope="module")
def node_modules():
    assert shutil.which("node") and shutil.which("npm"), "node and npm are needed (see the README)"
    lock = NODE_DIR / "package-lock.json"
    marker = NODE_DIR / "node_modules" / ".package-lock.json"
    if not marker.exists() or marker.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"],
            cwd=NODE_DIR,
            check=True,
            timeout=600,
        )
    return NODE_DIR / "node_modules"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = start_basic_network(tmp_path_factory, "gateway-node")
    yield network
    network.stop()


def test_asset_flow_through_fabric_gateway_node(node_modules, net):
    env = dict(
        os.environ,
        CRYPTO_PATH=str(net.org_dir(0)),
        PEER_ENDPOINT=net.peer_address(0),
        PEER_HOST_ALIAS=net.peer_name(0),
    )
    proc = subprocess.run(
        ["node", "asset.mjs"], check=False, cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=180
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    steps = {line["step"]: line for line in lines}
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in (
        "InitLedger",
        "GetAllAssets",
        "CreateAsset",
        "TransferAsset",
        "ReadAsset",
        "UpdateAsset",
        "done",
    ):
        assert steps[name]["ok"], steps.get(name)
    update = steps["UpdateAsset"]["error"]
    assert update["name"] == "EndorseError" and update["code"] == 10  # ABORTED
    assert any("does not exist" in d["message"] for d in update["details"])
