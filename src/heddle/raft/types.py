"""Raft data types: entries, messages, hard/soft state, snapshots, config changes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

NONE = 0
"""Node id meaning "no node" (ids are positive integers)."""


class RaftError(Exception):
    """Base class of the errors heddle.raft raises."""


class ProposalDroppedError(RaftError):
    """A proposal was refused: not leader, transfer in progress, or a config change pending."""


class InvalidMessageError(RaftError):
    """A message cannot be stepped into this node (local type, wrong recipient, ...)."""


class EntryType(enum.IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class MessageType(enum.IntEnum):
    APP = 1
    APP_RESP = 2
    VOTE = 3
    VOTE_RESP = 4
    PRE_VOTE = 5
    PRE_VOTE_RESP = 6
    SNAP = 7
    HEARTBEAT = 8
    HEARTBEAT_RESP = 9
    TIMEOUT_NOW = 10
    READ_INDEX = 11
    READ_INDEX_RESP = 12


class Role(enum.IntEnum):
    FOLLOWER = 0
    CANDIDATE = 1
    PRE_CANDIDATE = 2
    LEADER = 3


class ConfChangeType(enum.IntEnum):
    ADD_NODE = 0  # add a voter, or promote a learner to voter
    REMOVE_NODE = 1
    ADD_LEARNER = 2


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class ConfState:
    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)
    data: bytes = b""

    @property
    def index(self) -> int:
        return self.metadata.index

    @property
    def term(self) -> int:
        return self.metadata.term

    def is_empty(self) -> bool:
        return self.metadata.index == 0


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before messages are sent: term, vote, commit index."""

    term: int = 0
    vote: int = NONE
    commit: int = 0


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state: who leads and this node's role."""

    lead: int = NONE
    role: Role = Role.FOLLOWER


@dataclass(frozen=True, slots=True)
class ConfChange:
    type: ConfChangeType
    node_id: int
    context: bytes = b""


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read may be served once applied index >= index."""

    index: int
    request_ctx: bytes


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    to: int
    frm: int
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None
    context: bytes = b""


@dataclass(slots=True)
class Ready:
    """Work handed to the application; process it in order, then call advance().

    1. persist snapshot (if any), entries and hard_state (fsync);
    2. send messages;
    3. install snapshot into the state machine, then apply committed_entries;
    4. serve read_states once applied index >= ReadState.index;
    5. RawNode.advance(ready).
    """

    soft_state: SoftState
    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)

    @property
    def must_sync(self) -> bool:
        return bool(self.entries) or self.hard_state is not None or self.snapshot is not None


VOTE_TYPES = (MessageType.VOTE, MessageType.PRE_VOTE)
RESPONSE_TYPES = frozenset(
    {
        MessageType.APP_RESP,
        MessageType.VOTE_RESP,
        MessageType.PRE_VOTE_RESP,
        MessageType.HEARTBEAT_RESP,
        MessageType.READ_INDEX_RESP,
    }
)
CAMPAIGN_TRANSFER = b"transfer"
"""Vote context marking a campaign started by leader transfer (bypasses leases)."""


def entry_size(e: Entry) -> int:
    """Approximate bytes an entry costs on the wire, for max_size_per_msg."""
    return len(e.data) + 24
