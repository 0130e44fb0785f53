"""LMDB state database (optional; needs the ``lmdb`` package).

One LMDB environment (a directory) with three sub-databases: ``state``
(``ns \\x00 key`` -> ``u64 block | u64 tx | u32 len(metadata) | metadata | value``),
``history`` (``ns \\x00 key \\x00 u64 block u64 tx`` -> empty) and ``meta`` (the
savepoint). One write transaction per block. LMDB limits a key to 511 bytes, so
``len(ns) + len(key)`` (UTF-8) must stay under about 490 bytes here.

Durability: by default one fsync of the data per block commit, without the metadata
fsync (MDB_NOMETASYNC): a power loss may undo the last block but never corrupts the
database, the same promise as SQLite's WAL with synchronous=NORMAL; the peer replays
lost blocks from the block store. ``sync=False`` (MDB_NOSYNC, no fsync at all) is for
benchmarks only: LMDB documents that a system crash can then corrupt the database.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterable, Iterator

import lmdb

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

_VERSION = struct.Struct(">QQI")
_HEIGHT = struct.Struct(">QQ")
_SAVEPOINT = b"savepoint"
_RANGE_CHUNK = 256
_MAP_SIZE = 1 << 40  # address space only; the file grows as data is written


def _prefix(ns: str) -> bytes:
    raw = utf8(ns)
    if b"\x00" in raw:
        raise ValueError(f"namespace {ns!r} contains a NUL byte")
    return raw + b"\x00"


def _decode(raw: bytes) -> VersionedValue:
    block_num, tx_num, mlen = _VERSION.unpack_from(raw)
    start = _VERSION.size
    return VersionedValue(
        bytes(raw[start + mlen :]), Height(block_num, tx_num), bytes(raw[start : start + mlen])
    )


def _encode(value: bytes, version: Height, metadata: bytes) -> bytes:
    return _VERSION.pack(version.block_num, version.tx_num, len(metadata)) + metadata + value


class LmdbStateDB:
    """StateDB and HistoryDB over an LMDB environment (``path`` is a directory)."""

    def __init__(self, path: str | os.PathLike[str], sync: bool = True) -> None:
        os.makedirs(path, exist_ok=True)
        self._env = lmdb.open(
            os.fspath(path), map_size=_MAP_SIZE, max_dbs=3, sync=sync, metasync=False,
            max_readers=512,
        )
        self._state = self._env.open_db(b"state")
        self._history = self._env.open_db(b"history")
        self._meta = self._env.open_db(b"meta")
        self._max_key = self._env.max_key_size()
        self._write_lock = threading.Lock()
        self._closed = False

    def _key(self, ns: str, key: str, extra: int = 0) -> bytes:
        k = _prefix(ns) + utf8(key)
        if len(k) + extra > self._max_key:
            raise ValueError(
                f"key too long for LMDB: {len(k) + extra} bytes (limit {self._max_key})"
            )
        return k

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("state database is closed")

    def get(self, ns: str, key: str) -> VersionedValue | None:
        self._check_open()
        with self._env.begin(db=self._state, buffers=True) as txn:
            raw = txn.get(self._key(ns, key))
            return None if raw is None else _decode(raw)

    def has_metadata(self, ns: str) -> bool:
        """LMDB keeps no index of keys with metadata, so it cannot rule any out."""
        return True

    def get_many(self, ns: str, keys: Iterable[str]) -> dict[str, VersionedValue | None]:
        self._check_open()
        result: dict[str, VersionedValue | None] = {}
        with self._env.begin(db=self._state, buffers=True) as txn:
            for key in keys:
                raw = txn.get(self._key(ns, key))
                result[key] = None if raw is None else _decode(raw)
        return result

    def range(
        self, ns: str, start_key: str = "", end_key: str = "", limit: int | None = None
    ) -> Iterator[tuple[str, VersionedValue]]:
        self._check_open()
        prefix = _prefix(ns)
        lower = prefix + utf8(start_key)
        upper = prefix + utf8(end_key) if end_key else None
        skip_first = False
        remaining = limit
        while remaining is None or remaining > 0:
            n = _RANGE_CHUNK if remaining is None else min(_RANGE_CHUNK, remaining)
            chunk: list[tuple[bytes, VersionedValue]] = []
            with self._env.begin(db=self._state) as txn:
                cur = txn.cursor()
                ok = cur.set_range(lower)
                if ok and skip_first and cur.key() == lower:
                    ok = cur.next()
                while ok and len(chunk) < n:
                    k = cur.key()
                    if not k.startswith(prefix) or (upper is not None and k >= upper):
                        break
                    chunk.append((k, _decode(cur.value())))
                    ok = cur.next()
            for k, vv in chunk:
                yield k[len(prefix) :].decode("utf-8"), vv
            if len(chunk) < n:
                return
            lower, skip_first = chunk[-1][0], True
            if remaining is not None:
                remaining -= len(chunk)

    def range_page(
        self, ns: str, start_key: str, end_key: str, page_size: int, bookmark: str = ""
    ) -> RangePage:
        return range_page_from(self, ns, start_key, end_key, page_size, bookmark)

    def savepoint(self) -> Height | None:
        self._check_open()
        with self._env.begin(db=self._meta) as txn:
            raw = txn.get(_SAVEPOINT)
        return None if raw is None else Height(*_HEIGHT.unpack(raw))

    def history(self, ns: str, key: str, newest_first: bool = True) -> Iterator[Height]:
        self._check_open()
        prefix = self._key(ns, key, extra=17) + b"\x00"
        want = len(prefix) + _HEIGHT.size  # longer keys belong to keys extending this one
        out = []
        with self._env.begin(db=self._history) as txn:
            cur = txn.cursor()
            ok = cur.set_range(prefix)
            while ok:
                k = cur.key()
                if not k.startswith(prefix):
                    break
                if len(k) == want:
                    out.append(Height(*_HEIGHT.unpack_from(k, len(prefix))))
                ok = cur.next()
        if newest_first:
            out.reverse()
        return iter(out)

    def apply_batch(
        self, batch: UpdateBatch, savepoint: Height, history: Iterable[HistoryEntry] = ()
    ) -> None:
        with self._write_lock:
            self._check_open()
            writes = [(w, self._key(w.namespace, w.key)) for w in batch.writes()]
            hist = [
                self._key(h.namespace, h.key, extra=17)
                + b"\x00"
                + _HEIGHT.pack(h.block_num, h.tx_num)
                for h in history
            ]
            with self._env.begin(write=True) as txn:
                raw = txn.get(_SAVEPOINT, db=self._meta)
                check_savepoint(None if raw is None else Height(*_HEIGHT.unpack(raw)), savepoint)
                for w, k in writes:
                    if w.kind == "put":
                        txn.put(k, _encode(w.value, w.version, w.metadata), db=self._state)
                    elif w.kind == "delete":
                        txn.delete(k, db=self._state)
                    else:
                        old = txn.get(k, db=self._state)
                        if old is not None:
                            value = _decode(old).value
                            txn.put(k, _encode(value, w.version, w.metadata), db=self._state)
                for hk in hist:
                    txn.put(hk, b"", db=self._history)
                txn.put(_SAVEPOINT, _HEIGHT.pack(*savepoint), db=self._meta)

    def close(self) -> None:
        with self._write_lock:
            if not self._closed:
                self._closed = True
                self._env.close()

    def __enter__(self) -> LmdbStateDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
