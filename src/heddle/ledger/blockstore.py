"""Append-only block files with an index by number, header hash and txid.

Layout of a block store directory::

    blockfile_000000, blockfile_000001, ...   segments, rolled at ~64 MiB
    index.sqlite                              number/hash/txid index (rebuildable)

A segment is a sequence of records ``u32 length | u32 crc32(length || body) | body``
(big endian), where ``body`` is a serialized ``common_pb2.Block``; the CRC covers the
length too, so a zero-filled tail (which file systems can leave after a crash) never
reads as a valid empty record. ``append`` writes one
record, fsyncs the segment once, then commits the index: the block files are the
truth and the index is a cache of them that ``open`` checks and repairs.

Recovery on open (after kill -9 or power loss):

* index entries whose record is missing or does not verify are dropped;
* the tail after the last indexed block is scanned: complete, CRC-valid records
  are indexed (a crash between the file fsync and the index commit), and the
  first torn record (short length, short body, CRC mismatch) is truncated away
  together with everything after it. Only the last segment may have a torn tail;
  a bad record in an earlier segment is corruption and raises.

The txid index keeps the FIRST occurrence of a txid, as Fabric's
GetTransactionByID does: a later duplicate (marked DUPLICATE_TXID by the
validator) stays in its block but is not what ``get_by_txid`` returns.

Threading: one writer (``append``) and any number of concurrent readers. Reads use
``os.pread`` on read-only descriptors and see a block only after it is durable
and indexed.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from fabric_protos.common import common_pb2
from google.protobuf.message import DecodeError

from heddle.protocol import ProtocolError, block_header_hash, parse_envelope

log = logging.getLogger(__name__)

SEGMENT_PREFIX = "blockfile_"
INDEX_FILE = "index.sqlite"
DEFAULT_MAX_SEGMENT_BYTES = 64 * 1024 * 1024
_HEADER = struct.Struct(">II")  # body length, crc32(length || body)
_LENGTH = struct.Struct(">I")
_MAX_RECORD = 1 << 31  # no block is 2 GiB; a larger length is garbage


class BlockStoreError(Exception):
    """The block store cannot do what was asked (closed, corrupt, index disabled)."""


class BlockStoreCorruption(BlockStoreError):
    """Block files are damaged somewhere other than a torn tail of the last segment."""


class BlockNotFound(LookupError):
    """No block (or transaction) with that number, hash or txid."""


def _segment_name(index: int) -> str:
    return f"{SEGMENT_PREFIX}{index:06d}"


def _txids(block: common_pb2.Block) -> list[tuple[str, int]]:
    """(txid, tx_num) for each parsable data entry with a non-empty txid."""
    out = []
    for tx_num, raw in enumerate(block.data.data):
        try:
            txid = parse_envelope(raw).tx_id
        except ProtocolError:
            continue
        if txid:
            out.append((txid, tx_num))
    return out


def _crc(body: bytes) -> int:
    return zlib.crc32(body, zlib.crc32(_LENGTH.pack(len(body))))


def _encode_record(body: bytes) -> bytes:
    return _HEADER.pack(len(body), _crc(body)) + body


class _Record:
    __slots__ = ("body", "end")

    def __init__(self, body: bytes, end: int) -> None:
        self.body = body
        self.end = end


def _read_record(fd: int, offset: int, file_size: int) -> _Record | None:
    """The record at offset, or None if it is torn (incomplete or CRC mismatch)."""
    if offset + _HEADER.size > file_size:
        return None
    length, crc = _HEADER.unpack(os.pread(fd, _HEADER.size, offset))
    if length >= _MAX_RECORD or offset + _HEADER.size + length > file_size:
        return None
    body = os.pread(fd, length, offset + _HEADER.size)
    if len(body) != length or _crc(body) != crc:
        return None
    return _Record(body, offset + _HEADER.size + length)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlockStore:
    """Durable, append-only store of a channel's blocks."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        index_txids: bool = True,
        max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
    ) -> None:
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._index_txids = index_txids
        self._max_segment_bytes = max_segment_bytes
        self._write_lock = threading.Lock()  # one append at a time
        self._db_lock = threading.Lock()  # the index connection is shared
        self._height_cv = threading.Condition()
        self._read_fds: dict[int, int] = {}
        self._read_fds_lock = threading.Lock()
        self._closed = False
        self._broken: str | None = None  # set when appends must stop until a reopen
        # block number -> (segment, offset, length of body); the list is only appended
        # to after a block is durable and indexed, so len() is the visible height.
        self._locations: list[tuple[int, int, int]] = []
        self._db = sqlite3.connect(
            self._dir / INDEX_FILE, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # The index is rebuilt from the block files after a crash, so it needs no fsync.
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS blocks (
                num INTEGER PRIMARY KEY, hash BLOB NOT NULL, segment INTEGER NOT NULL,
                offset INTEGER NOT NULL, length INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS blocks_by_hash ON blocks(hash);
            CREATE TABLE IF NOT EXISTS txids (
                txid TEXT PRIMARY KEY, block_num INTEGER NOT NULL, tx_num INTEGER NOT NULL)
                WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS txids_by_block ON txids(block_num);
            CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            """
        )
        self._recover()
        self._segment, self._segment_size = self._open_tail_segment()
        self._write_fd = os.open(
            self._dir / _segment_name(self._segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644
        )

    # ---- recovery -------------------------------------------------------------------

    def _segments_on_disk(self) -> list[int]:
        found = []
        for p in self._dir.iterdir():
            suffix = p.name[len(SEGMENT_PREFIX) :]
            if p.name.startswith(SEGMENT_PREFIX) and suffix.isdigit():
                found.append(int(suffix))
        found.sort()
        if found != list(range(len(found))):
            raise BlockStoreCorruption(f"block files are not contiguous: {found}")
        return found

    def _verify_location(self, num: int, segment: int, offset: int, length: int) -> bool:
        path = self._dir / _segment_name(segment)
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            rec = _read_record(fd, offset, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        if rec is None or len(rec.body) != length:
            return False
        block = common_pb2.Block()
        try:
            block.ParseFromString(rec.body)
        except DecodeError:
            return False
        return block.header.number == num

    def _recover(self) -> None:
        segments = self._segments_on_disk()
        rows = self._db.execute(
            "SELECT num, segment, offset, length FROM blocks ORDER BY num"
        ).fetchall()
        if [r[0] for r in rows] != list(range(len(rows))):
            log.warning("block index in %s has gaps; rebuilding it", self._dir)
            self._truncate_index(0)
            rows = []
        # Drop index entries whose record does not verify (index ahead of the files).
        while rows and not self._verify_location(*rows[-1]):
            log.warning("index entry for block %d does not match the block files", rows[-1][0])
            rows.pop()
        self._truncate_index(len(rows))
        self._sync_txid_setting(len(rows))
        self._locations = [(seg, off, ln) for _, seg, off, ln in rows]

        # Scan forward from the end of the last indexed block, indexing what is intact.
        if rows:
            _, seg, off, ln = rows[-1]
            segment, offset = seg, off + _HEADER.size + ln
        else:
            segment, offset = 0, 0
        last_segment = segments[-1] if segments else 0
        while segment <= last_segment:
            path = self._dir / _segment_name(segment)
            if not path.exists():
                break
            fd = os.open(path, os.O_RDWR)
            try:
                size = os.fstat(fd).st_size
                while offset < size:
                    rec = _read_record(fd, offset, size)
                    if rec is None:
                        if segment != last_segment:
                            raise BlockStoreCorruption(
                                f"bad record in {path.name} at offset {offset} "
                                "(not the last block file)"
                            )
                        log.warning(
                            "truncating torn tail of %s at offset %d (%d bytes)",
                            path.name, offset, size - offset,
                        )
                        os.ftruncate(fd, offset)
                        os.fsync(fd)
                        break
                    block = common_pb2.Block()
                    try:
                        block.ParseFromString(rec.body)
                    except DecodeError as exc:
                        raise BlockStoreCorruption(
                            f"record in {path.name} at offset {offset} passes its CRC "
                            f"but is not a block: {exc}"
                        ) from exc
                    if block.header.number != len(self._locations):
                        raise BlockStoreCorruption(
                            f"{path.name} at offset {offset} holds block "
                            f"{block.header.number}, expected {len(self._locations)}"
                        )
                    log.info("re-indexing block %d found in %s", block.header.number, path.name)
                    self._index_block(block, segment, offset, len(rec.body))
                    self._locations.append((segment, offset, len(rec.body)))
                    offset = rec.end
            finally:
                os.close(fd)
            segment, offset = segment + 1, 0

    def _truncate_index(self, height: int) -> None:
        with self._db_lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM blocks WHERE num >= ?", (height,))
            self._db.execute("DELETE FROM txids WHERE block_num >= ?", (height,))
            self._db.execute("COMMIT")

    def _sync_txid_setting(self, height: int) -> None:
        """Rebuild or drop the txid index if index_txids changed since the last open."""
        row = self._db.execute("SELECT value FROM meta WHERE name='index_txids'").fetchone()
        previous = bool(row[0]) if row else None
        if previous == self._index_txids:
            return
        with self._db_lock:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM txids")
            self._db.execute(
                "INSERT OR REPLACE INTO meta(name, value) VALUES ('index_txids', ?)",
                (int(self._index_txids),),
            )
            self._db.execute("COMMIT")
        if self._index_txids and height:
            rows = self._db.execute("SELECT num, segment, offset, length FROM blocks ORDER BY num")
            locations = [(seg, off, ln) for _, seg, off, ln in rows.fetchall()]
            with self._db_lock:
                self._db.execute("BEGIN")
                for num, loc in enumerate(locations):
                    block = self._read_at(*loc)
                    self._db.executemany(
                        "INSERT OR IGNORE INTO txids(txid, block_num, tx_num) VALUES (?, ?, ?)",
                        [(txid, num, tx_num) for txid, tx_num in _txids(block)],
                    )
                self._db.execute("COMMIT")

    def _open_tail_segment(self) -> tuple[int, int]:
        segments = self._segments_on_disk()
        if not segments:
            path = self._dir / _segment_name(0)
            path.touch()
            _fsync_dir(self._dir)
            return 0, 0
        last = segments[-1]
        return last, (self._dir / _segment_name(last)).stat().st_size

    # ---- writing --------------------------------------------------------------------

    def _index_block(
        self,
        block: common_pb2.Block,
        segment: int,
        offset: int,
        length: int,
        txids: list[tuple[str, int]] | None = None,
    ) -> None:
        num = block.header.number
        with self._db_lock:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO blocks(num, hash, segment, offset, length) VALUES (?, ?, ?, ?, ?)",
                (num, block_header_hash(block.header), segment, offset, length),
            )
            if self._index_txids:
                # OR IGNORE keeps the first occurrence of a txid (Fabric's behaviour).
                self._db.executemany(
                    "INSERT OR IGNORE INTO txids(txid, block_num, tx_num) VALUES (?, ?, ?)",
                    [(txid, num, tx_num) for txid, tx_num in (_txids(block) if txids is None else txids)],
                )
            self._db.execute("COMMIT")

    def append(self, block: common_pb2.Block, txids: list[tuple[str, int]] | None = None) -> None:
        """Write the next block durably (one fsync) and index it.

        ``txids``: (txid, tx_num) of each data entry with a txid, if the caller parsed the
        block already (a committing peer has); otherwise they are read from the block.
        Raises ValueError if ``block.header.number`` is not the current height.
        """
        with self._write_lock:
            self._check_open()
            if self._broken:
                raise BlockStoreError(self._broken)
            expected = len(self._locations)
            if not block.HasField("header"):
                raise ValueError(f"block has no header (expected block {expected})")
            if block.header.number != expected:
                raise ValueError(
                    f"block number out of order: expected {expected}, got {block.header.number}"
                )
            body = block.SerializeToString()
            record = _encode_record(body)
            full = self._segment_size + len(record) > self._max_segment_bytes
            if full and self._segment_size > 0:
                self._roll_segment()
            offset = self._segment_size
            try:
                written = os.write(self._write_fd, record)
                while written < len(record):  # os.write may be partial for large buffers
                    written += os.write(self._write_fd, record[written:])
                os.fsync(self._write_fd)
            except OSError:
                self._undo_partial_write(offset)
                raise
            self._segment_size += len(record)
            try:
                self._index_block(block, self._segment, offset, len(body), txids)
            except Exception:
                # The block is durable but not indexed; reopening re-indexes it.
                self._broken = f"indexing block {expected} failed; reopen the block store"
                raise
            with self._height_cv:
                self._locations.append((self._segment, offset, len(body)))
                self._height_cv.notify_all()

    def _undo_partial_write(self, offset: int) -> None:
        try:
            os.ftruncate(self._write_fd, offset)
        except OSError:
            self._broken = "a failed write could not be undone; reopen the block store"

    def _roll_segment(self) -> None:
        os.close(self._write_fd)
        self._segment += 1
        self._segment_size = 0
        self._write_fd = os.open(
            self._dir / _segment_name(self._segment),
            os.O_WRONLY | os.O_CREAT | os.O_APPEND,
            0o644,
        )
        _fsync_dir(self._dir)

    # ---- reading --------------------------------------------------------------------

    @property
    def height(self) -> int:
        """Number of blocks stored: the next block to append has this number."""
        return len(self._locations)

    def _read_fd(self, segment: int) -> int:
        with self._read_fds_lock:
            self._check_open()
            fd = self._read_fds.get(segment)
            if fd is None:
                fd = os.open(self._dir / _segment_name(segment), os.O_RDONLY)
                self._read_fds[segment] = fd
            return fd

    def _read_bytes(self, segment: int, offset: int, length: int) -> bytes:
        body = os.pread(self._read_fd(segment), length, offset + _HEADER.size)
        if len(body) != length:
            raise BlockStoreCorruption(f"short read in {_segment_name(segment)} at {offset}")
        return body

    def _read_at(self, segment: int, offset: int, length: int) -> common_pb2.Block:
        block = common_pb2.Block()
        block.ParseFromString(self._read_bytes(segment, offset, length))
        return block

    def get_by_number(self, number: int) -> common_pb2.Block:
        self._check_open()
        if not 0 <= number < len(self._locations):
            raise BlockNotFound(f"no block {number} (height {len(self._locations)})")
        return self._read_at(*self._locations[number])

    def get_bytes(self, number: int) -> bytes:
        """Block ``number`` exactly as stored (a serialized common.Block), without parsing it."""
        self._check_open()
        if not 0 <= number < len(self._locations):
            raise BlockNotFound(f"no block {number} (height {len(self._locations)})")
        return self._read_bytes(*self._locations[number])

    def _query(self, sql: str, args: tuple) -> tuple | None:
        with self._db_lock:
            self._check_open()
            return self._db.execute(sql, args).fetchone()

    def get_by_hash(self, header_hash: bytes) -> common_pb2.Block:
        row = self._query("SELECT num FROM blocks WHERE hash = ?", (bytes(header_hash),))
        if row is None or row[0] >= len(self._locations):
            raise BlockNotFound(f"no block with header hash {bytes(header_hash).hex()}")
        return self.get_by_number(row[0])

    def tx_location(self, txid: str) -> tuple[int, int] | None:
        """(block_num, tx_num) of the first transaction with this txid, or None."""
        if not self._index_txids:
            raise BlockStoreError("this block store was opened with index_txids=False")
        row = self._query("SELECT block_num, tx_num FROM txids WHERE txid = ?", (txid,))
        if row is None or row[0] >= len(self._locations):
            return None
        return row[0], row[1]

    def contains_txid(self, txid: str) -> bool:
        return self.tx_location(txid) is not None

    def committed_txids(self, txids: Iterable[str]) -> set[str]:
        """Those of ``txids`` already in a stored block: one query per 500, not one per txid
        (a block's duplicate check)."""
        if not self._index_txids:
            raise BlockStoreError("this block store was opened with index_txids=False")
        wanted = list(dict.fromkeys(txids))
        found: set[str] = set()
        height = len(self._locations)
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            with self._db_lock:
                self._check_open()
                rows = self._db.execute(
                    f"SELECT txid, block_num FROM txids WHERE txid IN ({marks})", chunk
                ).fetchall()
            found.update(txid for txid, block_num in rows if block_num < height)
        return found

    def get_by_txid(self, txid: str) -> common_pb2.Block:
        """The block holding the first transaction with this txid."""
        loc = self.tx_location(txid)
        if loc is None:
            raise BlockNotFound(f"no transaction with txid {txid}")
        return self.get_by_number(loc[0])

    @property
    def last_block(self) -> common_pb2.Block | None:
        height = len(self._locations)
        return self.get_by_number(height - 1) if height else None

    def iter_from(self, number: int) -> Iterator[common_pb2.Block]:
        """Blocks number, number+1, ... up to the height reached while iterating."""
        n = number
        while n < len(self._locations):
            yield self.get_by_number(n)
            n += 1

    def wait_for_height(self, height: int, timeout: float | None = None) -> bool:
        """Block until ``self.height >= height`` (for Deliver); False on timeout."""
        with self._height_cv:
            return self._height_cv.wait_for(
                lambda: len(self._locations) >= height or self._closed, timeout
            ) and len(self._locations) >= height

    # ---- lifecycle ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BlockStoreError("block store is closed")

    def close(self) -> None:
        with self._write_lock, self._read_fds_lock, self._db_lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._write_fd)
            for fd in self._read_fds.values():
                os.close(fd)
            self._read_fds.clear()
            self._db.close()
        with self._height_cv:
            self._height_cv.notify_all()

    def __enter__(self) -> BlockStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
