"""The wire codec is deterministic, versioned and rejects every malformed input precisely."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from raft_sim import Cluster, NetConfig

from heddle.raft import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    RaftCodecError,
    Snapshot,
    SnapshotMetadata,
    decode_conf_change,
    decode_entries,
    decode_entry,
    decode_hard_state,
    decode_message,
    decode_snapshot,
    encode_conf_change,
    encode_entries,
    encode_entry,
    encode_hard_state,
    encode_message,
    encode_snapshot,
)

APP = Message(
    MessageType.APP,
    to=2,
    frm=1,
    term=3,
    log_term=2,
    index=4,
    entries=(Entry(2, 5, EntryType.NORMAL, b"a"), Entry(3, 6, EntryType.CONF_CHANGE, b"bc")),
    commit=4,
)
SNAP = Message(
    MessageType.SNAP,
    to=3,
    frm=1,
    term=5,
    snapshot=Snapshot(SnapshotMetadata(10, 4, ConfState((1, 2, 3), (4,))), b"state"),
)


def _recorded_messages() -> list[bytes]:
    c = Cluster(3, seed=21, snapshot_interval=4, net=NetConfig(drop=0.2, max_delay=2))
    c.record_sent = True
    ld = c.wait_leader(300)
    lag = next(sn.id for sn in c.alive() if sn is not ld)
    c.crash(lag)
    for i in range(20):
        c.propose(b"m%d" % i)
        c.tick()
    c.restart(lag)
    c.heal_all()
    c.wait_leader().node.read_index(b"ctx")
    c.commit_on_all(b"end")
    return c.sent


RECORDED = _recorded_messages()


def test_golden_encoding_pins_the_v1_format():
    hb = Message(MessageType.HEARTBEAT, to=2, frm=1, term=7, commit=9, context=b"c")
    raw = encode_message(hb)
    head = struct.pack(">BQQQQQQBQ", 8, 2, 1, 7, 0, 0, 9, 0, 0)
    assert raw == b"HR\x01\x01" + head + b"\x00\x00\x00\x01c" + b"\x00\x00\x00\x00" + b"\x00"


def test_every_recorded_message_round_trips_byte_for_byte():
    types = set()
    for raw in RECORDED:
        m = decode_message(raw)
        types.add(m.type)
        assert encode_message(m) == raw
    assert {MessageType.APP, MessageType.SNAP, MessageType.VOTE, MessageType.HEARTBEAT} <= types


def test_struct_round_trips():
    e = Entry(3, 9, EntryType.CONF_CHANGE, b"x")
    assert decode_entry(encode_entry(e)) == e
    assert decode_entries(encode_entries([e, Entry(3, 10)])) == [e, Entry(3, 10)]
    hs = HardState(4, 2, 17)
    assert decode_hard_state(encode_hard_state(hs)) == hs
    assert decode_snapshot(encode_snapshot(SNAP.snapshot)) == SNAP.snapshot
    cc = ConfChange(ConfChangeType.ADD_LEARNER, 9, b"addr")
    assert decode_conf_change(encode_conf_change(cc)) == cc
    assert decode_message(encode_message(APP)) == APP
    assert decode_message(encode_message(SNAP)) == SNAP


@pytest.mark.parametrize("raw", [encode_message(APP), encode_message(SNAP)])
def test_every_truncation_is_rejected(raw):
    for cut in range(len(raw)):
        with pytest.raises(RaftCodecError):
            decode_message(raw[:cut])


def test_trailing_bytes_are_rejected():
    with pytest.raises(RaftCodecError, match="trailing"):
        decode_message(encode_message(APP) + b"\x00")


def _patch(raw: bytes, offset: int, value: bytes) -> bytes:
    return raw[:offset] + value + raw[offset + len(value) :]


@pytest.mark.parametrize(
    ("offset", "value", "match"),
    [
        (0, b"XX", "magic"),
        (2, b"\x02", "version"),
        (3, b"\x02", "kind"),
        (4, b"\x63", "unknown message type"),
        (4 + 1 + 6 * 8, b"\x02", "reject flag"),
        (4 + 1, b"\x00" * 8, "non-zero"),
        (4 + 1 + 16, b"\x00" * 8, "term 0"),
    ],
)
def test_header_defects_are_named(offset, value, match):
    with pytest.raises(RaftCodecError, match=match):
        decode_message(_patch(encode_message(APP), offset, value))


@pytest.mark.parametrize(
    ("msg", "match"),
    [
        (Message(MessageType.HEARTBEAT, 2, 1, 3, entries=(Entry(3, 1),)), "must not carry"),
        (Message(MessageType.SNAP, 2, 1, 3), "requires a snapshot"),
        (Message(MessageType.APP, 2, 2, 3), "both 2"),
        (Message(MessageType.APP, 2, 1, 3, index=4, entries=(Entry(3, 6),)), "start at 6"),
        (Message(MessageType.APP, 2, 1, 3, index=4, entries=(Entry(4, 5),)), "terms outside"),
        (
            Message(MessageType.APP, 2, 1, 3, index=0, entries=(Entry(1, 1), Entry(1, 3))),
            "contiguous",
        ),
        (Message(MessageType.VOTE, 2, 1, 3, log_term=4), "exceeds campaign term"),
        (Message(MessageType.APP, 2, 1, 1 << 64), "u64"),
    ],
)
def test_encode_refuses_shapes_that_decode_would_reject(msg, match):
    with pytest.raises(RaftCodecError, match=match):
        encode_message(msg)


def test_declared_lengths_beyond_the_buffer_are_rejected():
    raw = encode_message(Message(MessageType.HEARTBEAT, 2, 1, 3, context=b"abc"))
    ctx_len_at = 4 + struct.calcsize(">BQQQQQQBQ")
    with pytest.raises(RaftCodecError, match="declares"):
        decode_message(_patch(raw, ctx_len_at, b"\xff\xff\xff\xff"))
    with pytest.raises(RaftCodecError, match="entries count"):
        decode_message(_patch(raw, ctx_len_at + 7, b"\x7f\xff\xff\xff"))


def test_size_limit_is_enforced():
    with pytest.raises(RaftCodecError, match="exceeds limit"):
        decode_message(encode_message(APP), max_bytes=10)


def test_non_bytes_input_is_rejected():
    with pytest.raises(RaftCodecError, match="expected bytes"):
        decode_message("not bytes")  # type: ignore[arg-type]


def test_snapshot_conf_state_is_validated():
    bad = Snapshot(SnapshotMetadata(10, 4, ConfState((1, 2), (2,))), b"")
    with pytest.raises(RaftCodecError, match="both voter and learner"):
        decode_snapshot(encode_snapshot(bad))
    with pytest.raises(RaftCodecError, match="no voters"):
        decode_snapshot(encode_snapshot(Snapshot(SnapshotMetadata(10, 4, ConfState()), b"")))
    dup = Snapshot(SnapshotMetadata(10, 4, ConfState((1, 1))), b"")
    with pytest.raises(RaftCodecError, match="duplicate"):
        decode_snapshot(encode_snapshot(dup))


def test_conf_change_decode_is_strict():
    raw = encode_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))
    with pytest.raises(RaftCodecError, match="unknown conf change type"):
        decode_conf_change(_patch(raw, 4, b"\x09"))
    with pytest.raises(RaftCodecError, match="node_id is 0"):
        decode_conf_change(_patch(raw, 5, b"\x00" * 8))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_codec_errors(data):
    try:
        m = decode_message(data)
    except RaftCodecError:
        return
    assert encode_message(m) == data  # anything accepted is canonical


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.sampled_from(RECORDED), st.data())
def test_mutated_real_messages_raise_only_codec_errors_or_stay_canonical(raw, data):
    pos = data.draw(st.integers(0, len(raw) - 1))
    byte = data.draw(st.integers(0, 255))
    mutated = raw[:pos] + bytes([byte]) + raw[pos + 1 :]
    try:
        m = decode_message(mutated)
    except RaftCodecError:
        return
    assert encode_message(m) == mutated
