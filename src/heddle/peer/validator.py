"""Block verification and transaction validation on the committing peer.

Signature work (creator, endorsements) for a block's transactions runs in parallel on a
thread pool (``cryptography`` releases the GIL); checks that depend on order (duplicate
txids) run afterwards, in block order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.peer import transaction_pb2
from google.protobuf.message import DecodeError

from heddle.crypto import SignatureError
from heddle.policy import PolicyError, SignedData
from heddle.protocol import (
    EndorsedAction,
    ProtocolError,
    block_data_hash,
    block_header_hash,
    block_signatures,
    compute_txid,
    endorsement_message,
    parse_endorser_transaction,
    parse_envelope,
)

log = logging.getLogger(__name__)
Code = transaction_pb2.TxValidationCode
BLOCK_VALIDATION = "/Channel/Orderer/BlockValidation"


class BlockVerificationError(Exception):
    """A block that must not be committed: bad hash chain, data hash or orderer signatures."""


def verify_block(block: common_pb2.Block, previous_hash: bytes | None, config) -> None:
    """Check a block's data hash, its link to the previous block and the orderer signatures."""
    n = block.header.number
    if block_data_hash(block.data) != block.header.data_hash:
        raise BlockVerificationError(f"block {n}: data hash does not match the block's data")
    if previous_hash is not None and block.header.previous_hash != previous_hash:
        raise BlockVerificationError(
            f"block {n}: previous hash {block.header.previous_hash.hex()[:16]}... does not match "
            f"the hash of block {n - 1} ({previous_hash.hex()[:16]}...)"
        )
    signed = [SignedData(msg, creator, sig) for msg, creator, sig in block_signatures(block)]
    if not signed:
        raise BlockVerificationError(f"block {n}: carries no orderer signature")
    try:
        config.policies.evaluate(BLOCK_VALIDATION, signed)
    except PolicyError as exc:
        raise BlockVerificationError(
            f"block {n}: orderer signatures do not satisfy {BLOCK_VALIDATION}: {exc}"
        ) from exc


@dataclass
class TxResult:
    code: int
    tx_id: str = ""
    header_type: int = -1
    actions: list[EndorsedAction] = field(default_factory=list)
    config_envelope: configtx_pb2.ConfigEnvelope | None = None
    reason: str = ""


def _invalid(result: TxResult, code: int, reason: str) -> TxResult:
    result.code, result.reason = code, reason
    return result


def _check_tx(raw: bytes, channel_id: str, config) -> TxResult:
    """Checks of one transaction that need nothing but the tx itself and the channel config."""
    if not raw:
        return TxResult(Code.NIL_ENVELOPE, reason="empty envelope")
    try:
        parsed = parse_envelope(raw)
    except ProtocolError as exc:
        return TxResult(Code.BAD_PAYLOAD, reason=str(exc))
    chdr = parsed.channel_header
    result = TxResult(Code.VALID, chdr.tx_id, chdr.type)
    if chdr.channel_id != channel_id:
        reason = f"transaction is for channel {chdr.channel_id!r}"
        return _invalid(result, Code.TARGET_CHAIN_NOT_FOUND, reason)
    if chdr.type not in (common_pb2.ENDORSER_TRANSACTION, common_pb2.CONFIG):
        return _invalid(result, Code.UNKNOWN_TX_TYPE, f"header type {chdr.type} is not committed by peers")
    if not parsed.signature_header.nonce or not parsed.creator:
        return _invalid(result, Code.BAD_COMMON_HEADER, "signature header lacks nonce or creator")
    try:
        creator = config.msp_manager.deserialize_identity(parsed.creator)
        creator.verify(parsed.envelope.payload, parsed.envelope.signature)
    except (ValueError, SignatureError) as exc:
        return _invalid(result, Code.BAD_CREATOR_SIGNATURE, f"creator: {exc}")
    if chdr.type == common_pb2.CONFIG:
        env = configtx_pb2.ConfigEnvelope()
        try:
            env.ParseFromString(parsed.payload.data)
        except DecodeError as exc:
            return _invalid(result, Code.INVALID_CONFIG_TRANSACTION, f"malformed ConfigEnvelope: {exc}")
        result.config_envelope = env
        return result
    if chdr.tx_id != compute_txid(parsed.signature_header.nonce, parsed.creator):
        return _invalid(result, Code.BAD_PROPOSAL_TXID, "txid is not hex(sha256(nonce || creator))")
    try:
        result.actions = parse_endorser_transaction(parsed.payload.data)
    except ProtocolError as exc:
        code = Code.NIL_TXACTION if "no actions" in str(exc) else Code.BAD_PAYLOAD
        result.code, result.reason = code, str(exc)
        return result
    for action in result.actions:
        for e in action.endorsements:
            try:
                endorser = config.msp_manager.deserialize_identity(e.endorser)
                message = endorsement_message(action.proposal_response_payload, e.endorser)
                endorser.verify(message, e.signature)
            except (ValueError, SignatureError) as exc:
                result.code = Code.ENDORSEMENT_POLICY_FAILURE
                result.reason = f"endorsement by an invalid identity or with a bad signature: {exc}"
                return result
    return result


class BlockValidator:
    """Validates a block's transactions and produces its TRANSACTIONS_FILTER."""

    def __init__(self, channel_id: str, pool: Executor | None = None):
        self.channel_id = channel_id
        self.pool = pool

    def validate(
        self, block: common_pb2.Block, config, txid_committed: Callable[[str], bool]
    ) -> list[TxResult]:
        data = list(block.data.data)
        if self.pool is not None and len(data) > 1:
            results = list(self.pool.map(lambda raw: _check_tx(raw, self.channel_id, config), data))
        else:
            results = [_check_tx(raw, self.channel_id, config) for raw in data]
        seen: set[str] = set()
        for i, r in enumerate(results):
            if r.code == Code.VALID and r.config_envelope is not None and len(data) != 1:
                reason = "a config transaction must be alone in its block"
                _invalid(r, Code.INVALID_CONFIG_TRANSACTION, reason)
            if r.code == Code.VALID and r.tx_id and (r.tx_id in seen or txid_committed(r.tx_id)):
                _invalid(r, Code.DUPLICATE_TXID, f"txid {r.tx_id} was already used on this channel")
            if r.tx_id:
                seen.add(r.tx_id)
            if r.code != Code.VALID:
                log.info(
                    "block %d tx %d (%s) invalid: %s: %s",
                    block.header.number,
                    i,
                    r.tx_id,
                    Code.Name(r.code),
                    r.reason,
                )
        return results


def filter_bytes(results: list[TxResult]) -> bytes:
    return bytes(r.code for r in results)


__all__ = [
    "BlockValidator",
    "BlockVerificationError",
    "TxResult",
    "block_header_hash",
    "filter_bytes",
    "verify_block",
]
