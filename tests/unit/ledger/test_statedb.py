import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heddle.ledger import Height, HistoryEntry, UpdateBatch, VersionedValue, open_state_db
from heddle.ledger.statedb import SqliteStateDB

try:
    import lmdb  # noqa: F401

    BACKENDS = ["sqlite", "lmdb"]
except ImportError:
    BACKENDS = ["sqlite"]


def open_db(backend, tmp_path):
    path = tmp_path / ("state.sqlite" if backend == "sqlite" else "state.lmdb")
    return open_state_db(path, backend)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def db(backend, tmp_path):
    d = open_db(backend, tmp_path)
    yield d
    d.close()


def commit(db, block_num, writes, history=()):
    batch = UpdateBatch()
    for tx_num, (ns, key, value) in enumerate(writes):
        if value is None:
            batch.delete(ns, key, Height(block_num, tx_num))
        else:
            batch.put(ns, key, value, Height(block_num, tx_num))
    db.apply_batch(batch, Height(block_num, max(0, len(writes) - 1)), history)


def test_height_is_ordered_and_unpacks():
    assert Height(1, 5) < Height(2, 0) < Height(2, 1)
    block_num, tx_num = Height(3, 4)
    assert (block_num, tx_num) == (3, 4)


def test_default_backend_is_sqlite(tmp_path):
    db = open_state_db(tmp_path / "s.db")
    assert isinstance(db, SqliteStateDB)
    db.close()
    with pytest.raises(ValueError, match="unknown state db backend 'mongo'"):
        open_state_db(tmp_path / "x", "mongo")


def test_put_get_delete_with_versions_and_metadata(db):
    assert db.get("cc", "k") is None
    assert db.savepoint() is None
    batch = UpdateBatch()
    batch.put("cc", "k", b"v1", Height(1, 0), metadata=b"m")
    batch.put("cc", "gone", b"x", Height(1, 1))
    db.apply_batch(batch, Height(1, 1))
    assert db.get("cc", "k") == VersionedValue(b"v1", Height(1, 0), b"m")
    assert db.savepoint() == Height(1, 1)
    batch = UpdateBatch()
    batch.delete("cc", "gone", Height(2, 0))
    batch.put("cc", "k", b"v2", Height(2, 3))
    db.apply_batch(batch, Height(2, 3))
    assert db.get("cc", "gone") is None
    assert db.get("cc", "k") == VersionedValue(b"v2", Height(2, 3), b"")
    assert db.get("other", "k") is None


def test_put_metadata_semantics(db):
    commit(db, 1, [("cc", "a", b"A"), ("cc", "b", b"B")])
    batch = UpdateBatch()
    batch.put_metadata("cc", "a", b"meta-a", Height(2, 0))  # existing key: value kept
    batch.put_metadata("cc", "absent", b"meta", Height(2, 1))  # absent key: ignored
    batch.put("cc", "c", b"C", Height(2, 2))
    batch.put_metadata("cc", "c", b"meta-c", Height(2, 3))  # after a put in the same block
    batch.delete("cc", "b", Height(2, 4))
    batch.put_metadata("cc", "b", b"meta-b", Height(2, 5))  # after a delete: stays deleted
    db.apply_batch(batch, Height(2, 5))
    assert db.get("cc", "a") == VersionedValue(b"A", Height(2, 0), b"meta-a")
    assert db.get("cc", "absent") is None
    assert db.get("cc", "c") == VersionedValue(b"C", Height(2, 3), b"meta-c")
    assert db.get("cc", "b") is None


def test_last_write_in_a_batch_wins(db):
    batch = UpdateBatch()
    batch.put("cc", "k", b"1", Height(1, 0))
    batch.delete("cc", "k", Height(1, 1))
    batch.put("cc", "k", b"3", Height(1, 2))
    assert len(batch) == 1 and batch.get("cc", "k").value == b"3"
    db.apply_batch(batch, Height(1, 2))
    assert db.get("cc", "k").version == Height(1, 2)


