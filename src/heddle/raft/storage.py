"""The Storage interface Raft reads its stable log from, and an in-memory implementation."""

from __future__ import annotations

from typing import Protocol

from heddle.raft.types import (
    ConfState,
    Entry,
    HardState,
    RaftError,
    Snapshot,
    SnapshotMetadata,
    entry_size,
)


class StorageError(RaftError):
    """Base class of storage errors."""


class CompactedError(StorageError):
    """The requested index is at or below the last snapshot."""


class UnavailableError(StorageError):
    """The requested index is beyond the last stored entry."""


class SnapshotOutOfDateError(StorageError):
    """A snapshot older than the current one was offered."""


class Storage(Protocol):
    """Read side of the stable log (persisted entries, hard state, latest snapshot)."""

    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]: ...

    def term(self, index: int) -> int: ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot: ...


def limit_size(ents: list[Entry], max_size: int | None) -> list[Entry]:
    """Longest prefix within max_size bytes; always at least one entry."""
    if max_size is None or not ents:
        return ents
    total = 0
    for i, e in enumerate(ents):
        total += entry_size(e)
        if total > max_size and i > 0:
            return ents[:i]
    return ents


class MemoryStorage:
    """Storage held in memory; for tests, and the cache behind WalStorage.

    ``_ents[0]`` is a dummy entry carrying the snapshot's index and term.
    """

    def __init__(self) -> None:
        self.hard_state = HardState()
        self._snapshot = Snapshot()
        self._ents: list[Entry] = [Entry(0, 0)]

    # Storage -------------------------------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard_state, self._snapshot.metadata.conf_state

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        offset = self._ents[0].index
        if lo <= offset:
            raise CompactedError(f"index {lo} is compacted (snapshot at {offset})")
        if hi > self.last_index() + 1:
            raise UnavailableError(f"index {hi - 1} is beyond last index {self.last_index()}")
        return limit_size(self._ents[lo - offset : hi - offset], max_size)

    def term(self, index: int) -> int:
        offset = self._ents[0].index
        if index < offset:
            raise CompactedError(f"index {index} is compacted (snapshot at {offset})")
        if index - offset >= len(self._ents):
            raise UnavailableError(f"index {index} is beyond last index {self.last_index()}")
        return self._ents[index - offset].term

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # write side ------------------------------------------------------------------------
    def save(
        self, hard_state: HardState | None, entries: list[Entry], snapshot: Snapshot | None = None
    ) -> None:
        """Persist one Ready's snapshot, entries and hard state (in that order)."""
        if snapshot is not None and not snapshot.is_empty():
            self.apply_snapshot(snapshot)
        self.append(entries)
        if hard_state is not None:
            self.hard_state = hard_state

    def set_hard_state(self, hs: HardState) -> None:
        self.hard_state = hs

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the log with a snapshot received from the leader."""
        if snap.index <= self._snapshot.index:
            raise SnapshotOutOfDateError(f"snapshot at {snap.index} is not newer than {self._snapshot.index}")
        self._snapshot = snap
        self._ents = [Entry(snap.term, snap.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the state machine as of applied index ``index``."""
        if index <= self._snapshot.index:
            raise SnapshotOutOfDateError(f"snapshot at {index} is not newer than {self._snapshot.index}")
        if index > self.last_index():
            raise UnavailableError(f"snapshot index {index} > last index {self.last_index()}")
        self._snapshot = Snapshot(SnapshotMetadata(index, self.term(index), conf_state), data)
        return self._snapshot

    def compact(self, compact_index: int) -> None:
        """Discard entries before compact_index (it becomes the dummy entry)."""
        offset = self._ents[0].index
        if compact_index <= offset:
            return
        if compact_index > self.last_index():
            raise UnavailableError(f"compact index {compact_index} > last index {self.last_index()}")
        i = compact_index - offset
        self._ents = [Entry(self._ents[i].term, compact_index), *self._ents[i + 1 :]]

    def append(self, entries: list[Entry]) -> None:
        """Append entries, replacing any conflicting suffix."""
        if not entries:
            return
        first = self.first_index()
        if entries[-1].index < first:
            return
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        at = entries[0].index - self._ents[0].index
        if at > len(self._ents):
            raise UnavailableError(
                f"missing log entries: last {self.last_index()}, appending at {entries[0].index}"
            )
        del self._ents[at:]
        self._ents.extend(entries)
