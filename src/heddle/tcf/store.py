"""Durable TCF state: records (workers, work orders, receipts) and the work queue.

``Records`` is the small storage interface the registry rules need: get, put and an
ordered scan of JSON documents by kind, inside a transaction (whose reads see its own
puts), plus ``enqueue`` for a submitted work order. ``SqliteStore`` implements it over
one SQLite file in WAL mode, shared by the listener and the worker processes of one
installation (as Avalon's listener and enclave manager share one KV store); a chaincode
implements it over its world state and turns ``enqueue`` into a workOrderSubmitted event.

The queue survives restarts: an entry is claimed with a lease; a worker host that
restarts gives back what it had claimed, and an expired lease is claimable again.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

DB_FILE = "tcf.sqlite"


class Records(Protocol):
    def get(self, kind: str, key: str) -> dict[str, Any] | None: ...

    def put(self, kind: str, key: str, doc: dict[str, Any]) -> None: ...

    def scan(self, kind: str, after: str = "") -> Iterator[tuple[str, dict[str, Any]]]: ...

    def enqueue(self, work_order_id: str, worker_id: str) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL, key TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    work_order_id TEXT NOT NULL UNIQUE,
    worker_id TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    lease_until REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS queue_state ON queue (state, worker_id, seq);
"""


class SqliteStore:
    """Records and the work queue in ``directory/tcf.sqlite``; safe across processes."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / DB_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # an acknowledged submit survives power loss
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE); nested calls join the outer one."""
        conn = self._conn()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- Records --------------------------------------------------------------------

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT doc FROM records WHERE kind=? AND key=?", (kind, key)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        self._conn().execute(
            "INSERT INTO records (kind, key, doc) VALUES (?, ?, ?) "
            "ON CONFLICT (kind, key) DO UPDATE SET doc=excluded.doc",
            (kind, key, json.dumps(doc, sort_keys=True)),
        )

    def scan(self, kind: str, after: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
        rows = (
            self._conn()
            .execute("SELECT key, doc FROM records WHERE kind=? AND key>? ORDER BY key", (kind, after))
            .fetchall()
        )
        for key, doc in rows:
            yield key, json.loads(doc)

    def enqueue(self, work_order_id: str, worker_id: str) -> None:
        self._conn().execute(
            "INSERT INTO queue (work_order_id, worker_id) VALUES (?, ?)", (work_order_id, worker_id)
        )

    # --- the queue (worker hosts) -----------------------------------------------------

    def claim(self, worker_id: str, lease_seconds: float = 300.0) -> str | None:
        """Take the oldest claimable work order for ``worker_id``; None if there is none."""
        now = time.time()
        with self.transaction() as db:
            row = db.execute(
                "SELECT seq, work_order_id FROM queue WHERE worker_id=? AND "
                "(state='pending' OR (state='processing' AND lease_until<?)) ORDER BY seq LIMIT 1",
                (worker_id, now),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE queue SET state='processing', lease_until=?, attempts=attempts+1 WHERE seq=?",
                (now + lease_seconds, row[0]),
            )
            return str(row[1])

    def finish(self, work_order_id: str) -> None:
        self._conn().execute("UPDATE queue SET state='done' WHERE work_order_id=?", (work_order_id,))

    def release_claims(self, worker_id: str) -> int:
        """Give back everything ``worker_id`` had claimed (a restarted worker host calls this)."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE queue SET state='pending', lease_until=0 WHERE worker_id=? AND state='processing'",
                (worker_id,),
            )
            return cur.rowcount

    def queue_state(self, work_order_id: str) -> str | None:
        row = (
            self._conn().execute("SELECT state FROM queue WHERE work_order_id=?", (work_order_id,)).fetchone()
        )
        return str(row[0]) if row else None


__all__ = ["DB_FILE", "Records", "SqliteStore"]
