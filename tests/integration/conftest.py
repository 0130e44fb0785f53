"""A real local network (one orderer, two peers, TLS everywhere) shared by a test module."""

from __future__ import annotations

import os
import tempfile

import pytest
from fabric_client import Identity
from network_helpers import DEMO_POLICY, define_chaincode, make_network, peer_identity


@pytest.fixture(scope="module")
def default_ports():
    """Serialise the test modules that run networks on the fixed default ports (7050, 7051, ...):
    pytest-xdist may run two such modules at once on different workers."""
    import fcntl

    with open(os.path.join(tempfile.gettempdir(), "heddle-default-ports.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    net = make_network(tmp_path_factory, "net", batch_timeout="250ms", max_message_count=100)
    net.generate()
    try:
        net.start()
        net.join()
        define_chaincode(net, "demo", DEMO_POLICY)
        yield net
    finally:
        net.stop()


@pytest.fixture(scope="module")
def endorser(network) -> Identity:
    """peer0.org1's identity, which satisfies the demo chaincode's policy on its own."""
    return peer_identity(network, 0)
