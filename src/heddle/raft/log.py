"""The Raft log: stable entries in Storage plus an unstable tail not yet persisted."""

from __future__ import annotations

from heddle.raft.storage import CompactedError, Storage, StorageError, limit_size
from heddle.raft.types import Entry, RaftError, Snapshot


class _Unstable:
    """Entries (and maybe a snapshot) handed to the application but not yet persisted."""

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset  # index of entries[0]

    def maybe_first_index(self) -> int | None:
        return self.snapshot.index + 1 if self.snapshot is not None else None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.index
        return None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.index == i:
                return self.snapshot.term
            return None
        last = self.maybe_last_index()
        if last is None or i > last:
            return None
        return self.entries[i - self.offset].term

    def stable_to(self, i: int, t: int) -> None:
        if i < self.offset or self.maybe_term(i) != t:
            return
        del self.entries[: i + 1 - self.offset]
        self.offset = i + 1

    def stable_snap_to(self, i: int) -> None:
        if self.snapshot is not None and self.snapshot.index == i:
            self.snapshot = None

    def restore(self, s: Snapshot) -> None:
        self.offset = s.index + 1
        self.entries = []
        self.snapshot = s

    def truncate_and_append(self, ents: list[Entry]) -> None:
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)
        elif after <= self.offset:
            self.offset = after
            self.entries = list(ents)
        else:
            del self.entries[after - self.offset :]
            self.entries.extend(ents)


class RaftLog:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = _Unstable(last + 1)
        self.committed = first - 1
        self.applied = first - 1

    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def stable_last_index(self) -> int:
        """Last index known to be persisted."""
        return self.unstable.offset - 1

    def term(self, i: int) -> int | None:
        """Term of entry i, or None if compacted or beyond the log."""
        if i < self.first_index() - 1 or i > self.last_index():
            return None
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        try:
            return self.storage.term(i)
        except StorageError:
            return None

    def last_term(self) -> int:
        t = self.term(self.last_index())
        return t if t is not None else 0

    def match_term(self, i: int, t: int) -> bool:
        return self.term(i) == t

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        lt = self.last_term()
        return term > lt or (term == lt and last_index >= self.last_index())

    def find_conflict(self, ents: tuple[Entry, ...] | list[Entry]) -> int:
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest index <= index whose term is <= term, with its term (0 if unknown)."""
        while index > 0:
            t = self.term(index)
            if t is None:
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    def maybe_append(self, index: int, log_term: int, committed: int, ents: tuple[Entry, ...]) -> int | None:
        """Append a leader's entries after (index, log_term); None if the log does not match."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        ci = self.find_conflict(ents)
        if ci:
            if ci <= self.committed:
                raise RaftError(f"entry {ci} conflicts with committed entry (commit {self.committed})")
            self.append(list(ents[ci - index - 1 :]))
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, ents: list[Entry]) -> int:
        if not ents:
            return self.last_index()
        if ents[0].index - 1 < self.committed:
            raise RaftError(f"append at {ents[0].index} would overwrite committed {self.committed}")
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def unstable_entries(self) -> list[Entry]:
        return list(self.unstable.entries)

    def next_committed_entries(self, max_size: int | None = None) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        if self.committed + 1 > lo:
            return self.slice(lo, self.committed + 1, max_size)
        return []

    def has_next_committed_entries(self) -> bool:
        return self.committed + 1 > max(self.applied + 1, self.first_index())

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def commit_to(self, c: int) -> None:
        if c > self.committed:
            if c > self.last_index():
                raise RaftError(f"commit {c} beyond last index {self.last_index()}")
            self.committed = c

    def applied_to(self, i: int) -> None:
        if i == 0:
            return
        if i > self.committed or i < self.applied:
            raise RaftError(f"applied {i} outside [{self.applied}, {self.committed}]")
        self.applied = i

    def maybe_commit(self, max_index: int, term: int) -> bool:
        if max_index > self.committed and self.term(max_index) == term:
            self.commit_to(max_index)
            return True
        return False

    def restore(self, s: Snapshot) -> None:
        self.committed = s.index
        self.unstable.restore(s)

    def entries(self, i: int, max_size: int | None = None) -> list[Entry]:
        if i > self.last_index():
            return []
        return self.slice(i, self.last_index() + 1, max_size)

    def slice(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise CompactedError(f"index {lo} is compacted")
        if hi > self.last_index() + 1:
            raise RaftError(f"slice [{lo}, {hi}) beyond last index {self.last_index()}")
        out: list[Entry] = []
        off = self.unstable.offset
        if lo < off:
            out = self.storage.entries(lo, min(hi, off), max_size)
            if len(out) < min(hi, off) - lo:
                return out  # size-limited
        if hi > off:
            start = max(lo, off)
            out = out + self.unstable.entries[start - off : hi - off]
        return limit_size(out, max_size)
