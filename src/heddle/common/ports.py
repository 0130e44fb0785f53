"""Loopback ports for processes a test, a benchmark or a local network starts.

A port from ``bind(("127.0.0.1", 0))`` is free only at that instant and comes from the
kernel's ephemeral range, which outgoing connections draw from too; two pytest-xdist workers
(or a worker and a client socket) can end up with the same one before the node that is to
listen on it starts. So ports come from below the ephemeral range, each xdist worker has its
own slice of it, and a process never hands out the same port twice.
"""

from __future__ import annotations

import os
import random
import socket
import threading

_LOW = 20000  # above every default heddle/Fabric port (7050-7053, 9051, 1947, Raft 8050+1000*i)
_given: set[int] = set()
_lock = threading.Lock()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default when the range cannot be read


def _slice() -> range:
    """This process's share of the ports below the ephemeral range (one per xdist worker)."""
    high = _ephemeral_low()
    if high - _LOW < 1000:
        return range(0)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    if count <= 1 or index >= count:
        return range(_LOW, high)
    size = (high - _LOW) // count
    return range(_LOW + index * size, _LOW + (index + 1) * size)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, not handed out before by this
    process, outside the ephemeral range and, under pytest-xdist, in this worker's slice."""
    ports = _slice()
    with _lock:
        if ports:
            start = random.randrange(len(ports))
            for k in range(len(ports)):
                port = ports[(start + k) % len(ports)]
                if port not in _given and _bindable(port):
                    _given.add(port)
                    return port
        # no range below the ephemeral ports on this machine: let the kernel choose
        for _ in range(100):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in _given:
                _given.add(port)
                return port
    raise RuntimeError("no free TCP port on 127.0.0.1")
