"""Deterministic simulation of a heddle.raft cluster, with Raft safety checkers.

Everything is driven by one seeded ``random.Random``: message drops, delays,
duplicates, reordering, partitions and crashes replay exactly for a given seed.
A crash keeps only what the node handed to its storage's save().
"""

from __future__ import annotations

import hashlib
import heapq
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from heddle.raft import (
    Config,
    Entry,
    EntryType,
    MemoryStorage,
    ProposalDroppedError,
    RawNode,
    Role,
    decode_message,
    encode_message,
)
from heddle.raft.types import ConfChange, Message


class InvariantViolation(AssertionError):
    """A Raft safety property does not hold."""


class LivenessFailure(AssertionError):
    """The cluster did not make progress once the faults were healed."""


# state machine -----------------------------------------------------------------------


class DigestStateMachine:
    """Applies entries into a running hash; its snapshot is (index, digest)."""

    def __init__(self) -> None:
        self.index = 0
        self.digest = b"\0" * 32
        self.data: list[bytes] = []  # normal entries' payloads applied in this incarnation

    def apply(self, e: Entry) -> None:
        if e.index != self.index + 1:
            raise InvariantViolation(f"applied index {e.index} after {self.index}")
        h = hashlib.sha256(self.digest)
        h.update(struct.pack(">QQB", e.term, e.index, e.type))
        h.update(e.data)
        self.digest = h.digest()
        self.index = e.index
        if e.type == EntryType.NORMAL and e.data:
            self.data.append(e.data)

    def snapshot_data(self) -> bytes:
        return struct.pack(">Q", self.index) + self.digest

    def restore(self, data: bytes) -> None:
        (self.index,) = struct.unpack(">Q", data[:8])
        self.digest = data[8:]


# invariants --------------------------------------------------------------------------


class InvariantChecker:
    """Global observer of a run; raises InvariantViolation at the first broken property."""

    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}  # term -> leader id (election safety)
        self.committed: dict[int, tuple[int, int]] = {}  # index -> (entry term, commit term)
        self.digests: dict[int, bytes] = {}  # index -> state machine digest after it
        self.applied: dict[int, tuple[int, int, bytes]] = {}  # index -> (term, type, data)
        self._checked: set[tuple[int, int]] = set()

    def on_leader(self, nid: int, raft) -> None:
        term = raft.term
        other = self.leaders.setdefault(term, nid)
        if other != nid:
            raise InvariantViolation(f"election safety: nodes {other} and {nid} lead term {term}")
        if (nid, term) in self._checked:
            return
        self._checked.add((nid, term))
        first = raft.log.first_index()
        for i, (t, ct) in self.committed.items():
            if ct < term and i >= first and raft.log.term(i) != t:
                raise InvariantViolation(
                    f"leader completeness: leader {nid} of term {term} lacks entry {i} "
                    f"(term {t}) committed in term {ct}; has term {raft.log.term(i)}"
                )

    def on_commit(self, nid: int, raft, lo: int, hi: int) -> None:
        for i in range(lo, hi + 1):
            t = raft.log.term(i)
            if t is None:
                continue
            prev = self.committed.setdefault(i, (t, raft.term))
            if prev[0] != t:
                raise InvariantViolation(
                    f"committed entry {i} has term {prev[0]}, leader {nid} committed term {t}"
                )

    def on_apply(self, nid: int, e: Entry, digest: bytes) -> None:
        key = (e.term, int(e.type), e.data)
        prev = self.applied.setdefault(e.index, key)
        if prev != key:
            raise InvariantViolation(
                f"state machine safety: node {nid} applied {key} at {e.index}, another {prev}"
            )
        self._digest(nid, e.index, digest)

    def on_snapshot(self, nid: int, index: int, digest: bytes) -> None:
        self._digest(nid, index, digest)

    def _digest(self, nid: int, index: int, digest: bytes) -> None:
        prev = self.digests.setdefault(index, digest)
        if prev != digest:
            raise InvariantViolation(
                f"state machine safety: node {nid} state at {index} differs from another node"
            )

    def check_log_matching(self, logs: dict[int, dict[int, tuple[int, bytes]]]) -> None:
        """Logs given as node -> {index: (term, data)}; same (index, term) => same prefix."""
        ids = sorted(logs)
        for n, a in enumerate(ids):
            la = logs[a]
            for b in ids[n + 1 :]:
                lb = logs[b]
                common = sorted(set(la) & set(lb))
                agree = False
                for i in reversed(common):
                    if not agree and la[i][0] == lb[i][0]:
                        agree = True
                    if agree and la[i] != lb[i]:
                        raise InvariantViolation(
                            f"log matching: nodes {a} and {b} share a later (index, term) "
                            f"but differ at index {i}: {la[i]} vs {lb[i]}"
                        )


