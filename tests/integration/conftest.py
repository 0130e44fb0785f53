"""A real local network (one orderer, two peers, TLS everywhere) shared by a test module."""

from __future__ import annotations

import pytest

from heddle.network.local import LocalNetwork, NetworkSpec, free_port


def make_network(tmp_path_factory, name: str, **spec_kw) -> LocalNetwork:
    spec = NetworkSpec(
        orderer_port=free_port(),
        orderer_admin_port=free_port(),
        peer_ports=[free_port(), free_port()],
        **spec_kw,
    )
    return LocalNetwork(tmp_path_factory.mktemp(name), spec)


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    net = make_network(tmp_path_factory, "net", batch_timeout="250ms", max_message_count=100)
    net.generate()
    try:
        net.start()
        net.join()
        yield net
    finally:
        net.stop()