def test_savepoint_cannot_move_backwards(db):
    commit(db, 5, [("cc", "k", b"v")])
    with pytest.raises(ValueError, match="backwards"):
        commit(db, 4, [("cc", "k", b"old")])
    assert db.get("cc", "k").value == b"v"
    commit(db, 5, [("cc", "k", b"v")])  # replaying the same block is allowed


def test_failed_batch_changes_nothing(db):
    commit(db, 1, [("cc", "k", b"v")])

    def broken_history():
        yield HistoryEntry("cc", "k", 2, 0)
        raise RuntimeError("boom")

    batch = UpdateBatch()
    batch.put("cc", "k", b"new", Height(2, 0))
    with pytest.raises(RuntimeError):
        db.apply_batch(batch, Height(2, 0), broken_history())
    assert db.get("cc", "k").value == b"v"
    assert db.savepoint() == Height(1, 0)
    assert list(db.history("cc", "k")) == []


# Byte order of the UTF-8 encodings, including composite keys and non-BMP characters.
ORDERED_KEYS = ["", "\x00color\x00blue\x00", "\x00color\x00red\x00", "A", "a", "a\x00b", "ab",
                "b", "z", "é", "中", "\U0010ffff"]


def test_range_is_in_utf8_byte_order_with_fabric_bounds(db):
    commit(db, 1, [("cc", k, k.encode() or b"empty") for k in reversed(ORDERED_KEYS)]
           + [("cc2", "a", b"other ns"), ("c", "zz", b"prefix ns")])
    assert [k for k, _ in db.range("cc")] == ORDERED_KEYS
    assert [k for k, _ in db.range("cc", "a", "b")] == ["a", "a\x00b", "ab"]  # end exclusive
    assert [k for k, _ in db.range("cc", "b", "")] == ["b", "z", "é", "中", "\U0010ffff"]
    assert [k for k, _ in db.range("cc", "", "A")] == ["", "\x00color\x00blue\x00",
                                                       "\x00color\x00red\x00"]
    assert [k for k, _ in db.range("cc", "\x00color\x00", "\x00color\x01")] == [
        "\x00color\x00blue\x00", "\x00color\x00red\x00"]
    assert [k for k, _ in db.range("cc", "a", "b", limit=2)] == ["a", "a\x00b"]
    assert list(db.range("cc", "zz", "zzz")) == []
    key, vv = next(iter(db.range("cc", "z")))
    assert (key, vv) == ("z", VersionedValue(b"z", vv.version, b""))


def test_long_range_and_pages_cover_every_key_once(db):
    keys = [f"k{i:05d}" for i in range(1000)]
    commit(db, 1, [("cc", k, b"v") for k in keys])
    assert [k for k, _ in db.range("cc")] == keys
    assert [k for k, _ in db.range("cc", "k00100", "k00900", limit=700)] == keys[100:800]
    seen, bookmark = [], ""
    while True:
        page = db.range_page("cc", "k00010", "k00995", page_size=97, bookmark=bookmark)
        seen += [k for k, _ in page.results]
        if not page.bookmark:
            break
        bookmark = page.bookmark
    assert seen == keys[10:995]
    with pytest.raises(ValueError):
        db.range_page("cc", "", "", page_size=0)


def test_get_many(db):
    keys = [f"k{i}" for i in range(1200)]
    commit(db, 1, [("cc", k, k.encode()) for k in keys[::2]])
    got = db.get_many("cc", [*keys, "k0", "missing"])
    assert len(got) == 1201
    for i, k in enumerate(keys):
        assert (got[k] is None) == (i % 2 == 1)
    assert got["k2"].value == b"k2" and got["missing"] is None
    assert db.get_many("cc", []) == {}


