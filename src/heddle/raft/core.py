"""The Raft state machine: elections, replication, membership, reads. No I/O.

Drive it through :class:`heddle.raft.node.RawNode`; this module is its engine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from heddle.raft.codec import RaftCodecError, decode_conf_change
from heddle.raft.log import RaftLog
from heddle.raft.progress import Progress, ProgressState
from heddle.raft.storage import CompactedError, Storage, StorageError
from heddle.raft.types import (
    CAMPAIGN_TRANSFER,
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ProposalDroppedError,
    RaftError,
    ReadState,
    Role,
    SoftState,
)

MT = MessageType


@dataclass
class Config:
    """Node configuration.

    ``peers``/``learners`` bootstrap a brand-new cluster; they are ignored when storage
    already holds a configuration (from a snapshot). ``applied`` is the index the
    application has already applied (e.g. restored from its own durable state).
    """

    id: int
    peers: list[int] = field(default_factory=list)
    learners: list[int] = field(default_factory=list)
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_inflight_msgs: int = 256
    max_size_per_msg: int = 1 << 20
    max_committed_size_per_ready: int | None = None
    pre_vote: bool = True
    check_quorum: bool = True
    read_only_lease: bool = False
    applied: int = 0
    seed: int | None = None

    def validate(self) -> None:
        if self.id <= 0:
            raise ValueError("raft Config.id must be a positive integer")
        if self.heartbeat_tick <= 0:
            raise ValueError("raft Config.heartbeat_tick must be > 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("raft Config.election_tick must be > heartbeat_tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("raft Config.max_inflight_msgs must be > 0")
        if self.max_size_per_msg <= 0:
            raise ValueError("raft Config.max_size_per_msg must be > 0")
        if self.read_only_lease and not self.check_quorum:
            raise ValueError("raft Config.read_only_lease requires check_quorum")
        if set(self.peers) & set(self.learners):
            raise ValueError("raft Config: a node cannot be both peer and learner")


@dataclass
class _ReadRequest:
    ctx: bytes
    index: int
    frm: int
    acks: set[int]


class Raft:
    def __init__(self, config: Config, storage: Storage) -> None:
        config.validate()
        self.id = config.id
        self.cfg = config
        self.log = RaftLog(storage)
        self.rng = random.Random(config.seed if config.seed is not None else config.id)
        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.role = Role.FOLLOWER
        self.voters: set[int] = set()
        self.learners: set[int] = set()
        self.prs: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_tick
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self._reads: list[_ReadRequest] = []
        self._pending_reads: list[tuple[bytes, int]] = []  # until the leader commits in term

        hs, cs = storage.initial_state()
        if cs.voters:
            voters, learners = cs.voters, cs.learners
        else:
            voters, learners = tuple(config.peers), tuple(config.learners)
        self._set_conf(ConfState(tuple(voters), tuple(learners)))
        if hs != HardState():
            if not self.log.first_index() - 1 <= hs.commit <= self.log.last_index():
                raise RaftError(
                    f"hard state commit {hs.commit} outside log "
                    f"[{self.log.first_index() - 1}, {self.log.last_index()}]"
                )
            self.term, self.vote = hs.term, hs.vote
            self.log.committed = hs.commit
        if config.applied:
            self.log.applied_to(config.applied)
            self._replay_conf_changes(config.applied)
        self.become_follower(self.term, NONE)

    # state -----------------------------------------------------------------------------
    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.role)

    def conf_state(self) -> ConfState:
        return ConfState(tuple(sorted(self.voters)), tuple(sorted(self.learners)))

    @property
    def promotable(self) -> bool:
        return self.id in self.voters

    def _quorum(self) -> int:
        return len(self.voters) // 2 + 1

    def _set_conf(self, cs: ConfState) -> None:
        self.voters = set(cs.voters)
        self.learners = set(cs.learners)
        nxt = self.log.last_index() + 1
        old = self.prs
        self.prs = {}
        for nid in self.voters | self.learners:
            pr = old.get(nid) or Progress(nxt, self.cfg.max_inflight_msgs)
            pr.is_learner = nid in self.learners
            self.prs[nid] = pr

    def _replay_conf_changes(self, upto: int) -> None:
        lo = self.log.first_index()
        for e in self.log.slice(lo, upto + 1) if upto >= lo else []:
            if e.type == EntryType.CONF_CHANGE:
                self.apply_conf_change_entry(e)

    # role changes ----------------------------------------------------------------------
    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.cfg.election_tick + self.rng.randrange(self.cfg.election_tick)
        self.lead_transferee = NONE
        self.votes = {}
        last = self.log.last_index()
        for nid, pr in self.prs.items():
            learner = pr.is_learner
            self.prs[nid] = np = Progress(last + 1, self.cfg.max_inflight_msgs, learner)
            if nid == self.id:
                np.match = self.log.stable_last_index()
        self.pending_conf_index = 0
        self._reads = []
        self._pending_reads = []

    def become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER

    def become_pre_candidate(self) -> None:
        if self.role == Role.LEADER:
            raise RaftError("leader cannot become pre-candidate")
        self.votes = {}
        self.lead = NONE
        self.role = Role.PRE_CANDIDATE

    def become_candidate(self) -> None:
        if self.role == Role.LEADER:
            raise RaftError("leader cannot become candidate")
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def become_leader(self) -> None:
        if self.role == Role.FOLLOWER:
            raise RaftError("follower cannot become leader without an election")
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        me = self.prs.get(self.id)
        if me is not None:
            me.become_replicate()
            me.match = self.log.stable_last_index()
            me.next = self.log.last_index() + 1
            me.recent_active = True
        # No config change may be proposed until this term's first entry is applied.
        self.pending_conf_index = self.log.last_index()
        self._append_entries([Entry(0, 0)])

    # sending ---------------------------------------------------------------------------
    def _send(self, mtype: MessageType, to: int, term: int | None = None, **kw) -> None:
        self.msgs.append(
            Message(type=mtype, to=to, frm=self.id, term=self.term if term is None else term, **kw)
        )

    def _send_append(self, to: int, send_if_empty: bool = True) -> bool:
        pr = self.prs[to]
        if pr.is_paused():
            return False
        prev = pr.next - 1
        prev_term = self.log.term(prev)
        ents: list[Entry] = []
        compacted = prev_term is None
        if not compacted:
            try:
                ents = self.log.entries(pr.next, self.cfg.max_size_per_msg)
            except CompactedError:
                compacted = True
        if compacted:
            if not pr.recent_active:
                return False
            try:
                snap = self.log.snapshot()
            except StorageError:
                return False
            if snap.is_empty():
                raise RaftError(f"need a snapshot for {to} but none exists")
            pr.become_snapshot(snap.index)
            self._send(MT.SNAP, to, snapshot=snap)
            return True
        if not ents and not send_if_empty:
            return False
        self._send(
            MT.APP,
            to,
            index=prev,
            log_term=prev_term,
            entries=tuple(ents),
            commit=self.log.committed,
        )
        if ents:
            last = ents[-1].index
            if pr.state == ProgressState.REPLICATE:
                pr.optimistic_update(last)
                pr.inflights.add(last)
            elif pr.state == ProgressState.PROBE:
                pr.probe_sent = True
        return True

    def bcast_append(self) -> None:
        for nid in self.prs:
            if nid != self.id:
                self._send_append(nid)

    def _bcast_heartbeat(self, ctx: bytes = b"") -> None:
        for nid, pr in self.prs.items():
            if nid != self.id:
                commit = min(pr.match, self.log.committed)
                self._send(MT.HEARTBEAT, nid, commit=commit, context=ctx)

    def _append_entries(self, ents: list[Entry]) -> None:
        li = self.log.last_index()
        self.log.append([Entry(self.term, li + 1 + i, e.type, e.data) for i, e in enumerate(ents)])

    def maybe_commit(self) -> bool:
        matches = sorted((self.prs[v].match for v in self.voters if v in self.prs), reverse=True)
        if len(matches) < self._quorum():
            return False
        return self.log.maybe_commit(matches[self._quorum() - 1], self.term)

    def on_persisted(self, index: int) -> None:
        """Entries up to index are durable here; counts toward the leader's own match."""
        if self.role != Role.LEADER:
            return
        me = self.prs.get(self.id)
        if me is not None and me.maybe_update(index) and self.maybe_commit():
            self._on_commit_advanced()

    def _on_commit_advanced(self) -> None:
        self.bcast_append()
        if self._pending_reads and self._committed_in_term():
            pending, self._pending_reads = self._pending_reads, []
            for ctx, frm in pending:
                self._start_read(ctx, frm)

    # ticks -----------------------------------------------------------------------------
    def tick(self) -> None:
        if self.role == Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def _past_election_timeout(self) -> bool:
        return self.election_elapsed >= self.randomized_election_timeout

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.promotable and self._past_election_timeout():
            self.election_elapsed = 0
            self.campaign(transfer=False)

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_tick:
            self.election_elapsed = 0
            # A leaving leader keeps leading until the hand-off succeeds (see _hand_off).
            if self.cfg.check_quorum and not self._quorum_active() and not self.leaving:
                self.become_follower(self.term, NONE)
                return
            if self.lead_transferee != NONE:
                self.lead_transferee = NONE
            if self.leaving:
                self._hand_off()
        for nid, pr in self.prs.items():
            if nid != self.id and pr.state == ProgressState.SNAPSHOT:
                pr.snapshot_ticks += 1
                if pr.snapshot_ticks >= 2 * self.cfg.election_tick:
                    pr.become_probe()  # the transport never reported; retry
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat()

    def _quorum_active(self) -> bool:
        active = 0
        for nid, pr in self.prs.items():
            if nid == self.id:
                if nid in self.voters:
                    active += 1
                continue
            if pr.recent_active and nid in self.voters:
                active += 1
            pr.recent_active = False
        return active >= self._quorum()

    # elections -------------------------------------------------------------------------
    def _has_unapplied_conf_change(self) -> bool:
        if self.log.committed <= self.log.applied:
            return False
        lo = max(self.log.applied + 1, self.log.first_index())
        try:
            ents = self.log.slice(lo, self.log.committed + 1)
        except StorageError:
            return False
        return any(e.type == EntryType.CONF_CHANGE for e in ents)

    def campaign(self, transfer: bool) -> None:
        """Start an election: a PreVote round first unless disabled or a transfer."""
        if self.role == Role.LEADER or not self.promotable:
            return
        if self._has_unapplied_conf_change():
            return
        if not self.cfg.pre_vote or transfer:
            self._start_real_election(CAMPAIGN_TRANSFER if transfer else b"")
            return
        self.become_pre_candidate()
        self.votes[self.id] = True
        if self._tally() == 1:
            self._start_real_election()
            return
        self._request_votes(MT.PRE_VOTE, self.term + 1, b"")

    def _start_real_election(self, ctx: bytes = b"") -> None:
        self.become_candidate()
        self.votes[self.id] = True
        if self._tally() == 1:
            self.become_leader()
            return
        self._request_votes(MT.VOTE, self.term, ctx)

    def _request_votes(self, vote_type: MessageType, term: int, ctx: bytes) -> None:
        for nid in sorted(self.voters):
            if nid != self.id:
                self._send(
                    vote_type,
                    nid,
                    term=term,
                    index=self.log.last_index(),
                    log_term=self.log.last_term(),
                    context=ctx,
                )

    def _tally(self) -> int:
        """1 won, -1 lost, 0 pending."""
        granted = sum(1 for v, g in self.votes.items() if g and v in self.voters)
        rejected = sum(1 for v, g in self.votes.items() if not g and v in self.voters)
        q = self._quorum()
        if granted >= q:
            return 1
        if rejected >= len(self.voters) - q + 1:
            return -1
        return 0

    # stepping --------------------------------------------------------------------------
    def step(self, m: Message) -> None:
        if m.term == 0:
            if m.type == MT.READ_INDEX:
                self._step_read_index(m)
            return
        if m.term > self.term:
            if m.type in (MT.VOTE, MT.PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.cfg.check_quorum
                    and self.lead != NONE
                    and self.election_elapsed < self.cfg.election_tick
                )
                if not force and in_lease:
                    return  # a leader is alive; do not let a disruptive node depose it
            if m.type == MT.PRE_VOTE or (m.type == MT.PRE_VOTE_RESP and not m.reject):
                pass  # pre-votes never change our term
            elif m.type in (MT.APP, MT.HEARTBEAT, MT.SNAP):
                self.become_follower(m.term, m.frm)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and m.type in (
                MT.HEARTBEAT,
                MT.APP,
            ):
                # Tell a stale leader about the newer term so it steps down.
                self._send(MT.APP_RESP, m.frm)
            elif m.type == MT.PRE_VOTE:
                self._send(MT.PRE_VOTE_RESP, m.frm, reject=True)
            return

        if m.type in (MT.VOTE, MT.PRE_VOTE):
            self._step_vote_request(m)
        elif self.role == Role.LEADER:
            self._step_leader(m)
        elif self.role in (Role.CANDIDATE, Role.PRE_CANDIDATE):
            self._step_candidate(m)
        else:
            self._step_follower(m)

    def _step_vote_request(self, m: Message) -> None:
        can_vote = (
            self.vote == m.frm
            or (self.vote == NONE and self.lead == NONE)
            or (m.type == MT.PRE_VOTE and m.term > self.term)
        )
        resp = MT.VOTE_RESP if m.type == MT.VOTE else MT.PRE_VOTE_RESP
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(resp, m.frm, term=m.term)
            if m.type == MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self._send(resp, m.frm, reject=True)

    def _step_candidate(self, m: Message) -> None:
        my_resp = MT.PRE_VOTE_RESP if self.role == Role.PRE_CANDIDATE else MT.VOTE_RESP
        if m.type == MT.APP:
            self.become_follower(m.term, m.frm)
            self._handle_append(m)
        elif m.type == MT.HEARTBEAT:
            self.become_follower(m.term, m.frm)
            self._handle_heartbeat(m)
        elif m.type == MT.SNAP:
            self.become_follower(m.term, m.frm)
            self._handle_snapshot(m)
        elif m.type == my_resp:
            self.votes.setdefault(m.frm, not m.reject)
            result = self._tally()
            if result == 1:
                if self.role == Role.PRE_CANDIDATE:
                    self._start_real_election()
                else:
                    self.become_leader()
                    self.bcast_append()
            elif result == -1:
                self.become_follower(self.term, NONE)

    def _step_follower(self, m: Message) -> None:
        if m.type == MT.APP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_append(m)
        elif m.type == MT.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_heartbeat(m)
        elif m.type == MT.SNAP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_snapshot(m)
        elif m.type == MT.TIMEOUT_NOW:
            if m.frm == self.lead:
                self.campaign(transfer=True)
        elif m.type == MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            self._send(MT.APP_RESP, m.frm, index=self.log.committed)
            return
        last_new = self.log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._send(MT.APP_RESP, m.frm, index=last_new)
            return
        hint = min(m.index, self.log.last_index())
        hint, hint_term = self.log.find_conflict_by_term(hint, m.log_term)
        self._send(
            MT.APP_RESP,
            m.frm,
            index=m.index,
            reject=True,
            reject_hint=hint,
            log_term=hint_term,
        )

    def _handle_heartbeat(self, m: Message) -> None:
        self.log.commit_to(min(m.commit, self.log.last_index()))
        self._send(MT.HEARTBEAT_RESP, m.frm, context=m.context)

    def _handle_snapshot(self, m: Message) -> None:
        assert m.snapshot is not None
        if self._restore(m.snapshot):
            self._send(MT.APP_RESP, m.frm, index=self.log.last_index())
        else:
            self._send(MT.APP_RESP, m.frm, index=self.log.committed)

    def _restore(self, s) -> bool:
        if s.index <= self.log.committed:
            return False
        if self.log.match_term(s.index, s.term):
            self.log.commit_to(s.index)
            return False
        self.log.restore(s)
        self._set_conf(s.metadata.conf_state)
        self.pending_conf_index = 0
        return True

    # leader ----------------------------------------------------------------------------
    def _step_leader(self, m: Message) -> None:
        pr = self.prs.get(m.frm)
        if m.type == MT.READ_INDEX:
            self._step_read_index(m)
            return
        if pr is None:
            return
        if m.type == MT.APP_RESP:
            pr.recent_active = True
            if m.reject:
                probe = m.reject_hint
                if m.log_term > 0:
                    probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
                if pr.maybe_decr_to(m.index, probe):
                    if pr.state == ProgressState.REPLICATE:
                        pr.become_probe()
                    self._send_append(m.frm)
                return
            was_paused = pr.is_paused()
            if pr.maybe_update(m.index):
                if pr.state == ProgressState.PROBE:
                    pr.become_replicate()
                elif pr.state == ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
                    pr.become_probe()
                    pr.become_replicate()
                elif pr.state == ProgressState.REPLICATE:
                    pr.inflights.free_le(m.index)
                if self.maybe_commit():
                    self._on_commit_advanced()
                elif was_paused:
                    self._send_append(m.frm)
                while self._send_append(m.frm, send_if_empty=False):
                    pass
                if m.frm == self.lead_transferee and pr.match == self.log.last_index():
                    self._send(MT.TIMEOUT_NOW, m.frm)
            elif pr.state == ProgressState.SNAPSHOT and m.index >= pr.pending_snapshot:
                pr.become_probe()
                self._send_append(m.frm)
        elif m.type == MT.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state == ProgressState.REPLICATE and pr.inflights.full():
                pr.inflights.free_first_one()
            if pr.match < self.log.last_index():
                self._send_append(m.frm)
            if m.context:
                self._ack_read(m.frm, m.context)

    def report_unreachable(self, nid: int) -> None:
        pr = self.prs.get(nid)
        if self.role == Role.LEADER and pr is not None and pr.state == ProgressState.REPLICATE:
            pr.become_probe()

    def report_snapshot(self, nid: int, ok: bool) -> None:
        pr = self.prs.get(nid)
        if self.role != Role.LEADER or pr is None or pr.state != ProgressState.SNAPSHOT:
            return
        if not ok:
            pr.pending_snapshot = 0
        pr.become_probe()
        pr.probe_sent = True  # wait for a heartbeat response before probing again

    # proposals -------------------------------------------------------------------------
    def propose(self, entries: list[Entry]) -> int:
        """Append entries as leader; returns the index of the last one."""
        if self.role != Role.LEADER:
            raise ProposalDroppedError(f"node {self.id} is not the leader (leader: {self.lead})")
        if self.id not in self.prs:
            raise ProposalDroppedError(f"node {self.id} was removed from the cluster")
        if self.lead_transferee != NONE:
            raise ProposalDroppedError(f"leadership transfer to {self.lead_transferee} in progress")
        for e in entries:
            if e.type == EntryType.CONF_CHANGE:
                if self.pending_conf_index > self.log.applied:
                    raise ProposalDroppedError(
                        "a configuration change is already pending "
                        f"(index {self.pending_conf_index}, applied {self.log.applied})"
                    )
                self._check_conf_change(decode_conf_change(e.data))
        self._append_entries(entries)
        if any(e.type == EntryType.CONF_CHANGE for e in entries):
            self.pending_conf_index = self.log.last_index()
        self.bcast_append()
        return self.log.last_index()

    def _check_conf_change(self, cc: ConfChange) -> None:
        if cc.type == ConfChangeType.ADD_NODE and cc.node_id in self.voters:
            raise ProposalDroppedError(f"node {cc.node_id} is already a voter")
        if cc.type == ConfChangeType.ADD_LEARNER and cc.node_id in self.voters | self.learners:
            raise ProposalDroppedError(f"node {cc.node_id} is already a member")
        if cc.type == ConfChangeType.REMOVE_NODE:
            if cc.node_id not in self.voters | self.learners:
                raise ProposalDroppedError(f"node {cc.node_id} is not a member")
            if self.voters == {cc.node_id}:
                raise ProposalDroppedError("cannot remove the last voter")

    def apply_conf_change_entry(self, e: Entry) -> None:
        """Apply a committed config-change entry (called as it is handed to the app)."""
        if not e.data:
            return
        try:
            cc = decode_conf_change(e.data)
        except RaftCodecError:
            return  # not proposable through propose(); skip defensively
        self.apply_conf_change(cc)

    def apply_conf_change(self, cc: ConfChange) -> None:
        nid = cc.node_id
        if cc.type == ConfChangeType.ADD_NODE:
            self.learners.discard(nid)
            self.voters.add(nid)
        elif cc.type == ConfChangeType.ADD_LEARNER:
            if nid in self.voters:
                return  # demotion is not supported
            self.learners.add(nid)
        elif cc.type == ConfChangeType.REMOVE_NODE:
            if self.voters == {nid}:
                return
            self.voters.discard(nid)
            self.learners.discard(nid)
        if nid in self.voters | self.learners:
            pr = self.prs.get(nid)
            if pr is None:
                pr = Progress(self.log.last_index() + 1, self.cfg.max_inflight_msgs)
                pr.recent_active = True
                self.prs[nid] = pr
            pr.is_learner = nid in self.learners
        else:
            self.prs.pop(nid, None)
        if self.role != Role.LEADER:
            return
        if nid == self.id and cc.type == ConfChangeType.REMOVE_NODE:
            # Hand leadership to a remaining voter rather than just stepping down: the
            # others may not yet know the removal committed, and with one voter left
            # nobody else could win an election without this node's help.
            self._hand_off()
            return
        if self.lead_transferee == nid and nid not in self.voters:
            self.lead_transferee = NONE
        if self.maybe_commit():
            self._on_commit_advanced()

    # leadership transfer ----------------------------------------------------------------
    @property
    def leaving(self) -> bool:
        """Leader that applied its own removal and is handing leadership over."""
        return self.role == Role.LEADER and self.id not in self.voters

    def _hand_off(self) -> None:
        if self.lead_transferee != NONE:
            return
        others = [v for v in self.voters if v != self.id and v in self.prs]
        if not others:
            self.become_follower(self.term, NONE)
            return
        target = max(others, key=lambda v: (self.prs[v].match, -v))
        self.lead_transferee = target
        self.election_elapsed = 0
        if self.prs[target].match == self.log.last_index():
            self._send(MT.TIMEOUT_NOW, target)
        else:
            self._send_append(target)

    def transfer_leader(self, to: int) -> None:
        if self.role != Role.LEADER:
            raise ProposalDroppedError(f"node {self.id} is not the leader")
        if to == self.id or to not in self.voters:
            raise ProposalDroppedError(f"cannot transfer leadership to {to}: not another voter")
        if self.lead_transferee == to:
            return
        self.lead_transferee = to
        self.election_elapsed = 0  # the transfer must finish within one election timeout
        if self.prs[to].match == self.log.last_index():
            self._send(MT.TIMEOUT_NOW, to)
        else:
            self._send_append(to)

    # reads -----------------------------------------------------------------------------
    def read_index(self, ctx: bytes) -> None:
        if not ctx:
            raise ValueError("read_index needs a non-empty, unique request context")
        if self.leaving:
            raise ProposalDroppedError(f"node {self.id} was removed and is handing off")
        if self.role == Role.LEADER:
            self._leader_read(ctx, self.id)
        elif self.lead != NONE:
            self.msgs.append(Message(type=MT.READ_INDEX, to=self.lead, frm=self.id, term=0, context=ctx))
        else:
            raise ProposalDroppedError("no leader known; cannot serve a read index")

    def _step_read_index(self, m: Message) -> None:
        if self.role == Role.LEADER and not self.leaving and m.frm in self.prs and m.context:
            self._leader_read(m.context, m.frm)

    def _committed_in_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    def _leader_read(self, ctx: bytes, frm: int) -> None:
        if not self._committed_in_term():
            self._pending_reads.append((ctx, frm))
            return
        self._start_read(ctx, frm)

    def _start_read(self, ctx: bytes, frm: int) -> None:
        idx = self.log.committed
        if self.cfg.read_only_lease or self.voters == {self.id}:
            self._release_read(_ReadRequest(ctx, idx, frm, set()))
            return
        self._reads.append(_ReadRequest(ctx, idx, frm, {self.id}))
        self._bcast_heartbeat(ctx)

    def _ack_read(self, frm: int, ctx: bytes) -> None:
        for i, req in enumerate(self._reads):
            if req.ctx == ctx:
                req.acks.add(frm)
                if len(req.acks & self.voters) >= self._quorum():
                    done, self._reads = self._reads[: i + 1], self._reads[i + 1 :]
                    for r in done:
                        self._release_read(r)
                return

    def _release_read(self, req: _ReadRequest) -> None:
        if req.frm == self.id:
            self.read_states.append(ReadState(req.index, req.ctx))
        else:
            self._send(MT.READ_INDEX_RESP, req.frm, index=req.index, context=req.ctx)
