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
from heddle.ledger.mvcc import block_updates_for
from heddle.ledger.statedb import Height, StateDB, UpdateBatch, open_state_db
from heddle.protocol import (
    NsRwSet,
    ProtocolError,
    parse_endorser_transaction,
    parse_envelope,
    transactions_filter,
)

log = logging.getLogger(__name__)
VALID = transaction_pb2.VALID


def block_updates(
    block: common_pb2.Block, codes: bytes | list[int], state: StateDB | None = None
) -> tuple[UpdateBatch, list[HistoryEntry]]:
    """The world-state updates and history entries of a block's VALID endorser transactions.

    Used to replay a stored block (its TRANSACTIONS_FILTER gives ``codes``) and gives exactly
    the batch the commit path built for it: same write rules (``heddle.ledger.mvcc``), and
    ``state`` is the committed state as of the previous block, as it was at commit time.
    """
    return block_updates_for(state, block.header.number, valid_rwsets(block, codes))


def valid_rwsets(block: common_pb2.Block, codes: bytes | list[int]) -> list[tuple[int, list[NsRwSet]]]:
    """(tx_num, read/write sets of all its actions) for each VALID endorser transaction."""
    out = []
    for tx_num, raw in enumerate(block.data.data):
        if codes[tx_num] != VALID:
            continue
        try:
            parsed = parse_envelope(raw)
            if parsed.header_type != common_pb2.ENDORSER_TRANSACTION:
                continue
            actions = parse_endorser_transaction(parsed.payload.data)
        except ProtocolError:  # a VALID transaction always parses; be defensive on replay
            log.error("block %d tx %d is marked VALID but does not parse", block.header.number, tx_num)
            continue
        out.append((tx_num, [ns for action in actions for ns in action.rwsets]))
    return out


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
            batch, history = block_updates(block, codes, self.state)
            self.state.apply_batch(batch, Height(number, len(block.data.data)), history)
            log.warning("replayed block %d into world state after restart", number)

    @property
    def height(self) -> int:
        return self.blocks.height

    def commit(
        self,
        block: common_pb2.Block,
        batch: UpdateBatch,
        history: list[HistoryEntry],
        txids: list[tuple[str, int]] | None = None,
    ) -> None:
        """Append the block (with its TRANSACTIONS_FILTER set), then commit its state batch.
        ``txids`` as for ``BlockStore.append``."""
        self.blocks.append(block, txids)
        self.state.apply_batch(batch, Height(block.header.number, len(block.data.data)), history)

    def close(self) -> None:
        self.blocks.close()
        self.state.close()
