"""SQLite state database: one file holding state, history and the savepoint.

WAL journal with ``synchronous=NORMAL``: each block is one transaction and there is
no fsync per transaction. A process crash loses nothing committed; a power loss may
lose the last few blocks' state, which the peer replays from the block store starting
after ``savepoint()`` (the block store fsyncs every block).

Readers on other threads use their own connections and see each block's commit
atomically (WAL snapshot per statement); the single writer has its own connection.
Keys are stored as UTF-8 BLOBs so SQLite's memcmp ordering equals Fabric's byte order.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator

from heddle.ledger.history import HistoryEntry
from heddle.ledger.statedb.base import (
    Height,
    RangePage,
    UpdateBatch,
    VersionedValue,
    check_savepoint,
    range_page_from,
    utf8,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    ns TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,
    block_num INTEGER NOT NULL, tx_num INTEGER NOT NULL, metadata BLOB NOT NULL,
    PRIMARY KEY (ns, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS state_with_metadata ON state(ns) WHERE length(metadata) > 0;
CREATE TABLE IF NOT EXISTS history (
    ns TEXT NOT NULL, key BLOB NOT NULL, block_num INTEGER NOT NULL, tx_num INTEGER NOT NULL,
    PRIMARY KEY (ns, key, block_num, tx_num)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS savepoint (
    id INTEGER PRIMARY KEY CHECK (id = 0), block_num INTEGER NOT NULL, tx_num INTEGER NOT NULL);
"""
_RANGE_CHUNK = 256  # rows fetched per statement while iterating a range
_GET_MANY_CHUNK = 500  # keys per IN (...) lookup


class SqliteStateDB:
    """StateDB and HistoryDB over one SQLite file (``path`` is the file)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        parent = os.path.dirname(self._path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        self._write_lock = threading.Lock()
        self._conns_lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._closed = False
        self._writer = self._connect()
        self._writer.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("state database is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
        return conn

    # ---- reads ----------------------------------------------------------------------

    def get(self, ns: str, key: str) -> VersionedValue | None:
        row = (
            self._reader()
            .execute(
                "SELECT value, block_num, tx_num, metadata FROM state WHERE ns=? AND key=?",
                (ns, utf8(key)),
            )
            .fetchone()
        )
        if row is None:
            return None
        return VersionedValue(row[0], Height(row[1], row[2]), row[3])

    def has_metadata(self, ns: str) -> bool:
        """Whether any key of ``ns`` has non-empty metadata (a partial index answers it)."""
        row = (
            self._reader()
            .execute(
                "SELECT 1 FROM state INDEXED BY state_with_metadata "
                "WHERE ns=? AND length(metadata) > 0 LIMIT 1",
                (ns,),
            )
            .fetchone()
        )
        return row is not None

    def get_many(self, ns: str, keys: Iterable[str]) -> dict[str, VersionedValue | None]:
        """Values of many keys in one namespace; absent keys map to None."""
        wanted = list(dict.fromkeys(keys))
        result: dict[str, VersionedValue | None] = dict.fromkeys(wanted)
        conn = self._reader()
        for i in range(0, len(wanted), _GET_MANY_CHUNK):
            chunk = [utf8(k) for k in wanted[i : i + _GET_MANY_CHUNK]]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                "SELECT key, value, block_num, tx_num, metadata FROM state "
                f"WHERE ns=? AND key IN ({marks})",
                (ns, *chunk),
            )
            for key, value, block_num, tx_num, metadata in rows:
                result[key.decode("utf-8")] = VersionedValue(
                    value, Height(block_num, tx_num), metadata
                )
        return result

    def range(
        self, ns: str, start_key: str = "", end_key: str = "", limit: int | None = None
    ) -> Iterator[tuple[str, VersionedValue]]:
        """Keys in [start_key, end_key) in byte order; end_key "" means to the end of ns."""
        conn = self._reader()
        lower, op = utf8(start_key), ">="
        upper = utf8(end_key) if end_key else None
        remaining = limit
        while remaining is None or remaining > 0:
            n = _RANGE_CHUNK if remaining is None else min(_RANGE_CHUNK, remaining)
            sql = (
                "SELECT key, value, block_num, tx_num, metadata FROM state "
                f"WHERE ns=? AND key {op} ?"
            )
            args: tuple = (ns, lower)
            if upper is not None:
                sql += " AND key < ?"
                args += (upper,)
            rows = conn.execute(sql + " ORDER BY key LIMIT ?", (*args, n)).fetchall()
            for key, value, block_num, tx_num, metadata in rows:
                yield key.decode("utf-8"), VersionedValue(
                    value, Height(block_num, tx_num), metadata
                )
            if len(rows) < n:
                return
            lower, op = rows[-1][0], ">"
            if remaining is not None:
                remaining -= len(rows)

    def range_page(
        self, ns: str, start_key: str, end_key: str, page_size: int, bookmark: str = ""
    ) -> RangePage:
        return range_page_from(self, ns, start_key, end_key, page_size, bookmark)

    def savepoint(self) -> Height | None:
        row = (
            self._reader()
            .execute("SELECT block_num, tx_num FROM savepoint WHERE id=0")
            .fetchone()
        )
        return None if row is None else Height(row[0], row[1])

    def history(self, ns: str, key: str, newest_first: bool = True) -> Iterator[Height]:
        """Heights of the transactions that wrote (ns, key); newest first by default."""
        order = "DESC" if newest_first else "ASC"
        rows = (
            self._reader()
            .execute(
                "SELECT block_num, tx_num FROM history WHERE ns=? AND key=? "
                f"ORDER BY block_num {order}, tx_num {order}",
                (ns, utf8(key)),
            )
            .fetchall()
        )
        return (Height(b, t) for b, t in rows)

    # ---- the block commit -----------------------------------------------------------

    def apply_batch(
        self, batch: UpdateBatch, savepoint: Height, history: Iterable[HistoryEntry] = ()
    ) -> None:
        """Apply a block's updates, history entries and savepoint in one transaction."""
        with self._write_lock:
            if self._closed:
                raise RuntimeError("state database is closed")
            row = self._writer.execute(
                "SELECT block_num, tx_num FROM savepoint WHERE id=0"
            ).fetchone()
            check_savepoint(None if row is None else Height(*row), savepoint)
            puts, deletes, metas = [], [], []
            for w in batch.writes():
                k = utf8(w.key)
                if w.kind == "put":
                    v = w.version
                    puts.append((w.namespace, k, w.value, v.block_num, v.tx_num, w.metadata))
                elif w.kind == "delete":
                    deletes.append((w.namespace, k))
                else:
                    v = w.version
                    metas.append((w.metadata, v.block_num, v.tx_num, w.namespace, k))
            hist = [(h.namespace, utf8(h.key), h.block_num, h.tx_num) for h in history]
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?, ?)", puts)
                conn.executemany("DELETE FROM state WHERE ns=? AND key=?", deletes)
                conn.executemany(
                    "UPDATE state SET metadata=?, block_num=?, tx_num=? WHERE ns=? AND key=?",
                    metas,
                )
                conn.executemany("INSERT OR IGNORE INTO history VALUES (?, ?, ?, ?)", hist)
                conn.execute(
                    "INSERT OR REPLACE INTO savepoint VALUES (0, ?, ?)",
                    (savepoint.block_num, savepoint.tx_num),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._write_lock, self._conns_lock:
            if self._closed:
                return
            self._closed = True
            for conn in self._conns:
                conn.close()
            self._conns.clear()

    def __enter__(self) -> SqliteStateDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
