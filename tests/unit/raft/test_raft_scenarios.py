"""Scripted scenarios on the simulated cluster: each pins one Raft behaviour."""

from __future__ import annotations

import pytest
from raft_sim import Cluster, NetConfig

from heddle.raft import (
    ConfChange,
    ConfChangeType,
    InvalidMessageError,
    Message,
    MessageType,
    ProposalDroppedError,
    Role,
    decode_message,
)


def test_election_elects_exactly_one_leader_and_commits_proposals():
    c = Cluster(3, seed=1)
    ld = c.wait_leader(100)
    assert [sn.id for sn in c.alive() if sn.node.role == Role.LEADER] == [ld.id]
    assert {sn.node.leader for sn in c.alive()} == {ld.id}
    for i in range(5):
        c.commit_on_all(b"p%d" % i)
    for sn in c.alive():
        assert sn.sm.data == [b"p0", b"p1", b"p2", b"p3", b"p4"]


def test_randomized_election_timeout_is_seeded_and_in_range():
    c1, c2 = Cluster(5, seed=7), Cluster(5, seed=7)
    t1 = [sn.node.raft.randomized_election_timeout for sn in c1.alive()]
    t2 = [sn.node.raft.randomized_election_timeout for sn in c2.alive()]
    assert t1 == t2
    assert all(10 <= t < 20 for t in t1)


def test_same_seed_replays_identically():
    def run(seed):
        c = Cluster(5, seed=seed, net=NetConfig(drop=0.2, duplicate=0.2, max_delay=3))
        c.wait_leader(300)
        for i in range(10):
            c.propose(b"x%d" % i)
            c.tick(3)
        return c.delivered, {sn.id: sn.sm.digest for sn in c.alive()}, c.time

    assert run(11) == run(11)


def test_prevote_isolated_node_does_not_inflate_term_or_disrupt_leader():
    c = Cluster(3, seed=2)
    ld = c.wait_leader()
    term = ld.node.term
    lonely = next(sn for sn in c.alive() if sn is not ld)
    c.partition([lonely.id], [sn.id for sn in c.alive() if sn is not lonely])
    c.tick(100)
    assert lonely.node.term == term  # pre-votes never won, so no term bump
    assert lonely.node.role == Role.PRE_CANDIDATE or lonely.node.role == Role.FOLLOWER
    c.heal()
    c.tick(30)
    assert c.leader() is ld and ld.node.term == term


def test_without_prevote_isolated_node_disrupts_leader_on_rejoin():
    c = Cluster(3, seed=2, pre_vote=False, check_quorum=False)
    ld = c.wait_leader()
    term = ld.node.term
    lonely = next(sn for sn in c.alive() if sn is not ld)
    c.partition([lonely.id], [sn.id for sn in c.alive() if sn is not lonely])
    c.tick(100)
    assert lonely.node.term > term + 2
    c.heal()
    c.tick(50)
    assert c.wait_leader().node.term > term  # the stale term forced a new election


def test_check_quorum_leader_steps_down_when_isolated():
    c = Cluster(5, seed=3)
    old = c.wait_leader()
    c.partition([old.id], [sn.id for sn in c.alive() if sn is not old])
    c.tick(2 * 10 + 1)
    assert old.node.role == Role.FOLLOWER
    new = c.wait_leader()
    assert new is not old and new.node.term > old.node.term
    c.heal()
    c.commit_on_all(b"after-heal")
    assert old.node.leader == new.id


def test_check_quorum_lease_ignores_vote_from_disruptive_node():
    c = Cluster(3, seed=4)
    ld = c.wait_leader()
    other = next(sn for sn in c.alive() if sn is not ld)
    follower = next(sn for sn in c.alive() if sn not in (ld, other))
    msg = Message(
        MessageType.VOTE,
        to=follower.id,
        frm=other.id,
        term=ld.node.term + 5,
        index=100,
        log_term=ld.node.term + 4,
    )
    follower.node.step(msg)
    assert follower.node.term == ld.node.term and follower.node.leader == ld.id


