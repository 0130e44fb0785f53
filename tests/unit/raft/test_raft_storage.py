"""MemoryStorage semantics and the durable WalStorage: fsync, torn tails, snapshots."""

from __future__ import annotations

import os

import pytest
from raft_sim import Cluster, NetConfig, random_schedule

from heddle.raft import (
    CompactedError,
    ConfState,
    Entry,
    HardState,
    MemoryStorage,
    Snapshot,
    SnapshotMetadata,
    SnapshotOutOfDateError,
    UnavailableError,
    WalCorruptError,
    WalStorage,
)
from heddle.raft.wal import _read_records

CS = ConfState((1, 2, 3))


def ents(lo: int, hi: int, term: int = 1) -> list[Entry]:
    return [Entry(term, i, data=b"d%d" % i) for i in range(lo, hi + 1)]


# MemoryStorage ---------------------------------------------------------------------------


def test_memory_storage_append_truncates_conflicts_and_compacts():
    s = MemoryStorage()
    s.append(ents(1, 5))
    s.append([Entry(2, 4, data=b"new")])
    assert s.last_index() == 4 and s.term(4) == 2
    s.create_snapshot(3, CS, b"snap")
    s.compact(3)
    assert s.first_index() == 4 and s.term(3) == 1
    with pytest.raises(CompactedError):
        s.entries(3, 5)
    with pytest.raises(CompactedError):
        s.term(2)
    with pytest.raises(UnavailableError):
        s.entries(4, 6)
    with pytest.raises(SnapshotOutOfDateError):
        s.create_snapshot(2, CS, b"")
    with pytest.raises(UnavailableError):
        s.append(ents(7, 8))


def test_memory_storage_size_limit_returns_at_least_one_entry():
    s = MemoryStorage()
    s.append([Entry(1, i, data=b"x" * 100) for i in range(1, 6)])
    assert len(s.entries(1, 6, max_size=1)) == 1
    assert len(s.entries(1, 6, max_size=260)) == 2


# WalStorage --------------------------------------------------------------------------------


def test_wal_state_survives_reopen(tmp_path):
    w = WalStorage(tmp_path)
    w.save(HardState(1, 1, 0), ents(1, 3))
    w.save(HardState(2, 2, 3), [Entry(2, 3, data=b"over"), Entry(2, 4)])
    w.close()
    r = WalStorage(tmp_path)
    assert r.initial_state()[0] == HardState(2, 2, 3)
    assert r.entries(1, 5) == [*ents(1, 2), Entry(2, 3, data=b"over"), Entry(2, 4)]


def test_wal_fsyncs_before_save_returns(tmp_path, monkeypatch):
    w = WalStorage(tmp_path)
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.fstat(fd).st_size)
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    before = (tmp_path / "wal-0000000000000001.log").stat().st_size
    w.save(HardState(1, 0, 0), ents(1, 2))
    assert synced and synced[-1] > before  # the data written was fsynced inside save()


def test_wal_torn_tail_is_truncated_at_every_cut_point(tmp_path):
    src = tmp_path / "src"
    w = WalStorage(src)
    w.save(HardState(1, 1, 1), ents(1, 2))
    w.save(HardState(1, 1, 2), ents(3, 4))
    w.close()
    seg = src / "wal-0000000000000001.log"
    data = seg.read_bytes()
    recs, end = _read_records(data)
    assert end == len(data) and len(recs) == 4
    boundary = len(data) - sum(len(r) + 8 for r in recs[2:])  # after the first save
    for cut in range(boundary, len(data)):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / seg.name).write_bytes(data[:cut])
        r = WalStorage(d)
        assert r.truncated_bytes == cut - _read_records(data[:cut])[1]
        assert r.truncated_bytes <= cut - boundary
        # the first save (fsynced) is intact; the torn second one contributes nothing
        # unless its entries record is complete
        assert r.entries(1, 3) == ents(1, 2)
        assert r.initial_state()[0] in (HardState(1, 1, 1), HardState(1, 1, 2))
        r.save(HardState(1, 1, 2), ents(3, 4))  # appending after truncation works
        r.close()
        assert WalStorage(d).entries(1, 5) == ents(1, 4)


def test_wal_bit_flip_in_tail_record_drops_only_that_record(tmp_path):
    w = WalStorage(tmp_path)
    w.save(HardState(1, 1, 1), ents(1, 2))
    w.save(None, ents(3, 3))
    w.close()
    seg = tmp_path / "wal-0000000000000001.log"
    data = bytearray(seg.read_bytes())
    data[-2] ^= 0xFF
    seg.write_bytes(bytes(data))
    r = WalStorage(tmp_path)
    assert r.last_index() == 2 and r.truncated_bytes > 0


