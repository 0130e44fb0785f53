import os
import random
import struct
import threading
from pathlib import Path

import pytest
from ledger_blocks import envelope, make_block, txid_for

from heddle.ledger import BlockNotFound, BlockStore, BlockStoreCorruption, BlockStoreError
from heddle.ledger.blockstore import INDEX_FILE, _encode_record
from heddle.protocol import block_header_hash

SEG0 = "blockfile_000000"


def fill(store: BlockStore, count: int, **kw) -> list:
    blocks = []
    for n in range(store.height, store.height + count):
        b = make_block(n, **kw)
        store.append(b)
        blocks.append(b)
    return blocks


def record_offsets(path: Path) -> list[tuple[int, int]]:
    """(start, end) of each record in a block file, parsed independently of the store."""
    data = path.read_bytes()
    out, off = [], 0
    while off + 8 <= len(data):
        length, _ = struct.unpack(">II", data[off : off + 8])
        out.append((off, off + 8 + length))
        off += 8 + length
    return out


def test_append_and_read_back_by_number_hash_and_txid(tmp_path):
    with BlockStore(tmp_path) as store:
        assert store.height == 0 and store.last_block is None
        blocks = fill(store, 5)
        assert store.height == 5
        for b in blocks:
            n = b.header.number
            assert store.get_by_number(n) == b
            assert store.get_by_hash(block_header_hash(b.header)) == b
            assert store.get_by_txid(txid_for(n, 2)) == b
            assert store.tx_location(txid_for(n, 1)) == (n, 1)
            assert store.contains_txid(txid_for(n, 0))
        assert store.last_block == blocks[-1]
        assert list(store.iter_from(2)) == blocks[2:]
        assert list(store.iter_from(5)) == []


def test_missing_lookups(tmp_path):
    with BlockStore(tmp_path) as store:
        fill(store, 2)
        with pytest.raises(BlockNotFound):
            store.get_by_number(2)
        with pytest.raises(BlockNotFound):
            store.get_by_number(-1)
        with pytest.raises(BlockNotFound):
            store.get_by_hash(b"\x00" * 32)
        with pytest.raises(BlockNotFound):
            store.get_by_txid("nope")
        assert store.tx_location("nope") is None
        assert not store.contains_txid("nope")


def test_committed_txids_answers_for_a_whole_block_at_once(tmp_path):
    with BlockStore(tmp_path) as store:
        fill(store, 3)
        stored = [txid_for(n, i) for n in range(3) for i in range(2)]
        asked = [*stored, "nope", txid_for(7, 0), stored[0]]  # unknown ones and a repeat
        assert store.committed_txids(asked) == set(stored)
        assert store.committed_txids([]) == set()
        many = [f"x{i}" for i in range(1200)] + [txid_for(2, 1)]  # more than one query's worth
        assert store.committed_txids(many) == {txid_for(2, 1)}


def test_append_with_txids_from_the_caller_indexes_those(tmp_path):
    with BlockStore(tmp_path) as store:
        block = make_block(0)
        given = [(txid_for(0, i), i) for i in range(len(block.data.data))]
        store.append(block, given)
        assert all(store.tx_location(txid) == (0, i) for txid, i in given)
        # and the index rebuilt from the block file on reopen says the same
    (tmp_path / INDEX_FILE).unlink()
    with BlockStore(tmp_path) as store:
        assert all(store.tx_location(txid) == (0, i) for txid, i in given)


def test_append_out_of_order_names_expected_and_got(tmp_path):
    with BlockStore(tmp_path) as store:
        fill(store, 2)
        with pytest.raises(ValueError, match="expected 2, got 5"):
            store.append(make_block(5))
        with pytest.raises(ValueError, match="expected 2, got 1"):
            store.append(make_block(1))
        assert store.height == 2


