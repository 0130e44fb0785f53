"""CommitStatus gives a committed transaction's code from the TRANSACTIONS_FILTER the gateway
records at commit; only for a block it did not see commit does it read the block, once."""

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
        self.blocks_read: list[int] = []
        self.stored = {5: _block(5, bytes([VALID, MVCC])), 6: _block(6, bytes([VALID]))}

    def block(self, number):
        self.blocks_read.append(number)
        return self.stored[number]


def _gateway() -> Gateway:
    gw = Gateway.__new__(Gateway)  # only the lookup's state is needed here
    gw._filters = {}
    return gw


def test_status_comes_from_the_filter_recorded_at_commit_without_reading_the_block():
    gw, channel = _gateway(), _Channel()
    results = [SimpleNamespace(code=VALID), SimpleNamespace(code=MVCC)]
    gw._remember_filter(channel.channel_id, channel.stored[5], results)
    assert (channel.channel_id, 5) in gw._filters
    assert gw._status_at(channel, 5, 0) == (VALID, 5)
    assert gw._status_at(channel, 5, 1) == (MVCC, 5)
    assert channel.blocks_read == []


def test_status_in_an_unrecorded_block_reads_it_once():
    gw, channel = _gateway(), _Channel()
    assert (channel.channel_id, 6) not in gw._filters
    assert gw._status_at(channel, 6, 0) == (VALID, 6)
    assert gw._status_at(channel, 6, 0) == (VALID, 6)
    assert channel.blocks_read == [6]
    assert gw._status_at(channel, 6, 3) == (transaction_pb2.NOT_VALIDATED, 6)  # past the filter
