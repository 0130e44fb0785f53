"""MVCC and phantom validation in block order, and the block's update batch (sans-I/O core)."""

from __future__ import annotations

import pytest
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2 as kv
from fabric_protos.peer import transaction_pb2

from heddle.ledger.mvcc import (
    MvccTx,
    block_updates_for,
    decode_metadata,
    encode_metadata,
    validate_block,
)
from heddle.ledger.statedb import Height, UpdateBatch, open_state_db
from heddle.protocol import NsRwSet

C = transaction_pb2.TxValidationCode
NS = "cc"


@pytest.fixture
def state(tmp_path):
    db = open_state_db(tmp_path / "s.db")
    b = UpdateBatch()
    b.put(NS, "a", b"1", Height(1, 0))
    b.put(NS, "c", b"3", Height(1, 1), encode_metadata({"VALIDATION_PARAMETER": b"p"}))
    b.put(NS, "e", b"5", Height(1, 2))
    db.apply_batch(b, Height(1, 2))
    yield db
    db.close()


def read(key, version=None):
    if version is None:
        return kv.KVRead(key=key)
    return kv.KVRead(key=key, version=kv.Version(block_num=version[0], tx_num=version[1]))


def tx(reads=(), writes=(), deletes=(), ranges=(), meta=None, code=C.VALID, ns=NS):
    rw = kv.KVRWSet(
        reads=list(reads),
        writes=[kv.KVWrite(key=k, value=v) for k, v in dict(writes).items()]
        + [kv.KVWrite(key=k, is_delete=True) for k in deletes],
        range_queries_info=list(ranges),
        metadata_writes=[
            kv.KVMetadataWrite(key=k, entries=[kv.KVMetadataEntry(name=n, value=v) for n, v in m.items()])
            for k, m in (meta or {}).items()
        ],
    )
    return MvccTx(code, [NsRwSet(ns, rw)])


def rng(start, end, reads, exhausted=True):
    return kv.RangeQueryInfo(
        start_key=start,
        end_key=end,
        itr_exhausted=exhausted,
        raw_reads=kv.QueryReads(kv_reads=[read(k, v) for k, v in reads]),
    )


def names(codes):
    return [C.Name(c) for c in codes]


def test_reads_are_checked_against_committed_versions(state):
    txs = [
        tx(reads=[read("a", (1, 0)), read("zz")], writes={"x": b"1"}),
        tx(reads=[read("a", (0, 9))]),
        tx(reads=[read("a")]),  # read as absent, but it exists
        tx(reads=[read("gone", (1, 0))]),  # read at a version, but it does not exist
    ]
    out = validate_block(state, 2, txs)
    assert names(out.codes) == ["VALID", "MVCC_READ_CONFLICT", "MVCC_READ_CONFLICT", "MVCC_READ_CONFLICT"]
    assert "now at (1, 0)" in out.reasons[1]
    assert [(w.key, w.version) for w in out.batch.writes()] == [("x", Height(2, 0))]


def test_a_key_written_earlier_in_the_block_conflicts_and_invalid_txs_write_nothing(state):
    txs = [
        tx(writes={"a": b"new"}, code=C.ENDORSEMENT_POLICY_FAILURE),  # already invalid: ignored
        tx(reads=[read("a", (1, 0))], writes={"a": b"t1"}),
        tx(reads=[read("a", (1, 0))], writes={"a": b"t2"}),
        tx(writes={"a": b"blind"}),  # blind writes do not conflict
    ]
    out = validate_block(state, 2, txs)
    assert names(out.codes) == ["ENDORSEMENT_POLICY_FAILURE", "VALID", "MVCC_READ_CONFLICT", "VALID"]
    w = out.batch.get(NS, "a")
    assert (w.value, w.version) == (b"blind", Height(2, 3))
    assert [(h.key, h.block_num, h.tx_num) for h in out.history] == [("a", 2, 1), ("a", 2, 3)]


def test_range_re_execution(state):
    full = [("a", (1, 0)), ("c", (1, 1)), ("e", (1, 2))]
    txs = [
        tx(ranges=[rng("", "", full)]),  # unchanged: valid
        tx(ranges=[rng("a", "d", full[:2])], writes={"z": b"1"}),  # z is outside [a, d)
        tx(ranges=[rng("", "", full)]),  # z was inserted earlier in the block -> phantom
        tx(ranges=[rng("a", "c", full[:2], exhausted=False)]),  # stopped at c: [a, c] inclusive
        tx(writes={"b": b"2"}),
        tx(ranges=[rng("a", "c", full[:2], exhausted=False)]),  # b inserted into [a, c]
        tx(ranges=[rng("d", "f", [("e", (1, 2))])]),  # unaffected by b and z
        tx(ranges=[rng("c", "f", [("c", (1, 1))])]),  # missed e
        tx(
            ranges=[
                kv.RangeQueryInfo(
                    start_key="a",
                    end_key="b",
                    itr_exhausted=True,
                    reads_merkle_hashes=kv.QueryReadsMerkleSummary(max_degree=2),
                )
            ]
        ),
    ]
    out = validate_block(state, 2, txs)
    assert names(out.codes) == [
        "VALID",
        "VALID",
        "PHANTOM_READ_CONFLICT",
        "VALID",
        "VALID",
        "PHANTOM_READ_CONFLICT",
        "VALID",
        "PHANTOM_READ_CONFLICT",
        "PHANTOM_READ_CONFLICT",
    ]
    assert "merkle" in out.reasons[8]


