"""A peer's ledger for one channel: block store, world state and history, kept consistent.

The block is appended (and fsynced) before the state batch commits; on open, blocks past
the state's savepoint are replayed into state, so a crash between the two loses nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fabric_protos.common import common_pb2
from fabric_protos.peer import transaction_pb2

from heddle.ledger.blockstore import BlockStore
from heddle.ledger.history import HistoryEntry
from heddle.ledger.statedb import Height, StateDB, UpdateBatch, open_state_db
from heddle.protocol import ProtocolError, parse_endorser_transaction, parse_envelope, transactions_filter

log = logging.getLogger(__name__)
VALID = transaction_pb2.VALID


def block_updates(
    block: common_pb2.Block, codes: bytes | list[int]
) -> tuple[UpdateBatch, list[HistoryEntry]]:
    """The world-state writes and history entries of a block's valid endorser transactions."""
    batch = UpdateBatch()
    history: list[HistoryEntry] = []
    number = block.header.number
    for tx_num, raw in enumerate(block.data.data):
        if codes[tx_num] != VALID:
            continue
        try:
            parsed = parse_envelope(raw)
            if parsed.header_type != common_pb2.ENDORSER_TRANSACTION:
                continue
            actions = parse_endorser_transaction(parsed.payload.data)
        except ProtocolError:  # a VALID transaction always parses; be defensive on replay
            log.error("block %d tx %d is marked VALID but does not parse", number, tx_num)
            continue
        version = Height(number, tx_num)
        for action in actions:
            for ns in action.rwsets:
                for w in ns.kv.writes:
                    if w.is_delete:
                        batch.delete(ns.namespace, w.key, version)
                    else:
                        batch.put(ns.namespace, w.key, w.value, version)
                    history.append(HistoryEntry(ns.namespace, w.key, number, tx_num))
                for mw in ns.kv.metadata_writes:
                    batch.put_metadata(ns.namespace, mw.key, _encode_metadata(mw.entries), version)
    return batch, history


def _encode_metadata(entries) -> bytes:
    """Key metadata as Fabric stores it: a serialized map of name -> value."""
    from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2

    return kv_rwset_pb2.KVMetadataWrite(entries=list(entries)).SerializeToString()


class KvLedger:
    """One channel's ledger on a peer."""

    def __init__(self, directory: str | Path, state_backend: str | None = None):
        directory = Path(directory)
        self.directory = directory
        self.blocks = BlockStore(directory / "blocks", index_txids=True)
        self.state: StateDB = open_state_db(directory / "state", state_backend)
        self._replay()

    def _replay(self) -> None:
        sp = self.state.savepoint()
        next_block = 0 if sp is None else sp.block_num + 1
        for number in range(next_block, self.blocks.height):
            block = self.blocks.get_by_number(number)
            codes = transactions_filter(block)
            batch, history = block_updates(block, codes)
            self.state.apply_batch(batch, Height(number, len(block.data.data)), history)
            log.warning("replayed block %d into world state after restart", number)

    @property
    def height(self) -> int:
        return self.blocks.height

    def commit(self, block: common_pb2.Block, batch: UpdateBatch, history: list[HistoryEntry]) -> None:
        """Append the block (with its TRANSACTIONS_FILTER set), then commit its state batch."""
        self.blocks.append(block)
        self.state.apply_batch(batch, Height(block.header.number, len(block.data.data)), history)

    def close(self) -> None:
        self.blocks.close()
        self.state.close()
