"""Raft safety on random fault schedules: election safety, log matching, leader
completeness, state machine safety; plus liveness once faults heal.

CI runs a few hundred schedules; ``make soak`` (HEDDLE_SOAK=1) runs >= 10,000 seeds.
"""

from __future__ import annotations

import os
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raft_sim import (
    Cluster,
    InvariantChecker,
    InvariantViolation,
    LivenessFailure,
    NetConfig,
    random_schedule,
    run_schedule,
)

from heddle.raft import ConfChange, ConfChangeType, Entry
from heddle.raft.core import Raft
from heddle.raft.log import RaftLog

SOAK = os.environ.get("HEDDLE_SOAK") == "1"
PROFILE = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
    database=None,
)


def events(n: int) -> st.SearchStrategy:
    ids = st.integers(1, n)
    ev = st.one_of(
        st.tuples(st.just("propose"), st.integers(1, 4)),
        st.permutations(list(range(1, n + 1))).flatmap(
            lambda p: st.integers(1, n - 1).map(
                lambda k: ("partition", tuple(sorted(p[:k])), tuple(sorted(p[k:])))
            )
        ),
        st.just(("heal",)),
        st.tuples(st.just("crash"), ids),
        st.tuples(st.just("restart"), ids),
        st.tuples(
            st.just("net"),
            st.sampled_from([0.0, 0.05, 0.2, 0.4]),
            st.sampled_from([0.0, 0.1, 0.3]),
            st.sampled_from([0, 1, 3, 6]),
        ),
        st.tuples(st.just("transfer"), ids),
    )
    return st.lists(st.tuples(st.integers(0, 25), ev), min_size=5, max_size=18)


@settings(PROFILE, max_examples=150)
@given(
    st.integers(0, 2**32),
    events(3),
    st.sampled_from([0, 4, 20]),
    st.sampled_from([0.0, 0.03]),
)
def test_safety_and_liveness_3_nodes(seed, evs, snapshot_interval, crash_in_ready):
    run_schedule(3, evs, seed, snapshot_interval=snapshot_interval, crash_in_ready=crash_in_ready)


@settings(PROFILE, max_examples=120)
@given(
    st.integers(0, 2**32),
    events(5),
    st.sampled_from([0, 5, 20]),
    st.sampled_from([0.0, 0.02]),
    st.booleans(),
)
def test_safety_and_liveness_5_nodes(seed, evs, snapshot_interval, crash_in_ready, pre_vote):
    run_schedule(
        5,
        evs,
        seed,
        snapshot_interval=snapshot_interval,
        crash_in_ready=crash_in_ready,
        pre_vote=pre_vote,
    )


MEMBERSHIP_KINDS = ["add_learner", "add_voter", "remove", "crash", "restart", "partition", "heal"]


def run_membership_schedule(seed: int, steps: list[tuple[int, str, int]]) -> Cluster:
    net = NetConfig(drop=0.1, duplicate=0.1, max_delay=2) if seed % 2 else NetConfig()
    c = Cluster(3, seed=seed, snapshot_interval=6, election_tick=6, net=net)
    c.wait_leader()
    counter = 0
    for wait, kind, nid in steps:
        for _ in range(wait):
            c.tick()
            counter += 1
            c.propose(b"m%d" % counter)
        if kind == "add_learner":
            if nid not in c.nodes:
                c.add_node(nid)
            c.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, nid))
        elif kind == "add_voter":
            if nid not in c.nodes:
                c.add_node(nid)
            c.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, nid))
        elif kind == "remove":
            c.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, nid))
        elif kind == "crash" and nid in c.nodes:
            c.crash(nid)
        elif kind == "restart" and nid in c.nodes:
            c.restart(nid)
        elif kind == "partition":
            ids = sorted(c.nodes)
            c.partition([i for i in ids if i % 2 == nid % 2], [i for i in ids if i % 2 != nid % 2])
        elif kind == "heal":
            c.heal()
    c.tick(5)
    c.check_logs()
    c.heal_all()
    c.wait_leader(400)
    c.commit_on_all(b"final", max_ticks=400)
    c.check_logs()
    return c


