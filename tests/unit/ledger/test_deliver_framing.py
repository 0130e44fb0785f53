"""Deliver answers with a block's stored bytes framed as a DeliverResponse: what a Fabric
client parses must be exactly the stored block, for small and large blocks."""

import pytest
from fabric_protos.common import common_pb2
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import events_pb2
from ledger_blocks import make_block

from heddle.common.deliver import block_response, serialize_response
from heddle.ledger import BlockStore


class _Source:
    def __init__(self, store: BlockStore):
        self.store = store

    def block_bytes(self, number: int) -> bytes:
        return self.store.get_bytes(number)


@pytest.mark.parametrize("response_type", [ab_pb2.DeliverResponse, events_pb2.DeliverResponse])
def test_framed_block_parses_as_the_stored_block(tmp_path, response_type):
    # 1 tx (a one-byte length), 3 txs, and ~300 KB (a three-byte length)
    sizes = [(1, 10), (3, 64), (300, 1000)]
    with BlockStore(tmp_path) as store:
        for n, (txs, size) in enumerate(sizes):
            store.append(make_block(n, txs=txs, payload_size=size))
        source = _Source(store)
        for n in range(len(sizes)):
            raw = block_response(source, n)
            parsed = response_type.FromString(raw)
            assert parsed.WhichOneof("Type") == "block"
            assert parsed.block == store.get_by_number(n)
            assert parsed.block.SerializeToString() == store.get_bytes(n)
            # the same bytes protobuf itself would produce for the response
            assert raw == response_type(block=store.get_by_number(n)).SerializeToString()


def test_serialize_response_passes_framed_bytes_and_serializes_messages():
    status = ab_pb2.DeliverResponse(status=common_pb2.SUCCESS)
    assert serialize_response(status) == status.SerializeToString()
    assert serialize_response(b"\x12\x00") == b"\x12\x00"
