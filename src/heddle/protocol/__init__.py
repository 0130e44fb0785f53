"""Thin helpers over fabric_protos: txids, envelopes, block hashing.

This package is the one place heddle computes a txid, a block's data hash or header
hash, or the bytes an orderer signs over a block.
"""

from heddle.protocol.blocks import (
    TRANSACTIONS_FILTER_INDEX,
    block_data_hash,
    block_header_bytes,
    block_header_hash,
    block_signature_message,
    block_signatures,
    get_metadata,
    last_config_index,
    new_block,
    sign_block,
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
    payload_bytes,
    sign_envelope,
)
from heddle.protocol.proposals import (
    EndorsementMismatch,
    ParsedProposal,
    build_response,
    create_proposal,
    create_signed_transaction,
    endorsement_message,
    error_response,
    parse_signed_proposal,
    proposal_hash,
    sign_proposal,
)
from heddle.protocol.transactions import (
    EndorsedAction,
    NsRwSet,
    parse_endorser_transaction,
    parse_rwset,
)

__all__ = [
    "EndorsementMismatch",
    "create_signed_transaction",
    "TRANSACTIONS_FILTER_INDEX",
    "EndorsedAction",
    "NsRwSet",
    "ParsedProposal",
    "build_response",
    "create_proposal",
    "endorsement_message",
    "error_response",
    "parse_endorser_transaction",
    "parse_rwset",
    "parse_signed_proposal",
    "proposal_hash",
    "sign_proposal",
    "ParsedEnvelope",
    "ProtocolError",
    "block_data_hash",
    "block_header_bytes",
    "block_header_hash",
    "block_signature_message",
    "block_signatures",
    "compute_txid",
    "get_metadata",
    "last_config_index",
    "make_channel_header",
    "make_signature_header",
    "new_block",
    "new_nonce",
    "parse_envelope",
    "payload_bytes",
    "sign_block",
    "sign_envelope",
    "transactions_filter",
]
