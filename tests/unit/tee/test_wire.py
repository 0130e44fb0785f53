import pytest
from hypothesis import given
from hypothesis import strategies as st

from heddle.tee.enclave import wire

messages = st.builds(
    wire.Message,
    kind=st.sampled_from([wire.REQUEST, wire.REPLY]),
    txid=st.integers(0, 2**64 - 1),
    method=st.text(max_size=40),
    stream=st.integers(0, 2**64 - 1),
    status=st.sampled_from([wire.OK, wire.ERROR]),
    body=st.binary(max_size=300),
)


@given(st.lists(messages, max_size=8), st.integers(1, 50))
def test_messages_round_trip_through_any_chunking(msgs, chunk):
    data = b"".join(wire.encode_message(m) for m in msgs)
    dec = wire.FrameDecoder()
    out = []
    for i in range(0, len(data), chunk):
        out += [wire.decode_message(p) for p in dec.feed(data[i : i + chunk])]
    assert out == msgs
    assert dec.pending == 0


def test_partial_frame_waits_for_the_rest():
    data = wire.encode_message(wire.Message(wire.REQUEST, 7, "m", 3, wire.OK, b"body"))
    dec = wire.FrameDecoder()
    assert dec.feed(data[:-1]) == []
    assert dec.pending == len(data) - 1
    assert [wire.decode_message(p) for p in dec.feed(data[-1:])][0].txid == 7


def test_oversized_frame_is_refused_before_buffering():
    dec = wire.FrameDecoder(max_frame=100)
    with pytest.raises(wire.FrameError, match="exceeds"):
        dec.feed((101).to_bytes(4, "big") + b"x")


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"\x01", "shorter"),
        (bytes([9]) + bytes(18) + b"\x00", "kind"),
        (bytes([1]) + bytes(16) + bytes([7, 0]), "status"),
        (bytes([1]) + bytes(16) + bytes([0, 5]) + b"ab", "past the end"),
        (bytes([1]) + bytes(16) + bytes([0, 2]) + b"\xff\xfe", "UTF-8"),
    ],
)
def test_malformed_messages_get_precise_errors(payload, match):
    with pytest.raises(wire.FrameError, match=match):
        wire.decode_message(payload)


def test_repr_never_shows_the_body():
    m = wire.Message(wire.REQUEST, 1, "session.data", 2, wire.OK, b"TOPSECRET")
    assert "TOPSECRET" not in repr(m)
    assert "9 bytes" in repr(m)


def test_channel_call_and_result_framing():
    dec = wire.FrameDecoder()
    (p,) = dec.feed(wire.encode_call("sign", b"\x00payload"))
    assert wire.decode_call(p) == ("sign", b"\x00payload")
    (r,) = dec.feed(wire.encode_result(wire.ERROR, b"why"))
    assert wire.decode_result(r) == (wire.ERROR, b"why")
    with pytest.raises(wire.FrameError):
        wire.decode_call(b"\x05ab")
    with pytest.raises(wire.FrameError):
        wire.decode_result(b"\x09")


def test_each_side_numbers_its_requests_from_its_own_space_and_replies_may_interleave():
    host, enclave = wire.Endpoint(), wire.Endpoint()
    t1, f1 = host.request("a", b"1", stream=5)
    t2, f2 = host.request("b", b"2", stream=6)
    e1, g1 = enclave.request("host.x", b"")
    assert (t1, t2, e1) == (1, 2, 1)  # same numbers, different spaces
    got = enclave.receive(f1 + f2)
    assert [(m.method, m.stream) for m in got] == [("a", 5), ("b", 6)]
    (req,) = host.receive(g1)
    assert req.kind == wire.REQUEST and req.txid == 1
    # the enclave answers b before a; the host gets both, in arrival order
    replies = host.receive(enclave.reply(got[1], b"B") + enclave.reply(got[0], error="no"))
    assert [(m.txid, m.status, m.body) for m in replies] == [
        (2, wire.OK, b"B"),
        (1, wire.ERROR, b"no"),
    ]
    assert host.outstanding == 0 and enclave.outstanding == 1


def test_duplicate_late_and_invented_replies_are_dropped():
    host, enclave = wire.Endpoint(), wire.Endpoint()
    txid, frame = host.request("m")
    (req,) = enclave.receive(frame)
    reply = enclave.reply(req, b"ok")
    assert len(host.receive(reply)) == 1
    assert host.receive(reply) == []  # duplicate
    invented = wire.encode_message(wire.Message(wire.REPLY, 99, "m"))
    assert host.receive(invented) == []
    late_txid, late = host.request("slow")
    host.abandon(late_txid)
    (req2,) = enclave.receive(late)
    assert host.receive(enclave.reply(req2, b"too late")) == []
    assert host.dropped_replies == 3


def test_a_malformed_message_is_skipped_but_broken_framing_is_fatal():
    ep = wire.Endpoint()
    good = wire.encode_message(wire.Message(wire.REQUEST, 1, "m"))
    assert [m.method for m in ep.receive(wire.frame(b"\x09junk-junk-junk-junk") + good)] == ["m"]
    assert ep.malformed == 1
    with pytest.raises(wire.FrameError):
        ep.receive((wire.MAX_FRAME + 1).to_bytes(4, "big"))