def raft_log_view(raft) -> dict[int, tuple[int, bytes]]:
    log = raft.log
    first, last = log.first_index(), log.last_index()
    return {e.index: (e.term, e.data) for e in log.slice(first, last + 1)} if last >= first else {}


# network and nodes -------------------------------------------------------------------


@dataclass
class NetConfig:
    drop: float = 0.0
    duplicate: float = 0.0
    max_delay: int = 0  # ticks; random delays reorder messages


@dataclass
class SimNode:
    id: int
    storage: MemoryStorage
    node: RawNode | None = None
    sm: DigestStateMachine = field(default_factory=DigestStateMachine)
    seen_commit: int = 0
    restarts: int = 0

    @property
    def alive(self) -> bool:
        return self.node is not None


class Cluster:
    """N RawNodes over a seeded, faulty, in-process network."""

    def __init__(
        self,
        n: int = 3,
        seed: int = 0,
        net: NetConfig | None = None,
        learners: tuple[int, ...] = (),
        snapshot_interval: int = 0,
        crash_in_ready: float = 0.0,
        storage_factory: Callable[[int], MemoryStorage] | None = None,
        check_logs_every: int = 10,
        raw_node_factory: Callable[[Config, MemoryStorage], RawNode] = RawNode,
        **config_kw,
    ) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.net = net or NetConfig()
        self.peers = list(range(1, n + 1))
        self.bootstrap_learners = list(learners)
        self.snapshot_interval = snapshot_interval
        self.crash_in_ready = crash_in_ready
        self.storage_factory = storage_factory or (lambda nid: MemoryStorage())
        self.config_kw = config_kw
        self.raw_node_factory = raw_node_factory
        self.check_logs_every = check_logs_every
        self.checker = InvariantChecker()
        self.time = 0
        self.groups: dict[int, int] | None = None
        self._queue: list[tuple[int, float, int, int, bytes]] = []
        self._seq = 0
        self.sent: list[bytes] = []  # every encoded message, for replay tests
        self.record_sent = False
        self.delivered = 0
        self.nodes: dict[int, SimNode] = {}
        for nid in self.peers + self.bootstrap_learners:
            self.add_node(nid)

    # membership of the simulation --------------------------------------------------------
    def config(self, nid: int) -> Config:
        return Config(
            id=nid,
            peers=list(self.peers),
            learners=list(self.bootstrap_learners),
            seed=self.seed * 1000 + nid * 31 + self.nodes[nid].restarts,
            **self.config_kw,
        )

    def add_node(self, nid: int) -> SimNode:
        """Start a process for nid (a new member must also be added with a conf change)."""
        sn = SimNode(nid, self.storage_factory(nid))
        self.nodes[nid] = sn
        sn.node = self.raw_node_factory(self.config(nid), sn.storage)
        return sn

    def crash(self, nid: int) -> None:
        sn = self.nodes[nid]
        sn.node = None

    def restart(self, nid: int) -> None:
        sn = self.nodes[nid]
        if sn.alive:
            return
        sn.restarts += 1
        if hasattr(sn.storage, "reopen"):
            sn.storage = sn.storage.reopen()
        sn.sm = DigestStateMachine()
        snap = sn.storage.snapshot()
        if not snap.is_empty():
            sn.sm.restore(snap.data)
        sn.node = self.raw_node_factory(self.config(nid), sn.storage)
        sn.seen_commit = sn.node.committed
        self._process(sn)

    def partition(self, *groups: list[int] | tuple[int, ...]) -> None:
        self.groups = {nid: g for g, members in enumerate(groups) for nid in members}

    def heal(self) -> None:
        self.groups = None

    def can_talk(self, a: int, b: int) -> bool:
        if self.groups is None:
            return True
        return self.groups.get(a, -1) == self.groups.get(b, -2)

    # driving ---------------------------------------------------------------------------
    def alive(self) -> list[SimNode]:
        return [sn for sn in self.nodes.values() if sn.alive]

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.time += 1
            order = self.alive()
            self.rng.shuffle(order)
            for sn in order:
                if sn.node is None:
                    continue
                sn.node.tick()
                self._observe(sn)
                self._process(sn)
            self._deliver_due()
            if self.check_logs_every and self.time % self.check_logs_every == 0:
                self.check_logs()

    def _send(self, m: Message) -> None:
        raw = encode_message(m)
        if self.record_sent:
            self.sent.append(raw)
        if not self.can_talk(m.frm, m.to) or self.rng.random() < self.net.drop:
            return
        copies = 2 if self.rng.random() < self.net.duplicate else 1
        for _ in range(copies):
            delay = self.rng.randint(0, self.net.max_delay) if self.net.max_delay else 0
            self._seq += 1
            heapq.heappush(self._queue, (self.time + delay, self.rng.random(), m.frm, m.to, raw))

    def inject(self, raw: bytes) -> None:
        """Deliver raw bytes as if received from the network (for replay tests)."""
        m = decode_message(raw)
        sn = self.nodes.get(m.to)
        if sn is None or sn.node is None:
            return
        sn.node.step(m)
        self._observe(sn)
        self._process(sn)

    def _deliver_due(self) -> None:
        budget = 200_000
        while self._queue and self._queue[0][0] <= self.time:
            budget -= 1
            if budget == 0:
                raise LivenessFailure("message storm: too many deliveries in one tick")
            _, _, frm, to, raw = heapq.heappop(self._queue)
            sn = self.nodes.get(to)
            if sn is None or sn.node is None or not self.can_talk(frm, to):
                continue
            self.delivered += 1
            sn.node.step(decode_message(raw))
            self._observe(sn)
            self._process(sn)

    def _process(self, sn: SimNode) -> None:
        while sn.node is not None and sn.node.has_ready():
            node = sn.node
            rd = node.ready()
            sn.storage.save(rd.hard_state, rd.entries, rd.snapshot)
            if self.crash_in_ready and self.rng.random() < self.crash_in_ready:
                self.crash(sn.id)  # persisted, but nothing sent or applied
                return
            for m in rd.messages:
                self._send(m)
            if rd.snapshot is not None:
                sn.sm.restore(rd.snapshot.data)
                self.checker.on_snapshot(sn.id, sn.sm.index, sn.sm.digest)
            for e in rd.committed_entries:
                sn.sm.apply(e)
                self.checker.on_apply(sn.id, e, sn.sm.digest)
            node.advance(rd)
            self._observe(sn)
            self._maybe_snapshot(sn)

    def _maybe_snapshot(self, sn: SimNode) -> None:
        if not self.snapshot_interval or sn.node is None:
            return
        if sn.sm.index - sn.storage.snapshot().index >= self.snapshot_interval:
            sn.storage.create_snapshot(sn.sm.index, sn.node.conf_state, sn.sm.snapshot_data())
            sn.storage.compact(sn.sm.index)

    def _observe(self, sn: SimNode) -> None:
        node = sn.node
        if node is None:
            return
        r = node.raft
        if r.role == Role.LEADER:
            self.checker.on_leader(sn.id, r)
            if r.log.committed > sn.seen_commit:
                self.checker.on_commit(sn.id, r, sn.seen_commit + 1, r.log.committed)
        sn.seen_commit = r.log.committed

    def check_logs(self) -> None:
        self.checker.check_log_matching({sn.id: raft_log_view(sn.node.raft) for sn in self.alive()})

    # client operations -----------------------------------------------------------------
    def leader(self) -> SimNode | None:
        best = None
        for sn in self.alive():
            if sn.node.role == Role.LEADER and (best is None or sn.node.term > best.node.term):
                best = sn
        return best

    def propose(self, data: bytes) -> int | None:
        sn = self.leader()
        if sn is None:
            return None
        try:
            idx = sn.node.propose(data)
        except ProposalDroppedError:
            return None
        self._process(sn)
        return idx

    def propose_conf_change(self, cc: ConfChange) -> int | None:
        sn = self.leader()
        if sn is None:
            return None
        try:
            idx = sn.node.propose_conf_change(cc)
        except ProposalDroppedError:
            return None
        self._process(sn)
        return idx

    def transfer_leader(self, to: int) -> bool:
        sn = self.leader()
        if sn is None:
            return False
        try:
            sn.node.transfer_leader(to)
        except ProposalDroppedError:
            return False
        self._process(sn)
        return True

    def run_until(self, cond: Callable[[], bool], max_ticks: int) -> int:
        """Tick until cond() holds; returns ticks used or raises LivenessFailure."""
        for t in range(max_ticks + 1):
            if cond():
                return t
            self.tick()
        raise LivenessFailure(f"condition not met within {max_ticks} ticks (seed {self.seed})")

    def wait_leader(self, max_ticks: int = 200) -> SimNode:
        self.run_until(lambda: self._stable_leader() is not None, max_ticks)
        sn = self._stable_leader()
        assert sn is not None
        return sn

    def _stable_leader(self) -> SimNode | None:
        sn = self.leader()
        if sn is None:
            return None
        r = sn.node.raft
        return sn if r.log.term(r.log.committed) == r.term else None

    def members(self) -> list[SimNode]:
        """Alive nodes that the leader's configuration includes."""
        ld = self.leader()
        ids = set(ld.node.raft.prs) if ld else set(self.nodes)
        return [sn for sn in self.alive() if sn.id in ids]

    def commit_on_all(self, data: bytes, max_ticks: int = 300, among: list[int] | None = None) -> None:
        """Propose data (retrying across leader changes) until every member applied it."""
        deadline = self.time + max_ticks
        proposed_at: int | None = None
        while self.time < deadline:
            group = [sn for sn in self.members() if among is None or sn.id in among]
            if all(data in sn.sm.data for sn in group):
                return
            if proposed_at is None or self.time - proposed_at > 40:
                if self.propose(data) is not None:
                    proposed_at = self.time
            self.tick()
        raise LivenessFailure(f"{data!r} not applied on all members (seed {self.seed})")

    def heal_all(self) -> None:
        """Remove every fault: heal partitions, restart crashed nodes, reliable network."""
        self.heal()
        self.net = NetConfig()
        self.crash_in_ready = 0.0
        for nid, sn in self.nodes.items():
            if not sn.alive:
                self.restart(nid)


