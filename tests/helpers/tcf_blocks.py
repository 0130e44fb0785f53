"""Blocks of `tcf` chaincode transactions for tests that follow the ledger without a network
(the connector's and the bench's): real envelopes, dummy signatures."""

from __future__ import annotations

import json

from fabric_protos.common import common_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.msp import identities_pb2

from heddle.protocol import (
    build_response,
    create_proposal,
    create_signed_transaction,
    new_block,
    parse_signed_proposal,
    sign_proposal,
)
from heddle.protocol.blocks import TRANSACTIONS_FILTER


def creator(mspid: str) -> bytes:
    return identities_pb2.SerializedIdentity(mspid=mspid, id_bytes=b"cert").SerializeToString()


def _sign(_data: bytes) -> bytes:
    return b"signature"


def tcf_tx(namespace: str, writes: dict[str, dict], function: bytes, who: bytes) -> bytes:
    """An endorser transaction of ``namespace`` by ``who`` calling ``function``, writing
    each key's value as JSON."""
    kv = kv_rwset_pb2.KVRWSet(
        writes=[kv_rwset_pb2.KVWrite(key=k, value=json.dumps(v).encode()) for k, v in writes.items()]
    )
    results = rwset_pb2.TxReadWriteSet(
        data_model=rwset_pb2.TxReadWriteSet.KV,
        ns_rwset=[rwset_pb2.NsReadWriteSet(namespace=namespace, rwset=kv.SerializeToString())],
    ).SerializeToString()
    proposal, _ = create_proposal(who, "mychannel", namespace, [function])
    parsed = parse_signed_proposal(sign_proposal(proposal, _sign))
    response = build_response(parsed, 200, results=results, endorser=who, sign=_sign)
    return create_signed_transaction(parsed, [response], _sign).SerializeToString()


def tcf_block(number: int, txs: list[tuple[bytes, int]]) -> common_pb2.Block:
    """Block ``number`` holding each (envelope, validation code) of ``txs``."""
    block = new_block(number, b"\0" * 32, [raw for raw, _ in txs])
    while len(block.metadata.metadata) <= TRANSACTIONS_FILTER:
        block.metadata.metadata.append(b"")
    block.metadata.metadata[TRANSACTIONS_FILTER] = bytes(code for _, code in txs)
    return block
