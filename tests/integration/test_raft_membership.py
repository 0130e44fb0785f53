"""Adding and removing an orderer with channel config updates, in real processes: a fourth
orderer joins with the genesis block, onboards by pulling blocks, becomes Raft node 4 and
orders; then another is removed, stops, and the rest continue."""

from __future__ import annotations

import time

import pytest
from fabric_client import Identity, broadcast_stub, secure_channel, write_transaction
from fabric_protos.common import common_pb2
from fabric_protos.orderer import configuration_pb2
from fabric_protos.orderer.etcdraft import configuration_pb2 as raft_values
from test_raft_faults import SEED, orderer_blocks, raft_status

from heddle.channelconfig import compute_update, config_update_envelope, parse_config_block
from heddle.common.ports import free_port
from heddle.msp import load_signing_identity
from heddle.network.local import LocalNetwork, NetworkSpec
from heddle.orderer.participation_client import join
from heddle.protocol import block_header_hash, parse_envelope

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    spec = NetworkSpec(
        orderer_port=free_port(),
        orderer_admin_port=free_port(),
        peer_ports=[free_port(), free_port()],
        batch_timeout="200ms",
        orderers=3,
        spare_orderers=1,
        extra_orderer_ports=[free_port() for _ in range(3)],
        extra_orderer_admin_ports=[free_port() for _ in range(3)],
        cluster_ports=[free_port() for _ in range(4)],
        raft_options={"TickInterval": "100ms"},
    )
    network = LocalNetwork(tmp_path_factory.mktemp("raftmembers"), spec)
    network.generate()
    try:
        network.start()
        network.join()
        yield network
    finally:
        network.stop()


def broadcast(net: LocalNetwork, o: int, env: common_pb2.Envelope):
    with secure_channel(net.orderer_address_of(o), net.orderer_tls_ca) as ch:
        return next(broadcast_stub(ch)(iter([env]), timeout=30))


def send_txs(net: LocalNetwork, o: int, n: int) -> None:
    user = Identity.from_msp_dir(net.user_msp(0), "Org1MSP")
    for k in range(n):
        env, _ = write_transaction(user, net.spec.channel, {f"m{o}-{k}-{time.monotonic_ns()}": b"v"})
        for _attempt in range(40):
            resp = broadcast(net, o, env)
            if resp.status == common_pb2.SUCCESS:
                break
            time.sleep(0.25)  # e.g. no leader known for a moment
        assert resp.status == common_pb2.SUCCESS, resp


def consenters_update(net: LocalNetwork, reader: Identity, add: int | None = None, remove: int | None = None):
    blocks = orderer_blocks(net, 0, reader)
    config = None
    for b in reversed(blocks):
        if parse_envelope(b.data.data[0]).header_type == common_pb2.CONFIG:
            config = parse_config_block(b)
            break
    updated = type(config.config)()
    updated.CopyFrom(config.config)
    value = updated.channel_group.groups["Orderer"].values["ConsensusType"]
    ct = configuration_pb2.ConsensusType.FromString(value.value)
    md = raft_values.ConfigMetadata.FromString(ct.metadata)
    cluster_ports = net.spec.orderer_cluster_ports()
    if add is not None:
        tls = net.orderer_org_dir / "orderers" / net.orderer_name(add) / "tls" / "server.crt"
        pem = tls.read_bytes()
        md.consenters.append(
            raft_values.Consenter(
                host=net.spec.host, port=cluster_ports[add], client_tls_cert=pem, server_tls_cert=pem
            )
        )
    if remove is not None:
        keep = [c for c in md.consenters if c.port != cluster_ports[remove]]
        del md.consenters[:]
        md.consenters.extend(keep)
    ct.metadata = md.SerializeToString()
    value.value = ct.SerializeToString()
    admin = load_signing_identity(net.orderer_org_dir / "users" / "Admin@example.com" / "msp", "OrdererMSP")
    return config_update_envelope(compute_update(config.channel_id, config.config, updated), [admin], admin)


def wait_for(cond, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def same_chain(net: LocalNetwork, orderers: list[int], reader: Identity) -> int:
    wait_for(
        lambda: len({raft_status(net, o)["height"] for o in orderers}) == 1,
        f"orderers {orderers} to converge",
    )
    chains = [[block_header_hash(b.header) for b in orderer_blocks(net, o, reader)] for o in orderers]
    assert all(c == chains[0] for c in chains), "orderers disagree on block hashes"
    return len(chains[0])


def test_an_orderer_is_added_and_another_removed_with_config_updates(net):
    t0 = time.monotonic()
    reader = Identity.from_msp_dir(net.user_msp(0), "Org1MSP")
    send_txs(net, 0, 3)

    # add orderer4: config update, then start it and join it with the genesis block
    resp = broadcast(net, 0, consenters_update(net, reader, add=3))
    assert resp.status == common_pb2.SUCCESS, resp
    net.start_orderer(3)
    status, body = join(net.orderer_admin_endpoint(3), net.genesis_path.read_bytes())
    assert status == 201, body
    wait_for(
        lambda: (raft_status(net, 3) or {}).get("raft", {}).get("leader", 0) != 0,
        "orderer4 to onboard and follow the leader",
    )
    assert raft_status(net, 3)["raft"]["id"] == 4
    wait_for(lambda: 4 in raft_status(net, 0)["raft"]["voters"], "Raft to add node 4")
    send_txs(net, 3, 3)  # through the new orderer (forwarded to the leader)
    h_add = same_chain(net, [0, 1, 2, 3], reader)

    # remove orderer2 (index 1)
    resp = broadcast(net, 0, consenters_update(net, reader, remove=1))
    assert resp.status == common_pb2.SUCCESS, resp
    wait_for(lambda: raft_status(net, 1)["raft"].get("state") == "evicted", "orderer2 to stop")
    wait_for(lambda: 2 not in raft_status(net, 0)["raft"]["voters"], "Raft to remove node 2")
    stuck = raft_status(net, 1)["height"]
    send_txs(net, 3, 3)
    h_final = same_chain(net, [0, 2, 3], reader)
    assert raft_status(net, 1)["height"] == stuck < h_final
    refused = broadcast(net, 1, write_transaction(reader, net.spec.channel, {"late": b"v"})[0])
    assert refused.status == common_pb2.SERVICE_UNAVAILABLE
    print(
        f"[seed {SEED}] orderer4 added by config update, onboarded and ordered (4 orderers agree on "
        f"{h_add} blocks); orderer2 removed and stopped at height {stuck}, the other three agree on "
        f"{h_final} blocks ({time.monotonic() - t0:.1f}s)"
    )