def test_duplicate_txid_index_keeps_first_occurrence(tmp_path):
    with BlockStore(tmp_path) as store:
        store.append(make_block(0, txids=["a", "b"]))
        store.append(make_block(1, txids=["c", "a", "c"]))
        assert store.tx_location("a") == (0, 0)
        assert store.tx_location("c") == (1, 0)
        assert store.get_by_txid("a").header.number == 0
    with BlockStore(tmp_path) as store:  # and after a rebuild of the index
        pass
    (tmp_path / INDEX_FILE).unlink()
    with BlockStore(tmp_path) as store:
        assert store.tx_location("a") == (0, 0)
        assert store.tx_location("c") == (1, 0)


def test_unparsable_entries_are_stored_but_not_indexed(tmp_path):
    block = make_block(0, txids=["x"])
    block.data.data.insert(0, b"\xff\xffnot an envelope")
    block.data.data.append(envelope(""))  # no txid
    with BlockStore(tmp_path) as store:
        store.append(block)
        assert store.tx_location("x") == (0, 1)
        assert store.get_by_number(0) == block


def test_reopen_keeps_everything_and_appends_continue(tmp_path):
    with BlockStore(tmp_path) as store:
        blocks = fill(store, 4)
    with BlockStore(tmp_path) as store:
        assert store.height == 4
        assert list(store.iter_from(0)) == blocks
        blocks += fill(store, 2)
        assert store.get_by_txid(txid_for(5, 0)) == blocks[5]


def test_segments_roll_and_are_read_across(tmp_path):
    with BlockStore(tmp_path, max_segment_bytes=2000) as store:
        blocks = fill(store, 20, payload_size=300)
    files = sorted(p.name for p in tmp_path.glob("blockfile_*"))
    assert len(files) > 3
    for name in files:
        assert (tmp_path / name).stat().st_size <= 2000
    with BlockStore(tmp_path, max_segment_bytes=2000) as store:
        assert list(store.iter_from(0)) == blocks
        assert store.get_by_txid(txid_for(13, 1)) == blocks[13]
        blocks += fill(store, 3, payload_size=300)
        assert store.last_block == blocks[-1]


def test_oversized_block_gets_its_own_segment(tmp_path):
    with BlockStore(tmp_path, max_segment_bytes=500) as store:
        blocks = fill(store, 3, payload_size=2000)
        assert list(store.iter_from(0)) == blocks


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda start, end: start + 3, id="short-length"),
        pytest.param(lambda start, end: start + 8, id="header-only"),
        pytest.param(lambda start, end: end - 1, id="short-body"),
    ],
)
def test_torn_last_record_is_truncated(tmp_path, cut):
    with BlockStore(tmp_path) as store:
        blocks = fill(store, 5)
    seg = tmp_path / SEG0
    start, end = record_offsets(seg)[-1]
    with open(seg, "r+b") as f:
        f.truncate(cut(start, end))
    with BlockStore(tmp_path) as store:
        assert store.height == 4
        assert list(store.iter_from(0)) == blocks[:4]
        assert seg.stat().st_size == start
        assert store.tx_location(txid_for(4, 0)) is None  # index entries past the end removed
        store.append(blocks[4])
        assert store.get_by_txid(txid_for(4, 0)) == blocks[4]
    with BlockStore(tmp_path) as store:
        assert list(store.iter_from(0)) == blocks


def test_crc_mismatch_in_last_record_is_truncated(tmp_path):
    with BlockStore(tmp_path) as store:
        blocks = fill(store, 3)
    seg = tmp_path / SEG0
    start, end = record_offsets(seg)[-1]
    data = bytearray(seg.read_bytes())
    data[end - 5] ^= 0x01
    seg.write_bytes(bytes(data))
    with BlockStore(tmp_path) as store:
        assert store.height == 2
        assert seg.stat().st_size == start
        fill(store, 1)
        assert store.get_by_number(2) == blocks[2]


@pytest.mark.parametrize(
    "garbage",
    [b"\x00", b"\x00" * 100, random.Random(7).randbytes(37), b"\xff" * 8],
    ids=["zero-byte", "zero-filled", "random", "huge-length"],
)
def test_garbage_tail_is_truncated(tmp_path, garbage):
    with BlockStore(tmp_path) as store:
        blocks = fill(store, 3)
    seg = tmp_path / SEG0
    size = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(garbage)
    with BlockStore(tmp_path) as store:
        assert store.height == 3
        assert seg.stat().st_size == size
        assert list(store.iter_from(0)) == blocks


