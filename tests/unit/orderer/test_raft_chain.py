"""The etcdraft chain: three RaftChains in one event loop over an in-memory cluster transport
(real block stores, real WALs, real signing identities; the harness is
tests/helpers/raft_harness.py)."""

from __future__ import annotations

import asyncio

import pytest
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

from heddle.ledger import BlockStore
from heddle.orderer.channel import BroadcastError
from heddle.orderer.consensus.raft import raft_metadata
from heddle.protocol import parse_envelope


@pytest.fixture(scope="module")
def raft_material(tmp_path_factory):
    return make_raft_material(tmp_path_factory, "raftmat")


def test_leader_and_followers_order_and_write_identical_blocks(raft_material, tmp_path):
    root, genesis = raft_material

    async def run():
        cluster = MemoryCluster()
        nodes = start_nodes(root, genesis, cluster, tmp_path)
        try:
            leader = await wait_leader(nodes)
            follower = next(n for n in nodes if n is not leader)
            msgs = messages(root, 12, seed=1)
            via_follower = await order(follower, msgs[:6])
            via_leader = await order(leader, msgs[6:])
            h = await converge(nodes)
            return nodes, via_follower, via_leader, h, [p.tx_id for p, _ in msgs]
        finally:
            for n in nodes:
                await n.stop()

    nodes, via_follower, via_leader, h, txids = asyncio.run(run())
    assert all(n >= 1 for n in via_follower + via_leader)
    assert h >= 3  # 12 messages, at most 5 per block
    store = BlockStore(nodes[0].dir / "chain", index_txids=False)
    try:
        indexes = []
        for number in range(1, store.height):
            md = raft_metadata(store.get_by_number(number))
            assert md is not None and list(md.consenter_ids) == [1, 2, 3] and md.next_consenter_id == 4
            indexes.append(md.raft_index)
        assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
        ordered = [
            parse_envelope(e).tx_id for n in range(1, store.height) for e in store.get_by_number(n).data.data
        ]
        assert sorted(ordered) == sorted(txids)
    finally:
        store.close()


def test_restart_recovers_from_the_wal_and_never_writes_a_block_twice(raft_material, tmp_path):
    root, genesis = raft_material

    async def run():
        cluster = MemoryCluster()
        nodes = start_nodes(root, genesis, cluster, tmp_path)
        leader = await wait_leader(nodes)
        await order(leader, messages(root, 7, seed=2))
        h1 = await converge(nodes)
        for n in nodes:
            await n.stop()
        # restart all three on their WALs and block stores: nothing is re-written
        for n in nodes:
            n.start()
        leader = await wait_leader(nodes)
        await asyncio.sleep(0.3)
        h_restarted = [n.store.height for n in nodes]
        # one node loses its block store (behind the WAL): it replays and rewrites the same blocks
        lagging = next(n for n in nodes if n is not leader)
        await lagging.stop()
        for p in (lagging.dir / "chain").iterdir():
            p.unlink()
        lagging.start()
        await order(leader, messages(root, 4, seed=3))
        h2 = await converge(nodes)
        for n in nodes:
            await n.stop()
        return h1, h_restarted, h2

    h1, h_restarted, h2 = asyncio.run(run())
    assert h_restarted == [h1] * 3
    assert h2 > h1


def test_partitioned_leader_commits_nothing_and_catches_up_after_healing(raft_material, tmp_path):
    root, genesis = raft_material

    async def run():
        cluster = MemoryCluster()
        nodes = start_nodes(root, genesis, cluster, tmp_path)
        try:
            old = await wait_leader(nodes)
            await order(old, messages(root, 3, seed=4))
            await converge(nodes)
            others = [n for n in nodes if n is not old]
            for o in others:
                cluster.cut.add(frozenset((old.endpoint, o.endpoint)))
            minority_h = old.store.height
            # the cut-off leader accepts a message but cannot commit it
            parsed, raw = messages(root, 1, seed=5)[0]
            stuck = old.chain.order(parsed, raw, old.chain.support.check_normal(parsed))
            new = await wait_leader(others)
            await order(new, messages(root, 6, seed=6))
            majority_h = new.store.height
            assert old.store.height == minority_h
            assert majority_h > minority_h
            cluster.cut.clear()
            h = await converge(nodes)
            try:
                await asyncio.wait_for(stuck, 1)
            except (BroadcastError, TimeoutError):
                pass
            return minority_h, majority_h, h
        finally:
            for n in nodes:
                await n.stop()

    minority_h, majority_h, h = asyncio.run(run())
    assert h >= majority_h > minority_h


def test_follower_without_a_leader_answers_service_unavailable(raft_material, tmp_path):
    root, genesis = raft_material

    async def run():
        cluster = MemoryCluster()
        node = Node(root, genesis, 0, cluster, tmp_path)
        node.start()  # alone: no quorum, no leader
        try:
            await asyncio.sleep(0.1)
            parsed, raw = messages(root, 1, seed=7)[0]
            with pytest.raises(BroadcastError) as err:
                await node.chain.order(parsed, raw, node.chain.support.check_normal(parsed))
            return err.value
        finally:
            await node.stop()

    err = asyncio.run(run())
    assert err.status == 503 and "leader" in err.message