def test_log_repair_overwrites_uncommitted_entries_of_deposed_leader():
    c = Cluster(5, seed=5)
    old = c.wait_leader()
    c.commit_on_all(b"base")
    buddy = next(sn for sn in c.alive() if sn is not old)
    minority = [old.id, buddy.id]
    c.partition(minority, [sn.id for sn in c.alive() if sn.id not in minority])
    for i in range(5):
        old.node.propose(b"lost%d" % i)
        c._process(old)
    c.tick(3)
    assert buddy.node.raft.log.last_index() >= old.node.raft.log.last_index() - 1
    c.tick(25)
    new = c.wait_leader()
    assert new.id not in minority
    majority = [sn.id for sn in c.alive() if sn.id not in minority]
    for i in range(3):
        c.commit_on_all(b"won%d" % i, among=majority)
    c.heal()
    c.commit_on_all(b"healed")
    c.check_logs()
    for sn in c.alive():
        assert not any(d.startswith(b"lost") for d in sn.sm.data)
        assert sn.sm.data == [b"base", b"won0", b"won1", b"won2", b"healed"]
    assert old.node.raft.log.last_index() == new.node.raft.log.last_index()


def test_follower_far_behind_is_repaired_by_fast_backtracking():
    c = Cluster(3, seed=6)
    c.wait_leader()
    slow = next(sn for sn in c.alive() if c.leader() is not sn)
    c.crash(slow.id)
    for i in range(60):
        c.propose(b"e%d" % i)
        c.tick()
    c.restart(slow.id)
    c.commit_on_all(b"done")
    assert slow.sm.data[-1] == b"done" and len(slow.sm.data) == 61


def test_snapshot_install_catches_up_a_node_whose_entries_were_compacted():
    c = Cluster(3, seed=7, snapshot_interval=5)
    c.record_sent = True
    ld = c.wait_leader()
    lag = next(sn for sn in c.alive() if sn is not ld)
    c.crash(lag.id)
    for i in range(30):
        c.propose(b"s%d" % i)
        c.tick()
    assert ld.storage.first_index() > lag.storage.last_index() + 1
    c.restart(lag.id)
    c.commit_on_all(b"post-snapshot")
    snaps = [decode_message(r) for r in c.sent]
    assert any(m.type == MessageType.SNAP and m.to == lag.id for m in snaps)
    assert lag.storage.snapshot().index > 0
    assert lag.sm.digest == ld.sm.digest and lag.sm.index == ld.sm.index


def test_membership_add_learner_promote_and_remove_leader():
    c = Cluster(3, seed=8)
    ld = c.wait_leader()
    c.add_node(4)
    assert c.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4)) is not None
    # a second change must wait until the first one is applied
    with pytest.raises(ProposalDroppedError):
        ld.node.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 5))
    c.commit_on_all(b"learner-added")
    n4 = c.nodes[4]
    assert n4.node.conf_state.learners == (4,)
    assert b"learner-added" in n4.sm.data
    assert not n4.node.raft.promotable  # learners never campaign
    c.run_until(lambda: c.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4)), 50)
    c.commit_on_all(b"promoted")
    assert c.leader().node.conf_state.voters == (1, 2, 3, 4)
    assert n4.node.raft.promotable
    ld = c.leader()
    old_id = ld.id
    c.run_until(lambda: c.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, old_id)), 50)
    c.run_until(lambda: ld.node.role != Role.LEADER, 50)  # removed leader steps down
    c.crash(old_id)
    c.commit_on_all(b"after-removal")
    new = c.leader()
    assert new.id != old_id
    assert old_id not in new.node.conf_state.voters
    assert len(new.node.conf_state.voters) == 3


def test_membership_survives_restart_by_replaying_committed_conf_changes():
    c = Cluster(3, seed=9)
    c.wait_leader()
    c.add_node(4)
    c.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))
    c.commit_on_all(b"four-voters")
    for nid in list(c.nodes):
        c.crash(nid)
    for nid in list(c.nodes):
        c.restart(nid)
    c.commit_on_all(b"restarted")
    assert all(sn.node.conf_state.voters == (1, 2, 3, 4) for sn in c.alive())


def test_leader_transfer_hands_over_quickly_and_drops_proposals_meanwhile():
    c = Cluster(3, seed=10)
    ld = c.wait_leader()
    c.commit_on_all(b"x")
    target = next(sn for sn in c.alive() if sn is not ld)
    term = ld.node.term
    ld.node.transfer_leader(target.id)
    with pytest.raises(ProposalDroppedError):
        ld.node.propose(b"during-transfer")
    c._process(ld)
    c.tick(2)
    assert c.leader() is target and target.node.term == term + 1
    c.commit_on_all(b"after-transfer")


