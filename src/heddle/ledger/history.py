"""The history index: which transactions wrote a key, for GetHistoryForKey.

Entries are (namespace, key, block_num, tx_num), one per write (put, delete or
metadata change) by a valid transaction, including several writes to one key in one
block. They are stored by the state database backend and committed in the same
atomic transaction as the block's state updates (``StateDB.apply_batch(...,
history=...)``), so state and history never disagree after a crash.

``history(ns, key)`` yields Heights newest first by default, as Fabric's
GetHistoryForKey returns them; pass ``newest_first=False`` for oldest first. The
values themselves are read from the block store at those positions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from heddle.ledger.statedb.base import Height


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    namespace: str
    key: str
    block_num: int
    tx_num: int


class HistoryDB(Protocol):
    def history(self, ns: str, key: str, newest_first: bool = True) -> Iterator[Height]: ...