def test_wal_corruption_in_an_older_segment_is_an_error(tmp_path):
    w = WalStorage(tmp_path, segment_bytes=64)
    for i in range(1, 6):
        w.save(HardState(1, 1, i - 1), [Entry(1, i, data=b"x" * 40)])
    w.close()
    segs = sorted(tmp_path.glob("wal-*.log"))
    assert len(segs) >= 3
    data = bytearray(segs[0].read_bytes())
    data[10] ^= 0x01
    segs[0].write_bytes(bytes(data))
    with pytest.raises(WalCorruptError, match="bad record"):
        WalStorage(tmp_path)


def test_wal_snapshot_and_compaction_reclaim_segments_and_reload(tmp_path):
    w = WalStorage(tmp_path, segment_bytes=200)
    for i in range(1, 21):
        w.save(HardState(1, 1, i - 1), [Entry(1, i, data=b"y" * 30)])
    before = sorted(tmp_path.glob("wal-*.log"))
    assert len(before) > 3
    w.save(HardState(1, 1, 20), [])
    w.create_snapshot(15, CS, b"sm@15")
    w.compact(15)
    after = sorted(tmp_path.glob("wal-*.log"))
    assert len(after) <= 2 and not set(after) & set(before)
    w.save(None, [Entry(2, 21)])
    w.close()
    r = WalStorage(tmp_path)
    assert r.snapshot().index == 15 and r.snapshot().data == b"sm@15"
    assert r.first_index() == 16 and r.last_index() == 21
    assert r.initial_state() == (HardState(1, 1, 20), CS)
    with pytest.raises(CompactedError):
        r.entries(15, 16)


def test_wal_received_snapshot_voids_the_old_log_tail(tmp_path):
    w = WalStorage(tmp_path)
    w.save(HardState(1, 1, 2), ents(1, 10, term=1))  # 3..10 are an uncommitted stale tail
    snap = Snapshot(SnapshotMetadata(5, 3, CS), b"leader-state")
    w.save(HardState(3, 0, 5), [], snap)
    w.save(None, [Entry(3, 6, data=b"fresh")])
    w.close()
    r = WalStorage(tmp_path)
    assert r.snapshot() == snap
    assert r.entries(6, 7) == [Entry(3, 6, data=b"fresh")]
    assert r.last_index() == 6
    with pytest.raises(SnapshotOutOfDateError):
        r.save(None, [], Snapshot(SnapshotMetadata(4, 3, CS), b""))


def test_wal_ignores_a_half_written_snapshot_file(tmp_path):
    w = WalStorage(tmp_path)
    w.save(HardState(1, 1, 3), ents(1, 3))
    w.create_snapshot(2, CS, b"good")
    w.close()
    (tmp_path / "snap-0000000000000003.snap").write_bytes(b"\x00\x00\x01\x00garbage")
    (tmp_path / "snap-0000000000000004.tmp").write_bytes(b"partial")
    r = WalStorage(tmp_path)
    assert r.snapshot().data == b"good"
    assert not list(tmp_path.glob("*.tmp"))


class _ReopeningWal(WalStorage):
    def reopen(self) -> _ReopeningWal:
        self.close()
        return _ReopeningWal(self.dir, segment_bytes=self.segment_bytes)


def test_cluster_on_wal_storage_survives_crashes_and_restarts(tmp_path):
    import random

    c = Cluster(
        3,
        seed=5,
        snapshot_interval=6,
        crash_in_ready=0.01,
        net=NetConfig(drop=0.1, max_delay=2),
        storage_factory=lambda nid: _ReopeningWal(tmp_path / f"n{nid}", segment_bytes=512),
    )
    rng = random.Random(5)
    for wait, ev in random_schedule(rng, 3, 12):
        c.tick(wait)
        if ev[0] == "propose":
            for i in range(ev[1]):
                c.propose(b"w%d-%d" % (c.time, i))
        elif ev[0] == "crash":
            c.crash(ev[1])
        elif ev[0] == "restart":
            c.restart(ev[1])
    c.heal_all()
    c.commit_on_all(b"wal-final", max_ticks=400)
    c.check_logs()
    digests = {sn.sm.digest for sn in c.alive()}
    assert len(digests) == 1
