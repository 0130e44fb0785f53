"""Thin helpers over fabric_protos: txids, envelopes, block hashing.

This package is the one place heddle computes a txid, a block's data hash or header
hash, or the bytes an orderer signs over a block.
"""

from heddle.protocol.blocks import (
    block_data_hash,
    block_header_bytes,
    block_header_hash,
    block_signature_message,
    get_metadata,
    last_config_index,
    new_block,
    transactions_filter,
)
from heddle.protocol.envelopes import (
    ParsedEnvelope,
    ProtocolError,
    compute_txid,
    make_channel_header,
    make_signature_header,
    new_nonce,
    parse_envelope,
    sign_envelope,
)

__all__ = [
    "ParsedEnvelope",
    "ProtocolError",
    "block_data_hash",
    "block_header_bytes",
    "block_header_hash",
    "block_signature_message",
    "compute_txid",
    "get_metadata",
    "last_config_index",
    "make_channel_header",
    "make_signature_header",
    "new_block",
    "new_nonce",
    "parse_envelope",
    "sign_envelope",
    "transactions_filter",
]
