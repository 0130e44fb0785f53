"""RawNode API contract: the Ready/advance cycle, proposals, restarts, config, reads."""

from __future__ import annotations

import pytest
from raft_sim import Cluster

from heddle.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    Entry,
    EntryType,
    HardState,
    MemoryStorage,
    ProposalDroppedError,
    RaftError,
    RawNode,
    Role,
    encode_conf_change,
)
from heddle.raft.progress import ProgressState


def drive(node: RawNode, storage: MemoryStorage) -> list[Entry]:
    applied: list[Entry] = []
    while node.has_ready():
        rd = node.ready()
        storage.save(rd.hard_state, rd.entries, rd.snapshot)
        applied.extend(rd.committed_entries)
        node.advance(rd)
    return applied


def test_single_node_elects_itself_and_commits_only_after_persisting():
    s = MemoryStorage()
    n = RawNode(Config(id=1, peers=[1]), s)
    n.campaign()
    assert n.role == Role.LEADER
    idx = n.propose(b"hello")
    rd = n.ready()
    assert [e.index for e in rd.entries] == [1, idx]
    assert rd.committed_entries == []  # nothing is durable yet
    assert rd.hard_state == HardState(1, 1, 0)
    s.save(rd.hard_state, rd.entries, rd.snapshot)
    n.advance(rd)
    applied = drive(n, s)
    assert [e.data for e in applied] == [b"", b"hello"]
    assert s.hard_state.commit == idx


def test_ready_and_advance_must_alternate():
    s = MemoryStorage()
    n = RawNode(Config(id=1, peers=[1]), s)
    n.campaign()
    rd = n.ready()
    with pytest.raises(RaftError, match="before advance"):
        n.ready()
    n.advance(rd)
    with pytest.raises(RaftError, match="without a ready"):
        n.advance(rd)


def test_followers_refuse_proposals_transfers_and_reads_without_leader():
    n = RawNode(Config(id=1, peers=[1, 2, 3]), MemoryStorage())
    with pytest.raises(ProposalDroppedError, match="not the leader"):
        n.propose(b"x")
    with pytest.raises(ProposalDroppedError):
        n.transfer_leader(2)
    with pytest.raises(ProposalDroppedError, match="no leader"):
        n.read_index(b"r")


def test_config_is_validated():
    with pytest.raises(ValueError, match="id"):
        Config(id=0).validate()
    with pytest.raises(ValueError, match="election_tick"):
        RawNode(Config(id=1, election_tick=1, heartbeat_tick=1), MemoryStorage())
    with pytest.raises(ValueError, match="lease"):
        Config(id=1, read_only_lease=True, check_quorum=False).validate()


def test_invalid_conf_changes_are_refused():
    s = MemoryStorage()
    n = RawNode(Config(id=1, peers=[1]), s)
    n.campaign()
    drive(n, s)
    with pytest.raises(ProposalDroppedError, match="already a voter"):
        n.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 1))
    with pytest.raises(ProposalDroppedError, match="last voter"):
        n.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))
    with pytest.raises(ProposalDroppedError, match="not a member"):
        n.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 7))


def test_leader_never_commits_an_old_term_entry_by_counting_replicas():
    # Raft paper, figure 8: only entries of the leader's own term commit by counting.
    s = MemoryStorage()
    s.append([Entry(1, 1), Entry(2, 2, data=b"old")])
    s.set_hard_state(HardState(term=2, vote=0, commit=1))
    n = RawNode(Config(id=1, peers=[1, 2, 3]), s)
    r = n.raft
    r.become_candidate()
    r.become_leader()  # term 3, appends an empty entry at index 3
    drive(n, s)
    r.prs[2].match = 2
    assert not r.maybe_commit()
    assert r.log.committed == 1
    r.prs[2].match = 3
    assert r.maybe_commit() and r.log.committed == 3


def test_restart_with_applied_index_replays_committed_conf_changes():
    s = MemoryStorage()
    cc = encode_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    s.append([Entry(1, 1), Entry(1, 2, EntryType.CONF_CHANGE, cc), Entry(1, 3)])
    s.set_hard_state(HardState(1, 1, 3))
    n = RawNode(Config(id=1, peers=[1, 2, 3], applied=3), s)
    assert n.conf_state.learners == (4,)
    assert not n.has_ready() or not n.ready().committed_entries
    fresh = RawNode(Config(id=1, peers=[1, 2, 3]), s)  # applied=0: entries are re-delivered
    rd = fresh.ready()
    assert [e.index for e in rd.committed_entries] == [1, 2, 3]
    fresh.advance(rd)
    assert fresh.conf_state.learners == (4,)


def test_hard_state_commit_outside_log_is_rejected():
    s = MemoryStorage()
    s.set_hard_state(HardState(1, 0, 5))
    with pytest.raises(RaftError, match="outside log"):
        RawNode(Config(id=1, peers=[1]), s)


def test_lease_read_is_answered_without_a_heartbeat_round():
    c = Cluster(3, seed=31, read_only_lease=True)
    ld = c.wait_leader()
    ld.node.read_index(b"lease")
    assert [r.request_ctx for r in ld.node.raft.read_states] == [b"lease"]


def test_report_unreachable_and_snapshot_move_progress_to_probe():
    c = Cluster(3, seed=32)
    ld = c.wait_leader()
    c.commit_on_all(b"x")
    peer = next(i for i in ld.node.raft.prs if i != ld.id)
    pr = ld.node.raft.prs[peer]
    assert pr.state == ProgressState.REPLICATE
    ld.node.report_unreachable(peer)
    assert pr.state == ProgressState.PROBE
    pr.become_snapshot(5)
    ld.node.report_snapshot(peer, ok=False)
    assert pr.state == ProgressState.PROBE and pr.probe_sent


def test_soft_state_in_ready_reports_leader_and_role():
    s = MemoryStorage()
    n = RawNode(Config(id=1, peers=[1]), s)
    n.campaign()
    rd = n.ready()
    assert rd.soft_state.lead == 1 and rd.soft_state.role == Role.LEADER
    assert rd.must_sync
    n.advance(rd)
    assert n.status()["role"] == "LEADER"
