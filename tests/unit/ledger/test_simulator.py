"""TxSimulator: Fabric's read/write-set semantics over a real state database."""

from __future__ import annotations

import pytest
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2

from heddle.ledger.blockstore import BlockStore
from heddle.ledger.history import HistoryEntry
from heddle.ledger.simulator import SimulatorError, TxSimulator
from heddle.ledger.statedb import Height, UpdateBatch, open_state_db
from heddle.protocol import parse_rwset


@pytest.fixture(params=["sqlite", "lmdb"])
def state(request, tmp_path):
    db = open_state_db(tmp_path / ("s.db" if request.param == "sqlite" else "s"), request.param)
    b = UpdateBatch()
    for i, k in enumerate(["a", "b", "c", "d", "e"]):
        b.put("cc", k, f"v{k}".encode(), Height(1, i))
    b.put("other", "x", b"x", Height(1, 5))
    db.apply_batch(b, Height(1, 5))
    yield db
    db.close()


def rw(sim):
    """{namespace: KVRWSet} of the simulator's results."""
    return {ns.namespace: ns.kv for ns in parse_rwset(sim.results().SerializeToString())}


def ver(r):
    return (r.version.block_num, r.version.tx_num) if r.HasField("version") else None


def test_reads_record_committed_versions_and_absent_keys(state):
    sim = TxSimulator(state, "t")
    assert sim.get_state("cc", "c") == b"vc"
    assert sim.get_state("cc", "zz") is None
    assert sim.get_state_multiple("cc", ["a", "nope"]) == [b"va", None]
    kv = rw(sim)["cc"]
    assert [(r.key, ver(r)) for r in kv.reads] == [("a", (1, 0)), ("c", (1, 2)), ("nope", None), ("zz", None)]
    assert not kv.writes


def test_no_read_your_writes_and_last_write_wins(state):
    sim = TxSimulator(state, "t")
    sim.set_state("cc", "a", b"new")
    assert sim.get_state("cc", "a") == b"va"  # committed value, as Fabric
    sim.set_state("cc", "a", b"newer")
    sim.delete_state("cc", "b")
    sim.set_state("cc", "b", b"back")
    sim.set_state("cc", "c", b"x")
    sim.delete_state("cc", "c")
    kv = rw(sim)["cc"]
    assert [(w.key, w.value, w.is_delete) for w in kv.writes] == [
        ("a", b"newer", False),
        ("b", b"back", False),
        ("c", b"", True),
    ]
    assert [(r.key, ver(r)) for r in kv.reads] == [("a", (1, 0))]


def test_results_are_sorted_and_deterministic(state):
    def run(order):
        sim = TxSimulator(state, "t")
        for ns, k in order:
            sim.get_state(ns, k)
            sim.set_state(ns, k, b"1")
        return sim.results().SerializeToString()

    items = [("other", "x"), ("cc", "e"), ("cc", "a"), ("zz", "\x00comp\x00k\x00")]
    first = run(items)
    assert first == run(list(reversed(items)))
    sim = TxSimulator(state, "t")
    for ns, k in items:
        sim.set_state(ns, k, b"1")
    assert [n.namespace for n in sim.results().ns_rwset] == ["cc", "other", "zz"]


def test_full_range_scan_records_exhausted_range(state):
    sim = TxSimulator(state, "t")
    it = sim.get_state_range("cc", "b", "e")
    assert [k for k, _ in it] == ["b", "c", "d"]
    it.close()
    (info,) = rw(sim)["cc"].range_queries_info
    assert (info.start_key, info.end_key, info.itr_exhausted) == ("b", "e", True)
    assert [(r.key, ver(r)) for r in info.raw_reads.kv_reads] == [("b", (1, 1)), ("c", (1, 2)), ("d", (1, 3))]


def test_range_stopped_early_records_the_last_key_read(state):
    sim = TxSimulator(state, "t")
    it = sim.get_state_range("cc", "", "")
    assert next(it)[0] == "a" and next(it)[0] == "b"
    assert it.has_next()  # looking ahead is not a read
    it.close()
    (info,) = rw(sim)["cc"].range_queries_info
    assert (info.start_key, info.end_key, info.itr_exhausted) == ("", "b", False)
    assert [r.key for r in info.raw_reads.kv_reads] == ["a", "b"]


def test_open_iterators_are_closed_by_results(state):
    sim = TxSimulator(state, "t")
    it = sim.get_state_range("cc", "d", "")
    list(it)
    (info,) = rw(sim)["cc"].range_queries_info
    assert info.itr_exhausted and [r.key for r in info.raw_reads.kv_reads] == ["d", "e"]


def test_paged_range(state):
    sim = TxSimulator(state, "t")
    rows, bm = sim.get_state_range_paged("cc", "a", "", 2)
    assert [k for k, _ in rows] == ["a", "b"] and bm == "c"
    rows, bm = sim.get_state_range_paged("cc", "a", "", 2, bm)
    assert [k for k, _ in rows] == ["c", "d"] and bm == "e"
    rows, bm = sim.get_state_range_paged("cc", "a", "", 2, bm)
    assert [k for k, _ in rows] == ["e"] and bm == ""
    infos = rw(sim)["cc"].range_queries_info
    assert [(i.start_key, i.end_key, i.itr_exhausted) for i in infos] == [
        ("a", "b", False),
        ("c", "d", False),
        ("e", "", True),
    ]
    with pytest.raises(SimulatorError, match="page size"):
        TxSimulator(state, "t").get_state_range_paged("cc", "a", "", 0)


