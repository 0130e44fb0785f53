"""Durable Raft storage: a write-ahead log of CRC-framed records plus snapshot files.

Layout of ``directory``::

    wal-<seq:016d>.log          segments; each record is u32 length | u32 crc32 | payload
    snap-<index:016x>.snap      snapshots, same framing, written via tmp + fsync + rename

A payload is one type byte followed by a codec encoding: ``E`` entries, ``H`` hard
state, ``S`` "the log was replaced by the snapshot at (index, term)". save() writes and
fsyncs before it returns. On open, a record cut short or failing its CRC at the tail of
the newest segment (a crash mid-write) is truncated away; a bad record anywhere else is
corruption and raises WalCorruptError.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from heddle.raft.codec import (
    RaftCodecError,
    decode_entries,
    decode_hard_state,
    decode_snapshot,
    encode_entries,
    encode_hard_state,
    encode_snapshot,
)
from heddle.raft.storage import MemoryStorage, SnapshotOutOfDateError, StorageError
from heddle.raft.types import ConfState, Entry, HardState, Snapshot

_FRAME = struct.Struct(">II")
_MARK = struct.Struct(">QQ")
REC_ENTRIES = b"E"
REC_HARD_STATE = b"H"
REC_SNAPSHOT = b"S"
DEFAULT_SEGMENT_BYTES = 64 << 20
_MAX_RECORD = 1 << 31


class WalCorruptError(StorageError):
    """The WAL or a snapshot file is damaged in a way a crash cannot explain."""


def _frame(payload: bytes) -> bytes:
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_records(data: bytes) -> tuple[list[bytes], int]:
    """Valid records and the offset where the valid prefix ends."""
    out: list[bytes] = []
    pos = 0
    while pos + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if length == 0 or length > _MAX_RECORD or end > len(data):
            break
        payload = data[pos + _FRAME.size : end]
        if zlib.crc32(payload) != crc:
            break
        out.append(payload)
        pos = end
    return out, pos


class WalStorage(MemoryStorage):
    """MemoryStorage whose every save() is durable (fsync) before returning."""

    def __init__(self, directory: str | os.PathLike, segment_bytes: int = DEFAULT_SEGMENT_BYTES):
        super().__init__()
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.truncated_bytes = 0  # how much torn tail open() dropped
        self._file = None
        self._seq = 0
        self._load()

    # opening -----------------------------------------------------------------------------
    def _segments(self) -> list[Path]:
        return sorted(self.dir.glob("wal-*.log"))

    def _snap_files(self) -> list[Path]:
        return sorted(self.dir.glob("snap-*.snap"))

    def _load_snapshot(self) -> None:
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink()
        for path in reversed(self._snap_files()):
            recs, end = _read_records(path.read_bytes())
            if len(recs) == 1 and end == path.stat().st_size:
                try:
                    snap = decode_snapshot(recs[0])
                except RaftCodecError:
                    continue
                self._snapshot = snap
                self._ents = [Entry(snap.term, snap.index)]
                return

    def _load(self) -> None:
        self._load_snapshot()
        segs = self._segments()
        for n, path in enumerate(segs):
            data = path.read_bytes()
            recs, end = _read_records(data)
            if end != len(data):
                if n != len(segs) - 1:
                    raise WalCorruptError(f"{path.name}: bad record at offset {end}")
                self.truncated_bytes = len(data) - end
                with open(path, "r+b") as f:
                    f.truncate(end)
                    f.flush()
                    os.fsync(f.fileno())
            for rec in recs:
                self._replay(rec, path)
        if self.hard_state.commit < self._snapshot.index:
            self.hard_state = HardState(self.hard_state.term, self.hard_state.vote, self._snapshot.index)
        if segs:
            self._seq = int(segs[-1].name[4:-4])
            self._file = open(segs[-1], "ab")
        else:
            self._open_segment(1)

    def _replay(self, rec: bytes, path: Path) -> None:
        kind, body = rec[:1], rec[1:]
        try:
            if kind == REC_ENTRIES:
                ents = [e for e in decode_entries(body) if e.index > self._ents[0].index]
                if ents:
                    super().append(ents)
            elif kind == REC_HARD_STATE:
                self.hard_state = decode_hard_state(body)
            elif kind == REC_SNAPSHOT:
                index, term = _MARK.unpack(body)
                if index > self._snapshot.index:
                    raise WalCorruptError(f"{path.name}: log reset to snapshot {index} whose file is missing")
                self._ents = self._ents[:1]  # everything before the reset is void
            else:
                raise WalCorruptError(f"{path.name}: unknown record type {kind!r}")
        except (RaftCodecError, struct.error, StorageError) as exc:
            if isinstance(exc, WalCorruptError):
                raise
            raise WalCorruptError(f"{path.name}: undecodable record: {exc}") from exc

    # writing -----------------------------------------------------------------------------
    def _open_segment(self, seq: int) -> None:
        if self._file is not None:
            self._file.close()
        self._seq = seq
        self._file = open(self.dir / f"wal-{seq:016d}.log", "ab")
        _fsync_dir(self.dir)

    def _write(self, payloads: list[bytes]) -> None:
        if not payloads:
            return
        assert self._file is not None
        self._file.write(b"".join(_frame(p) for p in payloads))
        self._file.flush()
        os.fsync(self._file.fileno())
        if self._file.tell() >= self.segment_bytes:
            self._open_segment(self._seq + 1)

    def _write_snapshot_file(self, snap: Snapshot) -> None:
        path = self.dir / f"snap-{snap.index:016x}.snap"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(_frame(encode_snapshot(snap)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.dir)

    def save(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None = None
    ) -> None:
        """Durably record one Ready's snapshot, entries and hard state; fsyncs first."""
        payloads: list[bytes] = []
        if snapshot is not None and not snapshot.is_empty():
            if snapshot.index <= self._snapshot.index:
                raise SnapshotOutOfDateError(
                    f"snapshot at {snapshot.index} is not newer than {self._snapshot.index}"
                )
            self._write_snapshot_file(snapshot)
            payloads.append(REC_SNAPSHOT + _MARK.pack(snapshot.index, snapshot.term))
        if entries:
            payloads.append(REC_ENTRIES + encode_entries(entries))
        if hard_state is not None:
            payloads.append(REC_HARD_STATE + encode_hard_state(hard_state))
        self._write(payloads)
        super().save(hard_state, entries, snapshot)
        if snapshot is not None and not snapshot.is_empty():
            self._drop_old_snapshots()

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Write a snapshot of the state machine at applied index ``index`` (durable)."""
        snap = super().create_snapshot(index, conf_state, data)
        self._write_snapshot_file(snap)
        return snap

    def compact(self, compact_index: int) -> None:
        """Drop entries up to compact_index (<= latest snapshot) and reclaim WAL segments.

        The retained log and hard state are rewritten into a fresh segment, fsynced, and
        only then are older segments deleted, so a crash at any point loses nothing.
        """
        if compact_index > self._snapshot.index:
            raise StorageError(
                f"compact index {compact_index} is beyond the snapshot at {self._snapshot.index}"
            )
        super().compact(compact_index)
        old = self._segments()
        self._open_segment(self._seq + 1)
        payloads = [REC_HARD_STATE + encode_hard_state(self.hard_state)]
        if len(self._ents) > 1:
            payloads.append(REC_ENTRIES + encode_entries(self._ents[1:]))
        self._write(payloads)
        for p in old:
            if p.name != f"wal-{self._seq:016d}.log":
                p.unlink()
        _fsync_dir(self.dir)
        self._drop_old_snapshots()

    def _drop_old_snapshots(self) -> None:
        for p in self._snap_files()[:-2]:
            p.unlink()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
