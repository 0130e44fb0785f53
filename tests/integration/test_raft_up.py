"""`heddle up --orderers 3` plumbing end to end (on free ports, so it can run beside test_up.py):
a Raft ordering service with 'basic' deployed, then `heddle down` and `heddle up` again,
which restarts every orderer from its WAL and block store."""

from __future__ import annotations

import os
import signal
import time

import pytest

import heddle.network.up as up_mod
from heddle.client import connect, identity_from_msp_dir, signer_from_msp_dir, tls_channel
from heddle.common.ports import free_port
from heddle.network.local import LocalNetwork, NetworkSpec
from heddle.orderer.participation_client import request

pytestmark = pytest.mark.integration


def _down(data) -> None:
    """`heddle down`, reaping the processes up() started from this process (else they linger
    as zombies and look alive to the pid file check)."""
    pids = LocalNetwork.running_pids(data)
    for pid in pids.values():
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + 20
    for pid in pids.values():
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            time.sleep(0.05)
    LocalNetwork.stop_pids(data)


def _statuses(net: LocalNetwork) -> list[dict]:
    return [request(net.orderer_admin_endpoint(o), "GET", f"/{net.spec.channel}")[1] for o in range(3)]


def _submit(net: LocalNetwork, asset: str) -> str:
    channel = tls_channel(net.peer_address(0), net.peer_tls_ca(0), server_name_override=net.peer_name(0))
    msp = net.user_msp(0)
    try:
        gw = connect(identity_from_msp_dir(msp, "Org1MSP"), signer_from_msp_dir(msp), channel)
        contract = gw.get_network(net.spec.channel).get_contract("basic")
        for attempt in range(20):  # right after a restart the first election may still run
            try:
                contract.submit_transaction("CreateAsset", asset, "red", "3", "Ann", "10")
                return asset
            except Exception:
                if attempt == 19:
                    raise
                time.sleep(0.5)
    finally:
        channel.close()
    raise AssertionError("unreachable")


def test_up_with_three_orderers_runs_raft_and_survives_down_and_up(tmp_path, monkeypatch, capsys):
    ports = {
        "orderer_port": free_port(),
        "orderer_admin_port": free_port(),
        "peer_ports": [free_port(), free_port()],
        "extra_orderer_ports": [free_port(), free_port()],
        "extra_orderer_admin_ports": [free_port(), free_port()],
        "cluster_ports": [free_port() for _ in range(3)],
    }

    def spec(channel: str, batch_timeout: str, orderers: int = 1) -> NetworkSpec:
        return NetworkSpec(
            channel=channel,
            batch_timeout=batch_timeout,
            orderers=orderers,
            raft_options={"TickInterval": "100ms"},
            **{k: list(v) if isinstance(v, list) else v for k, v in ports.items()},
        )

    monkeypatch.setattr(up_mod, "_spec", spec)
    data = tmp_path / "data"
    try:
        net = up_mod.up(data, orderers=3, batch_timeout="200ms")
        out = capsys.readouterr().out
        assert "orderer3.example.com" in out and "ready in" in out
        statuses = _statuses(net)
        assert sorted(s["raft"]["id"] for s in statuses) == [1, 2, 3]
        assert len({s["raft"]["leader"] for s in statuses}) == 1
        _submit(net, "before-restart")

        _down(data)
        net = up_mod.up(data, orderers=3, batch_timeout="200ms")
        _submit(net, "after-restart")
        deadline = time.monotonic() + 20
        while len({s["height"] for s in _statuses(net)}) != 1:
            assert time.monotonic() < deadline, _statuses(net)
            time.sleep(0.2)
        statuses = _statuses(net)
        assert all(s["raft"]["term"] >= 1 for s in statuses)
        print(f"heddle up --orderers 3: restarted from WAL, all at height {statuses[0]['height']}")
    finally:
        _down(data)
