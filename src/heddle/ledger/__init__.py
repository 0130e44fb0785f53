"""The ledger's storage: block store, world state and history index."""

from heddle.ledger.blockstore import (
    BlockNotFound,
    BlockStore,
    BlockStoreCorruption,
    BlockStoreError,
)
from heddle.ledger.history import HistoryDB, HistoryEntry
from heddle.ledger.statedb import (
    Height,
    RangePage,
    StateDB,
    UpdateBatch,
    VersionedValue,
    open_state_db,
)

__all__ = [
    "BlockNotFound",
    "BlockStore",
    "BlockStoreCorruption",
    "BlockStoreError",
    "Height",
    "HistoryDB",
    "HistoryEntry",
    "RangePage",
    "StateDB",
    "UpdateBatch",
    "VersionedValue",
    "open_state_db",
]