def test_history_newest_first_and_oldest_first(db):
    commit(db, 1, [("cc", "k", b"1")], [HistoryEntry("cc", "k", 1, 0)])
    commit(db, 2, [("cc", "other", b"x"), ("cc", "k", None)],
           [HistoryEntry("cc", "other", 2, 0), HistoryEntry("cc", "k", 2, 1)])
    # two writes to k in block 3 (the state batch keeps the last; history keeps both)
    commit(db, 3, [("cc", "k", b"3")], [HistoryEntry("cc", "k", 3, 0), HistoryEntry("cc", "k", 3, 4),
                                         HistoryEntry("cc", "k\x00sub", 3, 5)])
    assert list(db.history("cc", "k")) == [Height(3, 4), Height(3, 0), Height(2, 1), Height(1, 0)]
    assert list(db.history("cc", "k", newest_first=False)) == [
        Height(1, 0), Height(2, 1), Height(3, 0), Height(3, 4)]
    assert list(db.history("cc", "k\x00sub")) == [Height(3, 5)]
    assert list(db.history("other-ns", "k")) == []
    # replaying block 3 does not duplicate history
    commit(db, 3, [("cc", "k", b"3")], [HistoryEntry("cc", "k", 3, 0)])
    assert len(list(db.history("cc", "k"))) == 4


def test_state_survives_reopen(backend, tmp_path):
    db = open_db(backend, tmp_path)
    commit(db, 7, [("cc", "k", b"v")], [HistoryEntry("cc", "k", 7, 0)])
    db.close()
    db = open_db(backend, tmp_path)
    assert db.get("cc", "k") == VersionedValue(b"v", Height(7, 0), b"")
    assert db.savepoint() == Height(7, 0)
    assert list(db.history("cc", "k")) == [Height(7, 0)]
    db.close()
    with pytest.raises(RuntimeError, match="closed"):
        db.get("cc", "k")


def test_readers_see_whole_blocks_only(db):
    """A block's commit is atomic for concurrent readers."""
    keys = [f"k{i:03d}" for i in range(100)]
    commit(db, 0, [("cc", k, b"0") for k in keys])
    stop = threading.Event()
    errors = []

    def reader():
        try:
            while not stop.is_set():
                values = {vv.value for vv in db.get_many("cc", keys).values()}
                assert len(values) == 1, values
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for b in range(1, 60):
        commit(db, b, [("cc", k, str(b).encode()) for k in keys])
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors


def test_long_keys(db, backend):
    key = "x" * 1000
    if backend == "lmdb":
        with pytest.raises(ValueError, match="key too long for LMDB"):
            commit(db, 1, [("cc", key, b"v")])
    else:
        commit(db, 1, [("cc", key, b"v")])
        assert db.get("cc", key).value == b"v"


@pytest.mark.parametrize("backend_name", BACKENDS)
@settings(max_examples=40, deadline=None)
@given(st.sets(st.text(max_size=6), max_size=30), st.text(max_size=3), st.text(max_size=3))
def test_range_matches_a_sorted_model(tmp_path_factory, backend_name, keys, start, end):
    db = open_db(backend_name, tmp_path_factory.mktemp("prop"))
    try:
        commit(db, 1, [("cc", k, b"v") for k in sorted(keys)])
        model = sorted(
            (k for k in keys
             if k.encode() >= start.encode() and (not end or k.encode() < end.encode())),
            key=str.encode,
        )
        assert [k for k, _ in db.range("cc", start, end)] == model
    finally:
        db.close()


def test_has_metadata_says_whether_any_key_of_a_namespace_carries_metadata(tmp_path):
    db = open_db("sqlite", tmp_path)
    try:
        commit(db, 1, [("cc", "a", b"A"), ("cc", "b", b"B")])
        assert not db.has_metadata("cc") and not db.has_metadata("other")
        batch = UpdateBatch()
        batch.put_metadata("cc", "b", b"meta-b", Height(2, 0))
        db.apply_batch(batch, Height(2, 0))
        assert db.has_metadata("cc") and not db.has_metadata("other")
        commit(db, 3, [("cc", "b", None)])  # the key with metadata is deleted
        assert not db.has_metadata("cc")
    finally:
        db.close()


def test_every_backend_answers_has_metadata_safely(db):
    """True is always allowed (read the metadata); False only when no key has any."""
    batch = UpdateBatch()
    batch.put("cc", "k", b"v", Height(1, 0), metadata=b"m")
    db.apply_batch(batch, Height(1, 0))
    assert db.has_metadata("cc") is True