def test_composite_keys_range_by_prefix(state):
    b = UpdateBatch()
    for i, k in enumerate(
        ["\x00color\x00blue\x00a1\x00", "\x00color\x00red\x00a2\x00", "\x00color\x00redder\x00a3\x00"]
    ):
        b.put("cc", k, b"1", Height(2, i))
    state.apply_batch(b, Height(2, 2))
    sim = TxSimulator(state, "t")
    prefix = "\x00color\x00red\x00"
    keys = [k for k, _ in sim.get_state_range("cc", prefix, prefix + "\U0010ffff")]
    assert keys == ["\x00color\x00red\x00a2\x00"]
    # composite keys sort before simple keys and are not in a simple-key scan from "a"
    assert "\x00color\x00blue\x00a1\x00" not in [
        k for k, _ in TxSimulator(state, "t").get_state_range("cc", "a", "")
    ]


def test_metadata_reads_and_writes(state):
    b = UpdateBatch()
    md = kv_rwset_pb2.KVMetadataWrite(
        entries=[kv_rwset_pb2.KVMetadataEntry(name="VALIDATION_PARAMETER", value=b"p")]
    )
    b.put_metadata("cc", "a", md.SerializeToString(), Height(2, 0))
    state.apply_batch(b, Height(2, 0))
    sim = TxSimulator(state, "t")
    assert sim.get_state_metadata("cc", "a") == {"VALIDATION_PARAMETER": b"p"}
    assert sim.get_state_metadata("cc", "none") == {}
    sim.set_state_metadata("cc", "b", {"z": b"2", "VALIDATION_PARAMETER": b"q"})
    kv = rw(sim)["cc"]
    assert [(r.key, ver(r)) for r in kv.reads] == [("a", (2, 0)), ("none", None)]
    (mw,) = kv.metadata_writes
    assert mw.key == "b" and [(e.name, e.value) for e in mw.entries] == [
        ("VALIDATION_PARAMETER", b"q"),
        ("z", b"2"),
    ]
    assert not kv.writes


def test_rich_query_is_not_recorded(state):
    b = UpdateBatch()
    b.put("assets", "a1", b'{"color":"blue","size":5}', Height(2, 0))
    b.put("assets", "a2", b'{"color":"red","size":7}', Height(2, 1))
    state.apply_batch(b, Height(2, 1))
    sim = TxSimulator(state, "t")
    assert [k for k, _ in sim.execute_query("assets", '{"selector":{"color":"red"}}')] == ["a2"]
    page, bm = sim.execute_query_paged("assets", '{"selector":{"size":{"$gt":0}}}', 1)
    assert [k for k, _ in page] == ["a1"] and bm
    page, bm = sim.execute_query_paged("assets", '{"selector":{"size":{"$gt":0}}}', 1, bm)
    assert [k for k, _ in page] == ["a2"] and bm == ""
    with pytest.raises(SimulatorError, match="unknown operator"):
        sim.execute_query("assets", '{"selector":{"size":{"$bogus":1}}}')
    assert sim.results().ns_rwset == []


def test_private_data_and_finished_simulation_are_errors(state):
    sim = TxSimulator(state, "t")
    with pytest.raises(SimulatorError, match="private data is not supported yet"):
        sim.get_private_data("cc", "coll", "k")
    with pytest.raises(SimulatorError, match="private data is not supported yet"):
        sim.set_private_data("cc", "coll", "k", b"v")
    with pytest.raises(SimulatorError, match="key must not be empty"):
        sim.set_state("cc", "", b"v")
    sim.results()
    with pytest.raises(SimulatorError, match="already finished"):
        sim.get_state("cc", "a")


def test_history_for_key_reads_values_from_blocks(tmp_path):
    from fabric_client import Identity, write_transaction

    from heddle.ledger.kvledger import block_updates
    from heddle.protocol import new_block

    user = Identity.self_signed("Org1MSP")
    state = open_state_db(tmp_path / "s.db")
    blocks = BlockStore(tmp_path / "blocks")
    try:
        for n, writes in enumerate([{"k": b"1"}, {"k": b"2"}]):
            env, _ = write_transaction(user, "ch", writes, namespace="cc")
            block = new_block(n, b"", [env.SerializeToString()])
            blocks.append(block)
            batch, hist = block_updates(block, [0], state)
            assert hist == [HistoryEntry("cc", "k", n, 0)]
            state.apply_batch(batch, Height(n, 0), hist)
        sim = TxSimulator(state, "t", blocks)
        mods = list(sim.get_history_for_key("cc", "k"))
        assert [m.value for m in mods] == [b"2", b"1"]
        assert all(m.tx_id and not m.is_delete for m in mods)
        with pytest.raises(SimulatorError, match="block store"):
            TxSimulator(state, "t").get_history_for_key("cc", "k")
    finally:
        state.close()
        blocks.close()


def test_range_end_before_start_is_an_error(state):
    with pytest.raises(SimulatorError, match="before start key"):
        TxSimulator(state, "t").get_state_range("cc", "d", "b")
