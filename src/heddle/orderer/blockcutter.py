"""Fabric's block-cutting rules as a plain state machine (no clocks, no I/O).

- a batch is cut when it holds MaxMessageCount messages;
- a message larger than PreferredMaxBytes is cut alone, after any pending batch;
- a message that would push the pending batch over PreferredMaxBytes first cuts the batch;
- the BatchTimeout timer is the caller's: when it fires, it calls ``cut()``.
AbsoluteMaxBytes is enforced before a message reaches the cutter (at Broadcast).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchSize:
    max_message_count: int = 500
    absolute_max_bytes: int = 10 * 1024 * 1024
    preferred_max_bytes: int = 2 * 1024 * 1024


def message_size(payload: bytes, signature: bytes) -> int:
    """Size of an envelope as Fabric counts it: payload plus signature."""
    return len(payload) + len(signature)


@dataclass
class OrderedResult:
    batches: list[list[bytes]]  # batches cut by this message, in order
    pending: bool  # whether a batch is now pending (the caller starts its timer)


class BlockCutter:
    """Groups ordered messages into batches."""

    def __init__(self, batch_size: BatchSize):
        self.batch_size = batch_size
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def ordered(self, message: bytes, size: int | None = None) -> OrderedResult:
        """Add one message; returns the batches it caused to be cut."""
        size = len(message) if size is None else size
        limits = self.batch_size
        batches: list[list[bytes]] = []
        if size > limits.preferred_max_bytes:
            if self._pending:
                batches.append(self.cut())
            batches.append([message])
            return OrderedResult(batches, False)
        if self._pending and self._pending_bytes + size > limits.preferred_max_bytes:
            batches.append(self.cut())
        self._pending.append(message)
        self._pending_bytes += size
        if len(self._pending) >= limits.max_message_count:
            batches.append(self.cut())
        return OrderedResult(batches, bool(self._pending))

    def cut(self) -> list[bytes]:
        """Return the pending batch (possibly empty) and start a new one."""
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        return batch