def test_leader_transfer_to_lagging_node_first_catches_it_up():
    c = Cluster(3, seed=12, max_inflight_msgs=4)
    ld = c.wait_leader()
    target = next(sn for sn in c.alive() if sn is not ld)
    c.partition([target.id], [sn.id for sn in c.alive() if sn is not target])
    for i in range(10):
        c.propose(b"t%d" % i)
    c.tick(1)
    c.heal()
    c.transfer_leader(target.id)
    c.run_until(lambda: c.leader() is target, 20)
    assert target.node.raft.log.last_index() >= ld.node.raft.log.last_index() - 1


def test_read_index_on_leader_and_follower():
    c = Cluster(3, seed=13)
    ld = c.wait_leader()
    c.commit_on_all(b"w")
    ld.node.read_index(b"r1")
    got = []
    orig = c._process

    def spy(sn):
        if sn.node is not None and sn.node.has_ready():
            rs = sn.node.raft.read_states
            got.extend((sn.id, r.index, r.request_ctx) for r in rs)
        orig(sn)

    c._process = spy
    c._process(ld)
    c.tick(2)
    follower = next(sn for sn in c.alive() if sn is not ld)
    follower.node.read_index(b"r2")
    c._process(follower)
    c.tick(2)
    assert (ld.id, ld.node.committed, b"r1") in got
    assert any(nid == follower.id and ctx == b"r2" for nid, _, ctx in got)


def test_read_index_is_not_served_by_an_isolated_leader():
    c = Cluster(3, seed=14)
    ld = c.wait_leader()
    c.partition([ld.id], [sn.id for sn in c.alive() if sn is not ld])
    ld.node.read_index(b"stale?")
    c._process(ld)
    c.tick(5)
    assert not ld.node.raft.read_states


def test_flow_control_limits_appends_in_flight():
    c = Cluster(3, seed=15, max_inflight_msgs=2, max_size_per_msg=1)
    ld = c.wait_leader()
    c.commit_on_all(b"warm")
    c.net = NetConfig(max_delay=0)
    c.partition([ld.id], [sn.id for sn in c.alive() if sn is not ld])  # acks never arrive
    sent = []
    real_send = c._send
    c._send = lambda m: (sent.append(m), real_send(m))
    for i in range(10):
        ld.node.propose(b"f%d" % i)
        c._process(ld)
    apps = [m for m in sent if m.type == MessageType.APP]
    per_peer = {m.to: 0 for m in apps}
    for m in apps:
        per_peer[m.to] += 1
    assert per_peer and all(v <= 2 for v in per_peer.values()), per_peer


def test_step_rejects_misaddressed_messages():
    c = Cluster(3, seed=16)
    sn = c.nodes[1]
    with pytest.raises(InvalidMessageError):
        sn.node.step(Message(MessageType.HEARTBEAT, to=2, frm=3, term=1))
    with pytest.raises(InvalidMessageError):
        sn.node.step(Message(MessageType.HEARTBEAT, to=1, frm=1, term=1))


def test_replayed_old_messages_do_not_break_safety():
    c = Cluster(5, seed=17, net=NetConfig(drop=0.1, max_delay=2), snapshot_interval=10)
    c.record_sent = True
    for i in range(40):
        c.propose(b"r%d" % i)
        c.tick(2)
        if i == 20:
            c.partition([1, 2], [3, 4, 5])
        if i == 30:
            c.heal()
    old = list(c.sent)
    assert len(old) > 100
    for k, raw in enumerate(old):  # an attacker replays the whole history, twice
        c.inject(raw)
        c.inject(old[(k * 7919) % len(old)])
        if k % 50 == 0:
            c.tick()
    c.check_logs()
    c.heal_all()
    c.commit_on_all(b"after-replay")
    c.check_logs()


def test_leader_removing_itself_from_two_voters_hands_off_to_the_survivor():
    c = Cluster(2, seed=18)
    ld = c.wait_leader()
    other = next(sn for sn in c.alive() if sn is not ld)
    c.commit_on_all(b"two")
    k = c.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, ld.id))
    ld.node.propose(b"extra")  # the leader's log is now longer than the survivor's
    real_send, until = c._send, c.time + 60

    def lossy(m):  # for a while the survivor never hears that entry k committed
        if c.time < until and m.frm == ld.id and (m.commit >= k or m.entries):
            return
        real_send(m)

    c._send = lossy
    c._process(ld)
    c.run_until(lambda: c.leader() is other and other.node.conf_state.voters == (other.id,), 150)
    c.run_until(lambda: ld.node.role == Role.FOLLOWER, 20)
    c.crash(ld.id)
    c.commit_on_all(b"alone")
