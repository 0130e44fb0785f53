"""Deterministic test blocks: block n's content is a function of n (and txid overrides)."""

from __future__ import annotations

from fabric_protos.common import common_pb2

from heddle.protocol import make_channel_header, make_signature_header, new_block

HEADER_TYPE_ENDORSER_TRANSACTION = common_pb2.HeaderType.ENDORSER_TRANSACTION


def envelope(txid: str, payload_size: int = 64) -> bytes:
    """An unsigned envelope carrying txid (signatures are not the block store's business)."""
    chdr = make_channel_header(HEADER_TYPE_ENDORSER_TRANSACTION, "ch1", tx_id=txid, timestamp=0)
    shdr = make_signature_header(b"creator", nonce=b"n" * 24)
    payload = common_pb2.Payload(
        header=common_pb2.Header(
            channel_header=chdr.SerializeToString(),
            signature_header=shdr.SerializeToString(),
        ),
        data=(txid.encode() * (payload_size // max(1, len(txid)) + 1))[:payload_size],
    )
    return common_pb2.Envelope(payload=payload.SerializeToString(), signature=b"sig").SerializeToString()


def txid_for(n: int, i: int) -> str:
    return f"tx-{n}-{i}"


def make_block(
    n: int, prev_hash: bytes = b"", txs: int = 3, txids: list[str] | None = None,
    payload_size: int = 64,
) -> common_pb2.Block:
    ids = txids if txids is not None else [txid_for(n, i) for i in range(txs)]
    return new_block(n, prev_hash or n.to_bytes(32, "big"), [envelope(t, payload_size) for t in ids])
