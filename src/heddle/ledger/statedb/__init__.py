"""World state: a versioned key-value store committed atomically per block.

``open_state_db(path)`` opens the default embedded backend (SQLite, chosen by
measurement: see docs/performance.md, "State database backend"); ``backend="lmdb"``
opens the LMDB one when the ``lmdb`` package is installed.
"""

from __future__ import annotations

import os

from heddle.ledger.statedb.base import (
    Height,
    RangePage,
    StateDB,
    UpdateBatch,
    VersionedValue,
    Write,
)
from heddle.ledger.statedb.sqlite_backend import SqliteStateDB

DEFAULT_BACKEND = "sqlite"
BACKENDS = ("sqlite", "lmdb")


def open_state_db(path: str | os.PathLike[str], backend: str | None = None) -> StateDB:
    """Open (creating if needed) a state database; ``path`` is a file for sqlite and
    a directory for lmdb."""
    backend = backend or DEFAULT_BACKEND
    if backend == "sqlite":
        return SqliteStateDB(path)
    if backend == "lmdb":
        try:
            from heddle.ledger.statedb.lmdb_backend import LmdbStateDB
        except ImportError as exc:
            raise ValueError("state db backend 'lmdb' needs the lmdb package") from exc
        return LmdbStateDB(path)
    raise ValueError(f"unknown state db backend {backend!r}; choose one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Height",
    "RangePage",
    "SqliteStateDB",
    "StateDB",
    "UpdateBatch",
    "VersionedValue",
    "Write",
    "open_state_db",
]