def test_block_written_but_not_indexed_is_reindexed(tmp_path):
    """A crash between the block file fsync and the index commit."""
    with BlockStore(tmp_path) as store:
        blocks = fill(store, 2)
    extra = make_block(2, txids=["late"])
    body = extra.SerializeToString()
    with open(tmp_path / SEG0, "ab") as f:
        f.write(_encode_record(body))
    with BlockStore(tmp_path) as store:
        assert store.height == 3
        assert store.get_by_hash(block_header_hash(extra.header)) == extra
        assert store.tx_location("late") == (2, 0)
        assert list(store.iter_from(0)) == [*blocks, extra]


def test_missing_index_is_rebuilt(tmp_path):
    with BlockStore(tmp_path, max_segment_bytes=1500) as store:
        blocks = fill(store, 10, payload_size=200)
    for name in os.listdir(tmp_path):
        if name.startswith(INDEX_FILE):
            os.remove(tmp_path / name)
    with BlockStore(tmp_path, max_segment_bytes=1500) as store:
        assert store.height == 10
        assert list(store.iter_from(0)) == blocks
        assert store.tx_location(txid_for(7, 2)) == (7, 2)


def test_bad_record_in_earlier_segment_is_corruption(tmp_path):
    with BlockStore(tmp_path, max_segment_bytes=1500) as store:
        fill(store, 10, payload_size=200)
    (tmp_path / INDEX_FILE).unlink()
    seg = tmp_path / SEG0
    data = bytearray(seg.read_bytes())
    data[20] ^= 0xFF
    seg.write_bytes(bytes(data))
    with pytest.raises(BlockStoreCorruption, match="not the last block file"):
        BlockStore(tmp_path, max_segment_bytes=1500)


def test_index_txids_disabled_then_enabled(tmp_path):
    with BlockStore(tmp_path, index_txids=False) as store:
        blocks = fill(store, 3)
        with pytest.raises(BlockStoreError, match="index_txids=False"):
            store.tx_location(txid_for(0, 0))
        assert store.get_by_hash(block_header_hash(blocks[1].header)) == blocks[1]
    with BlockStore(tmp_path, index_txids=True) as store:
        assert store.tx_location(txid_for(1, 2)) == (1, 2)


def test_closed_store_refuses_work(tmp_path):
    store = BlockStore(tmp_path)
    fill(store, 1)
    store.close()
    store.close()
    with pytest.raises(BlockStoreError):
        store.append(make_block(1))
    with pytest.raises(BlockStoreError):
        store.get_by_number(0)


def test_concurrent_readers_follow_the_writer(tmp_path):
    total = 150
    errors: list[BaseException] = []
    with BlockStore(tmp_path) as store:

        def reader() -> None:
            try:
                n = 0
                while n < total:
                    assert store.wait_for_height(n + 1, timeout=10)
                    for block in store.iter_from(n):
                        assert block.header.number == n
                        assert store.get_by_txid(txid_for(n, 0)).header.number == n
                        n += 1
            except BaseException as exc:  # noqa: BLE001 - reported to the main thread
                errors.append(exc)

        readers = [threading.Thread(target=reader) for _ in range(4)]
        for t in readers:
            t.start()
        fill(store, total)
        for t in readers:
            t.join(timeout=30)
        assert not errors, errors
        assert store.height == total


def test_crash_right_after_rolling_to_an_empty_segment(tmp_path):
    with BlockStore(tmp_path) as store:
        blocks = fill(store, 3)
    (tmp_path / "blockfile_000001").touch()
    with BlockStore(tmp_path) as store:
        assert list(store.iter_from(0)) == blocks
        blocks += fill(store, 2)
    assert (tmp_path / "blockfile_000001").stat().st_size > 0
    with BlockStore(tmp_path) as store:
        assert list(store.iter_from(0)) == blocks
