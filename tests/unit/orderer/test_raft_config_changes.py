"""Adding and removing an orderer with a channel config update: the consenter set in the
config block becomes a Raft configuration change; a new orderer onboards by pulling blocks,
then joins Raft under the id the config block assigned it; a removed one stops."""

from __future__ import annotations

import asyncio

import pytest
from fabric_protos.common import common_pb2
from fabric_protos.orderer import configuration_pb2
from fabric_protos.orderer.etcdraft import configuration_pb2 as raft_values
from raft_harness import (
    MemoryCluster,
    Node,
    converge,
    make_raft_material,
    messages,
    order,
    start_nodes,
    wait_leader,
)

from heddle.channelconfig import (
    compute_update,
    config_update_envelope,
    parse_config_block,
)
from heddle.msp import load_signing_identity
from heddle.orderer.consensus.raft import raft_metadata
from heddle.orderer.consensus.raft.catchup import CatchUpError
from heddle.protocol import parse_envelope


@pytest.fixture(scope="module")
def four_material(tmp_path_factory):
    # orderer4 has crypto material but is not a consenter yet
    return make_raft_material(tmp_path_factory, "raft4", generated_orderers=4)


def signed_update(root, config, updated):
    """A CONFIG_UPDATE from ``config`` to ``updated``, signed by the orderer org's admin."""
    org = root / "organizations" / "ordererOrganizations" / "example.com"
    admin_msp = org / "users" / "Admin@example.com" / "msp"
    admin = load_signing_identity(admin_msp, "OrdererMSP")
    env = config_update_envelope(compute_update(config.channel_id, config.config, updated), [admin], admin)
    return parse_envelope(env.SerializeToString())


def latest_config(store):
    """The channel config of the store's newest config block."""
    for n in range(store.height - 1, -1, -1):
        b = store.get_by_number(n)
        if parse_envelope(b.data.data[0]).header_type == common_pb2.CONFIG:
            return parse_config_block(b)
    raise AssertionError("no config block in the store")


def consenter_update(root, store, add: bytes | None = None, remove_port: int | None = None):
    """A CONFIG_UPDATE envelope (signed by the orderer org's admin) changing the consenters."""
    config = latest_config(store)
    updated = type(config.config)()
    updated.CopyFrom(config.config)
    value = updated.channel_group.groups["Orderer"].values["ConsensusType"]
    ct = configuration_pb2.ConsensusType.FromString(value.value)
    md = raft_values.ConfigMetadata.FromString(ct.metadata)
    if add is not None:
        md.consenters.append(
            raft_values.Consenter(host="127.0.0.1", port=10050, client_tls_cert=add, server_tls_cert=add)
        )
    if remove_port is not None:
        keep = [c for c in md.consenters if c.port != remove_port]
        del md.consenters[:]
        md.consenters.extend(keep)
    ct.metadata = md.SerializeToString()
    value.value = ct.SerializeToString()
    return signed_update(root, config, updated)


def test_an_orderer_is_added_then_another_removed_by_config_updates(four_material, tmp_path):
    root, genesis = four_material

    async def run():
        cluster = MemoryCluster()
        nodes = [Node(root, genesis, i, cluster, tmp_path) for i in range(4)]

        async def pull(endpoints, roots, identity, channel_id, start, stop, prev_hash):
            src = max(
                (n for n in nodes[:3] if n.store is not None and not n.chain._halted),
                key=lambda n: n.store.height,
            )
            last = src.store.height - 1 if stop is None else stop
            if last >= src.store.height:
                raise CatchUpError("not there yet")
            out = []
            for k in range(start, last + 1):
                b = common_pb2.Block()
                b.CopyFrom(src.store.get_by_number(k))
                out.append(b)
            return out

        for n in nodes[:3]:
            n.start()
            n.chain.cluster.pull = pull
        leader = await wait_leader(nodes[:3])
        await order(leader, messages(root, 4, seed=10))

        # add orderer4
        cert = nodes[3].cert
        number = await leader.chain.configure(consenter_update(root, leader.store, add=cert))
        nodes[3].start()
        nodes[3].chain.cluster.pull = pull
        deadline = asyncio.get_running_loop().time() + 10
        while not (nodes[3].chain.node is not None and 4 in leader.chain.node.conf_state.voters):
            assert asyncio.get_running_loop().time() < deadline, "orderer4 never joined"
            await asyncio.sleep(0.05)
        await order(nodes[3], messages(root, 6, seed=11))  # forwarded by the new node
        h_after_add = await converge(nodes)
        ids_after_add = list(raft_metadata(leader.store.get_by_number(h_after_add - 1)).consenter_ids)

        # remove a follower (orderer3 unless it leads)
        leader = await wait_leader(nodes)
        victim = next(n for n in nodes[:3][::-1] if n is not leader)
        await leader.chain.configure(
            consenter_update(root, leader.store, remove_port=int(victim.endpoint.rsplit(":")[1]))
        )
        remaining = [n for n in nodes if n is not victim]
        deadline = asyncio.get_running_loop().time() + 10
        while victim.chain.my_id in leader.chain.node.conf_state.voters:
            assert asyncio.get_running_loop().time() < deadline, "raft never removed the node"
            await asyncio.sleep(0.05)
        await order(leader, messages(root, 3, seed=12))
        h_final = await converge(remaining)
        evicted = victim.chain.status_note
        voters = list(leader.chain.node.conf_state.voters)
        ids_final = list(raft_metadata(leader.store.get_by_number(h_final - 1)).consenter_ids)
        for n in nodes:
            await n.stop()
        return number, ids_after_add, evicted, voters, ids_final, victim.chain.my_id

    number, ids_after_add, evicted, voters, ids_final, victim_id = asyncio.run(run())
    assert number >= 2
    assert ids_after_add == [1, 2, 3, 4]
    assert evicted == "evicted"
    assert victim_id not in voters and sorted(voters) == sorted(ids_final) and 4 in ids_final


