"""Which chaincode events a block yields, and resuming after a transaction within it."""

from __future__ import annotations

from fabric_protos.peer import transaction_pb2
from gateway_fakes import ScriptedEndorser

from heddle.msp import load_signing_identity
from heddle.peer.gateway.service import chaincode_events_in_block
from heddle.protocol import (
    TRANSACTIONS_FILTER_INDEX,
    create_proposal,
    create_signed_transaction,
    new_block,
    parse_signed_proposal,
    sign_proposal,
)


def _tx(material, chaincode: str, fn: str, arg: str):
    client = load_signing_identity(material.msp(1), "Org1MSP")
    peer = ScriptedEndorser(load_signing_identity(material.peer_msp(1), "Org1MSP"))
    prop, txid = create_proposal(client.serialized, "mychannel", chaincode, [fn.encode(), arg.encode()])
    signed = sign_proposal(prop, client.sign)
    response = peer.process(signed.SerializeToString())
    env = create_signed_transaction(parse_signed_proposal(signed), [response], client.sign)
    return env.SerializeToString(), txid


def _block(material, txs, codes):
    block = new_block(5, b"", [raw for raw, _ in txs])
    block.metadata.metadata[TRANSACTIONS_FILTER_INDEX] = bytes(codes)
    return block


def test_events_of_valid_transactions_of_the_chaincode_in_order(material):
    txs = [
        _tx(material, "basic", "Echo", "a"),
        _tx(material, "other", "Echo", "b"),
        _tx(material, "basic", "Echo", "c"),
        _tx(material, "basic", "Echo", "d"),
    ]
    V, MVCC = transaction_pb2.VALID, transaction_pb2.MVCC_READ_CONFLICT
    block = _block(material, txs, [V, V, MVCC, V])
    events = chaincode_events_in_block(block, "basic")
    assert [(e.payload, e.tx_id, e.event_name, e.chaincode_id) for e in events] == [
        (b"a", txs[0][1], "Echo", "basic"),
        (b"d", txs[3][1], "Echo", "basic"),
    ]


def test_resume_after_a_transaction_skips_it_and_those_before(material):
    txs = [_tx(material, "basic", "Echo", x) for x in "abc"]
    block = _block(material, txs, [transaction_pb2.VALID] * 3)
    assert [e.payload for e in chaincode_events_in_block(block, "basic", txs[0][1])] == [b"b", b"c"]
    assert chaincode_events_in_block(block, "basic", txs[2][1]) == []
    # a txid not in the block resumes nothing: every event is delivered
    assert len(chaincode_events_in_block(block, "basic", "f" * 64)) == 3