def test_delete_or_update_inside_a_range_is_a_phantom(state):
    full = [("a", (1, 0)), ("c", (1, 1)), ("e", (1, 2))]
    out = validate_block(state, 2, [tx(deletes=["c"]), tx(ranges=[rng("", "", full)])])
    assert names(out.codes) == ["VALID", "PHANTOM_READ_CONFLICT"]
    out = validate_block(state, 2, [tx(writes={"e": b"6"}), tx(ranges=[rng("", "", full)])])
    assert names(out.codes) == ["VALID", "PHANTOM_READ_CONFLICT"]


def test_metadata_write_rules(state):
    txs = [
        tx(writes={"c": b"33"}),  # keeps c's metadata
        tx(meta={"a": {"VALIDATION_PARAMETER": b"q"}}),  # metadata only, existing key
        tx(meta={"missing": {"X": b"1"}}),  # ignored: key does not exist
        tx(writes={"e": b"55"}, meta={"e": {"X": b"e"}}),  # value and metadata together
        tx(deletes=["c"], meta={"c": {"X": b"ignored"}}),  # delete wins
    ]
    out = validate_block(state, 2, txs)
    assert names(out.codes) == ["VALID"] * 5
    state.apply_batch(out.batch, Height(2, 4), out.history)
    assert decode_metadata(state.get(NS, "a").metadata) == {"VALIDATION_PARAMETER": b"q"}
    assert state.get(NS, "a").version == Height(2, 1) and state.get(NS, "a").value == b"1"
    assert state.get(NS, "missing") is None
    assert state.get(NS, "c") is None
    assert (state.get(NS, "e").value, decode_metadata(state.get(NS, "e").metadata)) == (b"55", {"X": b"e"})


def test_value_write_keeps_the_key_policy(state):
    out = validate_block(state, 2, [tx(writes={"c": b"33"})])
    assert decode_metadata(out.batch.get(NS, "c").metadata) == {"VALIDATION_PARAMETER": b"p"}


def test_key_policy_change_invalidates_later_writers_in_the_block(state):
    txs = [
        tx(meta={"c": {"VALIDATION_PARAMETER": b"new"}}),
        tx(writes={"c": b"x"}),
        tx(writes={"a": b"x"}),
        tx(meta={"a": {"OTHER": b"1"}}),  # metadata change that keeps the (absent) policy
        tx(writes={"a": b"y"}),
    ]
    out = validate_block(state, 2, txs)
    assert names(out.codes) == ["VALID", "ENDORSEMENT_POLICY_FAILURE", "VALID", "VALID", "VALID"]


def test_definition_change_invalidates_later_users_of_it(state):
    lc = MvccTx(
        C.VALID,
        [
            NsRwSet(
                "_lifecycle", kv.KVRWSet(writes=[kv.KVWrite(key="namespaces/fields/cc/Sequence", value=b"2")])
            )
        ],
    )
    user = tx(writes={"a": b"1"})
    user.policy_namespaces = {"cc"}
    other = tx(writes={"a": b"1"}, ns="dd")
    other.policy_namespaces = {"dd"}
    out = validate_block(state, 2, [lc, user, other])
    assert names(out.codes) == ["VALID", "MVCC_READ_CONFLICT", "VALID"]


def test_replay_builds_the_same_batch(state):
    txs = [
        tx(reads=[read("a", (1, 0))], writes={"a": b"t1"}),
        tx(reads=[read("a", (1, 0))], writes={"a": b"t2"}),
        tx(writes={"c": b"33"}, deletes=["e"]),
        tx(meta={"c": {"VALIDATION_PARAMETER": b"z"}}),
    ]
    out = validate_block(state, 2, txs)
    valid = [(i, t.rwsets) for i, (t, c) in enumerate(zip(txs, out.codes, strict=True)) if c == C.VALID]
    batch, history = block_updates_for(state, 2, valid)
    key = lambda w: (w.namespace, w.key)  # noqa: E731
    assert sorted(batch.writes(), key=key) == sorted(out.batch.writes(), key=key)
    assert history == out.history
