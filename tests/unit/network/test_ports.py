"""Ports for local processes: never shared, never the ephemeral range, and a node that cannot
bind its port is noticed instead of a stranger answering in its place."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys

import grpc
import pytest

from heddle.common import ports
from heddle.common.ports import free_port
from heddle.common.tls import GRPC_SERVER_OPTIONS
from heddle.network.local import _holds_listener, _wait_port


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    got = [free_port() for _ in range(200)]
    assert len(set(got)) == len(got)
    low = ports._ephemeral_low()
    for port in got:
        assert ports._LOW <= port < low
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # nothing took it


def test_each_xdist_worker_has_its_own_slice(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    first = ports._slice()
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    second = ports._slice()
    assert first and second
    assert set(first).isdisjoint(second)
    assert first.start == ports._LOW and second.stop <= ports._ephemeral_low()
    assert all(p in second for p in (free_port() for _ in range(20)))


def test_a_port_in_use_is_skipped(monkeypatch):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        monkeypatch.setattr(ports, "_slice", lambda: range(port, port + 2))
        monkeypatch.setattr(ports, "_given", set())
        assert free_port() == port + 1


def test_grpc_servers_refuse_a_port_another_server_holds():
    """gRPC shares ports by default (SO_REUSEPORT); heddle's nodes must not."""

    async def scenario():
        port = free_port()
        first = grpc.aio.server()  # a stranger with gRPC's default options
        first.add_insecure_port(f"127.0.0.1:{port}")
        await first.start()
        try:
            ours = grpc.aio.server(options=GRPC_SERVER_OPTIONS)
            with pytest.raises(RuntimeError, match="Failed to bind"):
                ours.add_insecure_port(f"127.0.0.1:{port}")
        finally:
            await first.stop(None)

    asyncio.run(scenario())


def test_wait_port_tells_which_process_listens(tmp_path):
    log = tmp_path / "node.log"
    port = free_port()
    listener = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import socket,time; s=socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert listener.stdout.readline().strip() == b"ready"
        assert _holds_listener(listener.pid, port) is True
        assert _holds_listener(idle.pid, port) is False
        _wait_port("127.0.0.1", port, listener, log, timeout=5)  # its own port: returns
        with pytest.raises(RuntimeError, match=f"127.0.0.1:{port} is held by another process"):
            _wait_port("127.0.0.1", port, idle, log, timeout=1)
    finally:
        for p in (listener, idle):
            p.kill()
            p.wait()
