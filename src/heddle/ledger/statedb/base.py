"""Types shared by every state database backend.

Keys and namespaces are ``str``; they are ordered by their UTF-8 bytes, as Fabric's
LevelDB-backed state orders them, so composite keys (``\\x00`` separators) sort as in
Fabric. Values and metadata are raw bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from heddle.ledger.history import HistoryEntry


@dataclass(frozen=True, order=True, slots=True)
class Height:
    """A position in the chain: (block_num, tx_num). Ordered; unpacks like a tuple."""

    block_num: int
    tx_num: int

    def __iter__(self) -> Iterator[int]:
        return iter((self.block_num, self.tx_num))


@dataclass(frozen=True, slots=True)
class VersionedValue:
    value: bytes
    version: Height
    metadata: bytes = b""


@dataclass(frozen=True, slots=True)
class Write:
    """One pending update in a batch.

    kind "put" sets value and metadata; "delete" removes the key; "metadata" changes
    only the metadata of an existing key (ignored if the key does not exist).
    """

    kind: Literal["put", "delete", "metadata"]
    namespace: str
    key: str
    version: Height
    value: bytes = b""
    metadata: bytes = b""


class UpdateBatch:
    """The state updates of one block; the last write to a key wins."""

    def __init__(self) -> None:
        self._writes: dict[tuple[str, str], Write] = {}

    def put(self, ns: str, key: str, value: bytes, version: Height, metadata: bytes = b"") -> None:
        self._writes[(ns, key)] = Write("put", ns, key, version, bytes(value), bytes(metadata))

    def delete(self, ns: str, key: str, version: Height) -> None:
        self._writes[(ns, key)] = Write("delete", ns, key, version)

    def put_metadata(self, ns: str, key: str, metadata: bytes, version: Height) -> None:
        """Change a key's metadata (Fabric's SetStateMetadata), keeping its value."""
        prev = self._writes.get((ns, key))
        if prev is None or prev.kind == "metadata":
            self._writes[(ns, key)] = Write("metadata", ns, key, version, metadata=bytes(metadata))
        elif prev.kind == "put":
            self._writes[(ns, key)] = Write("put", ns, key, version, prev.value, bytes(metadata))
        # after a delete in the same block the key does not exist: nothing to update

    def get(self, ns: str, key: str) -> Write | None:
        """The pending write to (ns, key), if any."""
        return self._writes.get((ns, key))

    def writes(self) -> list[Write]:
        return list(self._writes.values())

    def __len__(self) -> int:
        return len(self._writes)


@dataclass(frozen=True, slots=True)
class RangePage:
    """One page of a range scan; ``bookmark`` is where the next page starts, "" when done."""

    results: list[tuple[str, VersionedValue]]
    bookmark: str


class StateDB(Protocol):
    """A versioned key-value store for world state, committed one block at a time."""

    def get(self, ns: str, key: str) -> VersionedValue | None: ...

    def get_many(self, ns: str, keys: Iterable[str]) -> dict[str, VersionedValue | None]: ...

    def has_metadata(self, ns: str) -> bool:
        """Whether any key of ``ns`` may carry metadata; True is always a correct answer
        (it only means "read the keys' metadata")."""
        ...

    def range(
        self, ns: str, start_key: str = "", end_key: str = "", limit: int | None = None
    ) -> Iterator[tuple[str, VersionedValue]]: ...

    def range_page(
        self, ns: str, start_key: str, end_key: str, page_size: int, bookmark: str = ""
    ) -> RangePage: ...

    def savepoint(self) -> Height | None: ...

    def apply_batch(
        self, batch: UpdateBatch, savepoint: Height, history: Iterable[HistoryEntry] = ()
    ) -> None: ...

    def history(self, ns: str, key: str, newest_first: bool = True) -> Iterator[Height]: ...

    def close(self) -> None: ...


def check_savepoint(current: Height | None, new: Height) -> None:
    if current is not None and new < current:
        raise ValueError(f"savepoint would move backwards: current {current}, got {new}")


def utf8(text: str) -> bytes:
    return text.encode("utf-8")


def range_page_from(
    db: StateDB, ns: str, start_key: str, end_key: str, page_size: int, bookmark: str
) -> RangePage:
    """A page of ``page_size`` results starting at ``bookmark`` (or start_key)."""
    if page_size <= 0:
        raise ValueError(f"page_size must be positive, got {page_size}")
    start = bookmark or start_key
    rows = list(db.range(ns, start, end_key, limit=page_size + 1))
    if len(rows) > page_size:
        return RangePage(rows[:page_size], rows[page_size][0])
    return RangePage(rows, "")