# random fault schedules --------------------------------------------------------------

Event = tuple


def random_schedule(rng: random.Random, n: int, length: int) -> list[Event]:
    """A random list of (ticks_before, event) pairs for run_schedule."""
    out: list[Event] = []
    for _ in range(length):
        wait = rng.randint(0, 15)
        k = rng.random()
        if k < 0.30:
            ev: tuple = ("propose", rng.randint(1, 4))
        elif k < 0.45:
            ids = list(range(1, n + 1))
            rng.shuffle(ids)
            cut = rng.randint(1, n - 1)
            ev = ("partition", tuple(sorted(ids[:cut])), tuple(sorted(ids[cut:])))
        elif k < 0.55:
            ev = ("heal",)
        elif k < 0.65:
            ev = ("crash", rng.randint(1, n))
        elif k < 0.75:
            ev = ("restart", rng.randint(1, n))
        elif k < 0.90:
            ev = (
                "net",
                rng.choice([0.0, 0.05, 0.2, 0.4]),
                rng.choice([0.0, 0.1, 0.3]),
                rng.choice([0, 1, 3, 6]),
            )
        else:
            ev = ("transfer", rng.randint(1, n))
        out.append((wait, ev))
    return out


def run_schedule(
    n: int,
    events: list[Event],
    seed: int,
    snapshot_interval: int = 0,
    crash_in_ready: float = 0.0,
    liveness: bool = True,
    load: float = 0.3,
    **config_kw,
) -> Cluster:
    """Run a fault schedule, checking safety throughout and liveness after healing."""
    c = Cluster(
        n,
        seed=seed,
        snapshot_interval=snapshot_interval,
        crash_in_ready=crash_in_ready,
        election_tick=config_kw.pop("election_tick", 6),
        **config_kw,
    )
    counter = 0
    for wait, ev in events:
        for _ in range(wait):
            c.tick()
            if load and c.rng.random() < load:  # background client traffic
                counter += 1
                c.propose(b"v%d" % counter)
        kind = ev[0]
        if kind == "propose":
            for _ in range(ev[1]):
                counter += 1
                c.propose(b"v%d" % counter)
        elif kind == "partition":
            c.partition(ev[1], ev[2])
        elif kind == "heal":
            c.heal()
        elif kind == "crash":
            c.crash(ev[1])
        elif kind == "restart":
            c.restart(ev[1])
        elif kind == "net":
            c.net = NetConfig(drop=ev[1], duplicate=ev[2], max_delay=ev[3])
        elif kind == "transfer":
            c.transfer_leader(ev[1])
        else:
            raise ValueError(f"unknown event {ev!r}")
    c.tick(5)
    c.check_logs()
    if liveness:
        c.heal_all()
        c.wait_leader(max_ticks=400)
        c.commit_on_all(b"final", max_ticks=400)
        c.check_logs()
    return c