@settings(PROFILE, max_examples=60)
@given(
    st.integers(0, 2**32),
    st.lists(
        st.tuples(
            st.integers(0, 12),
            st.sampled_from(MEMBERSHIP_KINDS),
            st.integers(1, 5),
        ),
        min_size=2,
        max_size=14,
    ),
)
def test_membership_changes_under_faults_keep_safety(seed, steps):
    run_membership_schedule(seed, steps)


def random_membership_steps(rng: random.Random) -> list[tuple[int, str, int]]:
    return [
        (rng.randint(0, 12), rng.choice(MEMBERSHIP_KINDS), rng.randint(1, 5))
        for _ in range(rng.randint(2, 14))
    ]


@pytest.mark.timeout(0 if SOAK else 300)
def test_soak_random_fault_schedules():
    """Seeded loop over many schedules; HEDDLE_SOAK=1 runs 10,000 of them."""
    count = int(os.environ.get("HEDDLE_SOAK_COUNT", "10000")) if SOAK else 40
    base = int(os.environ.get("HEDDLE_SOAK_SEED", "0"))
    start = time.monotonic()
    ticks = 0
    for seed in range(base, base + count):
        rng = random.Random(seed)
        n = rng.choice([3, 5])
        evs = random_schedule(rng, n, rng.randint(4, 18))
        try:
            if seed % 5 == 4:  # every fifth schedule changes membership under faults
                c = run_membership_schedule(seed, random_membership_steps(rng))
                ticks += c.time
                continue
            c = run_schedule(
                n,
                evs,
                seed,
                snapshot_interval=rng.choice([0, 5, 20]),
                crash_in_ready=rng.choice([0.0, 0.0, 0.02]),
                pre_vote=rng.random() < 0.8,
            )
        except (InvariantViolation, LivenessFailure) as exc:
            raise AssertionError(f"soak seed {seed} (n={n}) failed: {exc}") from exc
        ticks += c.time
    elapsed = time.monotonic() - start
    print(
        f"\nraft soak: {count} schedules passed, seeds [{base}, {base + count}), "
        f"{ticks} simulated ticks, {elapsed:.1f}s wall"
    )


# the checkers and the property tests can fail ----------------------------------------


def test_checker_catches_a_deliberately_broken_log():
    c = Cluster(3, seed=3)
    c.wait_leader()
    for i in range(5):
        c.commit_on_all(b"b%d" % i)
    c.check_logs()
    victim = c.nodes[2]
    idx = victim.storage.last_index() - 2
    t = victim.storage.term(idx)
    victim.storage._ents[idx - victim.storage._ents[0].index] = Entry(t, idx, data=b"forged")
    with pytest.raises(InvariantViolation, match="log matching"):
        c.check_logs()


def test_checker_catches_two_leaders_in_one_term_and_divergent_applies():
    c = Cluster(3, seed=3)
    c.wait_leader()
    chk = InvariantChecker()
    a, b = c.nodes[1].node.raft, c.nodes[2].node.raft
    a.term = b.term = 9
    chk.on_leader(1, a)
    with pytest.raises(InvariantViolation, match="election safety"):
        chk.on_leader(2, b)
    chk.on_apply(1, Entry(1, 1, data=b"x"), b"d1")
    with pytest.raises(InvariantViolation, match="state machine safety"):
        chk.on_apply(2, Entry(1, 1, data=b"y"), b"d2")


def _first_failing_seed(limit: int) -> int | None:
    for seed in range(limit):
        rng = random.Random(seed)
        n = rng.choice([3, 5])
        try:
            run_schedule(
                n, random_schedule(rng, n, rng.randint(5, 20)), seed, snapshot_interval=rng.choice([0, 5, 20])
            )
        except (InvariantViolation, LivenessFailure):
            return seed
    return None


def test_schedules_catch_a_raft_that_votes_twice_per_term(monkeypatch):
    real = Raft._step_vote_request

    def forgetful(self, m):
        self.vote = 0  # bug: forgets whom it voted for in this term
        self.lead = 0
        real(self, m)

    monkeypatch.setattr(Raft, "_step_vote_request", forgetful)
    assert _first_failing_seed(200) is not None


def test_schedules_catch_a_raft_that_elects_out_of_date_leaders(monkeypatch):
    monkeypatch.setattr(RaftLog, "is_up_to_date", lambda self, i, t: True)
    assert _first_failing_seed(200) is not None
