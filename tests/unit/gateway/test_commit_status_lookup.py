"""CommitStatus looks a committed transaction up without reading its block when the block's
TRANSACTIONS_FILTER is known (the commit listener records it), and says when it would have
to read the block (that read goes to the thread pool)."""

from types import SimpleNamespace

from fabric_protos.common import common_pb2
from fabric_protos.peer import transaction_pb2

from heddle.peer.gateway.service import Gateway
from heddle.protocol import TRANSACTIONS_FILTER_INDEX

VALID, MVCC = transaction_pb2.VALID, transaction_pb2.MVCC_READ_CONFLICT


def _block(number: int, codes: bytes) -> common_pb2.Block:
    block = common_pb2.Block()
    block.header.number = number
    while len(block.metadata.metadata) <= TRANSACTIONS_FILTER_INDEX:
        block.metadata.metadata.append(b"")
    block.metadata.metadata[TRANSACTIONS_FILTER_INDEX] = codes
    return block


class _Channel:
    channel_id = "mychannel"

    def __init__(self):
        self.locations = {"a": (5, 0), "b": (5, 1), "c": (6, 0)}
        self.blocks_read: list[int] = []
        self.stored = {5: _block(5, bytes([VALID, MVCC])), 6: _block(6, bytes([VALID]))}
        self.ledger = SimpleNamespace(blocks=SimpleNamespace(tx_location=self.locations.get))

    def block(self, number):
        self.blocks_read.append(number)
        return self.stored[number]


def _gateway() -> Gateway:
    gw = Gateway.__new__(Gateway)  # only the lookup's state is needed here
    gw._filters = {}
    return gw


def test_lookup_uses_the_filter_recorded_at_commit_without_reading_the_block():
    gw, channel = _gateway(), _Channel()
    results = [SimpleNamespace(code=VALID), SimpleNamespace(code=MVCC)]
    gw._remember_filter(channel.channel_id, channel.stored[5], results)
    assert gw._lookup_tx(channel, "a", read_block=False) == (VALID, 5)
    assert gw._lookup_tx(channel, "b", read_block=False) == (MVCC, 5)
    assert gw._lookup_tx(channel, "nope", read_block=False) is None
    assert channel.blocks_read == []


def test_lookup_of_an_unrecorded_block_asks_for_the_read_then_reads_it_once():
    gw, channel = _gateway(), _Channel()
    assert gw._lookup_tx(channel, "c", read_block=False) is False
    assert channel.blocks_read == []
    assert gw._lookup_tx(channel, "c") == (VALID, 6)
    assert gw._lookup_tx(channel, "c", read_block=False) == (VALID, 6)
    assert channel.blocks_read == [6]
