"""The solo chain on a real block store: timeout cuts, count cuts, acks after durable writes."""

from __future__ import annotations

import asyncio

import pytest
from fabric_client import Identity, write_transaction

from heddle.channelconfig import parse_config_block
from heddle.ledger import BlockStore
from heddle.orderer.channel import BroadcastError, ChannelSupport
from heddle.orderer.consensus.solo import SoloChain
from heddle.peer.validator import verify_block
from heddle.protocol import block_header_hash, parse_envelope


@pytest.fixture
def support(material, tmp_path):
    store = BlockStore(tmp_path / "chain", index_txids=False)
    store.append(material.genesis_copy())
    s = ChannelSupport("mychannel", store, material.orderer_identity(), None)
    yield s
    store.close()


def envelopes(material, n, **kw):
    user = Identity.from_msp_dir(material.msp(1), "Org1MSP")
    out = []
    for i in range(n):
        env, _ = write_transaction(user, "mychannel", {f"k{i}": b"v"}, **kw)
        out.append((parse_envelope(env.SerializeToString()), env.SerializeToString()))
    return out


async def order_all(chain, support, msgs):
    futures = []
    for parsed, raw in msgs:
        size = support.check_normal(parsed)
        futures.append(chain.order(parsed, raw, size))
    return await asyncio.gather(*futures)


def test_pending_batch_is_cut_when_batch_timeout_expires(material, support):
    # the test genesis has BatchTimeout 100ms and MaxMessageCount 5
    async def run():
        chain = SoloChain(support)
        chain.start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        numbers = await order_all(chain, support, envelopes(material, 2))
        elapsed = loop.time() - t0
        await chain.halt()
        return numbers, elapsed

    numbers, elapsed = asyncio.run(run())
    assert numbers == [1, 1]
    assert elapsed >= 0.09  # the block waited for the timeout, it was not cut by count
    assert support.store.height == 2
    assert len(support.store.get_by_number(1).data.data) == 2


def test_max_message_count_cuts_full_blocks(material, support):
    async def run():
        chain = SoloChain(support)
        chain.start()
        numbers = await order_all(chain, support, envelopes(material, 12))
        await chain.halt()
        return numbers

    numbers = asyncio.run(run())
    assert numbers == [1] * 5 + [2] * 5 + [3] * 2
    sizes = [len(support.store.get_by_number(n).data.data) for n in (1, 2, 3)]
    assert sizes == [5, 5, 2]


def test_written_blocks_are_signed_chained_and_verify(material, support):
    config = parse_config_block(material.genesis)

    async def run():
        chain = SoloChain(support)
        chain.start()
        await order_all(chain, support, envelopes(material, 7))
        await chain.halt()

    asyncio.run(run())
    prev = block_header_hash(support.store.get_by_number(0).header)
    for n in range(1, support.store.height):
        block = support.store.get_by_number(n)
        verify_block(block, prev, config)  # the same checks the golden Fabric blocks pass
        prev = block_header_hash(block.header)


def test_oversized_and_unsigned_messages_are_refused_before_ordering(material, support):
    ((parsed, _),) = envelopes(material, 1, pad=11 * 1024 * 1024)
    with pytest.raises(BroadcastError, match="exceeds maximum allowed"):
        support.check_normal(parsed)
    ((parsed, _),) = envelopes(material, 1, sign=False)
    with pytest.raises(BroadcastError, match="not signed"):
        support.check_normal(parsed)


def test_halt_fails_pending_messages_instead_of_acknowledging_them(material, support):
    async def run():
        chain = SoloChain(support)
        chain.start()
        ((parsed, raw),) = envelopes(material, 1)
        fut = chain.order(parsed, raw, support.check_normal(parsed))
        await asyncio.sleep(0)  # queued, not yet cut (timeout 100ms)
        await chain.halt()
        return fut

    fut = asyncio.run(run())
    assert isinstance(fut.exception(), BroadcastError)
    assert support.store.height == 1  # nothing written, and nothing acknowledged
