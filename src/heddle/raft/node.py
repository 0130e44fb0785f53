"""RawNode: the application's handle on a Raft node (tick, step, propose, ready, advance)."""

from __future__ import annotations

from heddle.raft.codec import encode_conf_change
from heddle.raft.core import Config, Raft
from heddle.raft.storage import Storage
from heddle.raft.types import (
    RESPONSE_TYPES,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    InvalidMessageError,
    Message,
    RaftError,
    Ready,
    Role,
    SoftState,
)


class RawNode:
    """A single-threaded Raft node. The caller owns clocks, disks and sockets.

    Loop::

        node.tick()                      # every tick interval
        node.step(decode_message(raw))   # for every message received
        if node.has_ready():
            rd = node.ready()
            storage.save(rd.hard_state, rd.entries, rd.snapshot)   # durable first
            send(rd.messages)
            apply(rd.snapshot, rd.committed_entries)
            node.advance(rd)
    """

    def __init__(self, config: Config, storage: Storage) -> None:
        self.raft = Raft(config, storage)
        self._prev_hs = self.raft.hard_state()
        self._prev_ss = self.raft.soft_state()
        self._in_ready = False

    # inputs ------------------------------------------------------------------------------
    def tick(self) -> None:
        """Advance logical time by one tick (election and heartbeat timers)."""
        self.raft.tick()

    def campaign(self) -> None:
        """Start an election now (skips the timer; still uses PreVote if enabled)."""
        self.raft.campaign(transfer=False)

    def step(self, m: Message) -> None:
        """Feed a message received from a peer. Raises InvalidMessageError if misaddressed."""
        if m.to != self.raft.id:
            raise InvalidMessageError(f"message for node {m.to} delivered to node {self.raft.id}")
        if m.frm == self.raft.id:
            raise InvalidMessageError("message claims to come from this node")
        if m.type in RESPONSE_TYPES and m.frm not in self.raft.prs:
            return  # a response from a node outside the configuration
        self.raft.step(m)

    def propose(self, data: bytes) -> int:
        """Propose an entry (leader only); returns its log index. Raises ProposalDroppedError."""
        return self.raft.propose([Entry(0, 0, EntryType.NORMAL, bytes(data))])

    def propose_conf_change(self, cc: ConfChange) -> int:
        """Propose one membership change; it takes effect when committed and applied."""
        return self.raft.propose([Entry(0, 0, EntryType.CONF_CHANGE, encode_conf_change(cc))])

    def transfer_leader(self, to: int) -> None:
        """Ask the leader to hand leadership to voter ``to``."""
        self.raft.transfer_leader(to)

    def read_index(self, ctx: bytes) -> None:
        """Request a linearizable read; a ReadState with this ctx appears in a later Ready."""
        self.raft.read_index(ctx)

    def report_unreachable(self, node_id: int) -> None:
        self.raft.report_unreachable(node_id)

    def report_snapshot(self, node_id: int, ok: bool) -> None:
        """Tell the leader whether sending a snapshot to node_id succeeded."""
        self.raft.report_snapshot(node_id, ok)

    # outputs -----------------------------------------------------------------------------
    def has_ready(self) -> bool:
        r = self.raft
        return bool(
            r.soft_state() != self._prev_ss
            or r.hard_state() != self._prev_hs
            or r.log.unstable.snapshot is not None
            or r.log.unstable.entries
            or r.msgs
            or r.read_states
            or r.log.has_next_committed_entries()
        )

    def ready(self) -> Ready:
        """Collect pending work. Call advance() with it before the next ready()."""
        if self._in_ready:
            raise RaftError("ready() called again before advance()")
        r = self.raft
        hs = r.hard_state()
        rd = Ready(
            soft_state=r.soft_state(),
            hard_state=hs if hs != self._prev_hs else None,
            entries=r.log.unstable_entries(),
            snapshot=r.log.unstable.snapshot,
            committed_entries=r.log.next_committed_entries(r.cfg.max_committed_size_per_ready),
            messages=r.msgs,
            read_states=r.read_states,
        )
        r.msgs = []
        r.read_states = []
        self._in_ready = True
        return rd

    def advance(self, rd: Ready) -> None:
        """The Ready was persisted, sent and applied."""
        if not self._in_ready:
            raise RaftError("advance() without a ready()")
        self._in_ready = False
        r = self.raft
        self._prev_ss = rd.soft_state
        if rd.hard_state is not None:
            self._prev_hs = rd.hard_state
        if rd.snapshot is not None:
            r.log.unstable.stable_snap_to(rd.snapshot.index)
            r.log.applied = max(r.log.applied, rd.snapshot.index)
        if rd.entries:
            last = rd.entries[-1]
            r.log.unstable.stable_to(last.index, last.term)
            r.on_persisted(r.log.stable_last_index())
        if rd.committed_entries:
            r.log.applied_to(rd.committed_entries[-1].index)
            for e in rd.committed_entries:
                if e.type == EntryType.CONF_CHANGE:
                    r.apply_conf_change_entry(e)

    # introspection -----------------------------------------------------------------------
    @property
    def id(self) -> int:
        return self.raft.id

    @property
    def role(self) -> Role:
        return self.raft.role

    @property
    def leader(self) -> int:
        return self.raft.lead

    @property
    def term(self) -> int:
        return self.raft.term

    @property
    def conf_state(self) -> ConfState:
        """Configuration as of the applied index; store it with snapshots you create."""
        return self.raft.conf_state()

    @property
    def applied(self) -> int:
        return self.raft.log.applied

    @property
    def committed(self) -> int:
        return self.raft.log.committed

    def hard_state(self) -> HardState:
        return self.raft.hard_state()

    def soft_state(self) -> SoftState:
        return self.raft.soft_state()

    def status(self) -> dict:
        """A snapshot of internal state for logs and operators."""
        r = self.raft
        return {
            "id": r.id,
            "term": r.term,
            "vote": r.vote,
            "lead": r.lead,
            "role": r.role.name,
            "commit": r.log.committed,
            "applied": r.log.applied,
            "last_index": r.log.last_index(),
            "voters": sorted(r.voters),
            "learners": sorted(r.learners),
            "progress": {k: repr(v) for k, v in r.prs.items()} if r.role == Role.LEADER else {},
        }