def test_removing_the_leader_hands_over_and_the_rest_continue(four_material, tmp_path):
    root, genesis = four_material

    async def run():
        cluster = MemoryCluster()
        nodes = start_nodes(root, genesis, cluster, tmp_path)
        old = await wait_leader(nodes)
        await order(old, messages(root, 2, seed=20))
        port = int(old.endpoint.rsplit(":")[1])
        await old.chain.configure(consenter_update(root, old.store, remove_port=port))
        rest = [n for n in nodes if n is not old]
        new = await wait_leader(rest, timeout=10)
        deadline = asyncio.get_running_loop().time() + 10
        while old.chain.my_id in new.chain.node.conf_state.voters:
            assert asyncio.get_running_loop().time() < deadline, "the old leader was never removed"
            await asyncio.sleep(0.05)
        await order(new, messages(root, 3, seed=21))
        h = await converge(rest)
        await asyncio.sleep(old.chain.tick_interval * old.chain.election_tick + 0.1)
        halted, note = old.chain._halted, old.chain.status_note
        voters = list(new.chain.node.conf_state.voters)
        for n in nodes:
            await n.stop()
        return h, halted, note, voters, old.chain.my_id

    h, halted, note, voters, old_id = asyncio.run(run())
    assert halted and note == "evicted"
    assert old_id not in voters and len(voters) == 2
    assert h >= 4


def batch_size_update(root, store, count: int):
    """A CONFIG_UPDATE changing BatchSize.MaxMessageCount, signed by the orderer org's admin."""
    config = latest_config(store)
    updated = type(config.config)()
    updated.CopyFrom(config.config)
    value = updated.channel_group.groups["Orderer"].values["BatchSize"]
    bs = configuration_pb2.BatchSize.FromString(value.value)
    bs.max_message_count = count
    value.value = bs.SerializeToString()
    return signed_update(root, config, updated)


def test_config_updates_are_ordered_one_at_a_time_against_the_latest_config(four_material, tmp_path):
    from heddle.orderer.channel import BroadcastError

    root, genesis = four_material

    async def run():
        cluster = MemoryCluster()
        nodes = start_nodes(root, genesis, cluster, tmp_path)
        try:
            leader = await wait_leader(nodes)
            follower = next(n for n in nodes if n is not leader)
            first = batch_size_update(root, leader.store, 2)
            second = batch_size_update(root, leader.store, 3)  # same read set: stale once first lands
            results = await asyncio.gather(
                follower.chain.configure(first),  # forwarded to the leader
                leader.chain.configure(second),
                return_exceptions=True,
            )
            await converge(nodes)
            counts = [n.chain.support.config.orderer.batch_size.max_message_count for n in nodes]
            return results, counts
        finally:
            for n in nodes:
                await n.stop()

    results, counts = asyncio.run(run())
    won = [i for i, r in enumerate(results) if isinstance(r, int)]
    lost = [r for r in results if isinstance(r, BroadcastError)]
    assert len(won) == 1 and results[won[0]] == 1, (results, counts)  # one config block, block 1
    assert len(lost) == 1 and lost[0].status == 400 and "version" in lost[0].message
    assert counts == [(2, 3)[won[0]]] * 3
