"""The peer-side chaincode message state machine, driven by scripted message sequences."""

from __future__ import annotations

import pytest
from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.peer import chaincode_pb2, chaincode_shim_pb2, proposal_pb2, proposal_response_pb2

from heddle.chaincode.runtime.handler import (
    PRIVATE_DATA_UNSUPPORTED,
    HandlerError,
    HandlerState,
    InvokeRequested,
    ProtocolViolation,
    Registered,
    ShimHandler,
    TxCompleted,
    TxFailed,
)

Msg = chaincode_shim_pb2.ChaincodeMessage
S = chaincode_shim_pb2
NS = "basic"


class RecordingSimulator:
    """Stands in for heddle.ledger.simulator.TxSimulator: a dict plus a call log."""

    def __init__(self, data: dict[str, bytes] | None = None):
        self.data = dict(data or {})
        self.metadata: dict[str, dict[str, bytes]] = {}
        self.calls: list[tuple] = []
        self.closed_iterators = 0

    def get_state(self, ns, key):
        self.calls.append(("get_state", ns, key))
        return self.data.get(key)

    def get_state_multiple(self, ns, keys):
        self.calls.append(("get_state_multiple", ns, tuple(keys)))
        return [self.data.get(k) for k in keys]

    def set_state(self, ns, key, value):
        if not key:
            raise ValueError("empty key")
        self.calls.append(("set_state", ns, key, value))

    def delete_state(self, ns, key):
        self.calls.append(("delete_state", ns, key))

    def get_state_metadata(self, ns, key):
        self.calls.append(("get_state_metadata", ns, key))
        return self.metadata.get(key, {})

    def set_state_metadata(self, ns, key, metadata):
        self.calls.append(("set_state_metadata", ns, key, metadata))

    def _rows(self, start, end):
        return [(k, self.data[k]) for k in sorted(self.data) if k >= start and (not end or k < end)]

    def get_state_range(self, ns, start, end):
        self.calls.append(("get_state_range", ns, start, end))
        sim = self

        class It:
            def __init__(self):
                self._it = iter(sim._rows(start, end))

            def __iter__(self):
                return self

            def __next__(self):
                return next(self._it)

            def close(self):
                sim.closed_iterators += 1

        return It()

    def get_state_range_paged(self, ns, start, end, page_size, bookmark):
        self.calls.append(("get_state_range_paged", ns, start, end, page_size, bookmark))
        rows = [r for r in self._rows(start, end) if r[0] >= bookmark]
        page, rest = rows[:page_size], rows[page_size:]
        return page, rest[0][0] if rest else ""

    def execute_query(self, ns, query):
        self.calls.append(("execute_query", ns, query))
        return iter(self._rows("", ""))

    def execute_query_paged(self, ns, query, page_size, bookmark):
        self.calls.append(("execute_query_paged", ns, query, page_size, bookmark))
        return self._rows("", "")[:page_size], "next"

    def get_history_for_key(self, ns, key):
        self.calls.append(("get_history_for_key", ns, key))
        return iter(
            [
                kv_query_result_pb2.KeyModification(tx_id="t2", value=b"v2"),
                kv_query_result_pb2.KeyModification(tx_id="t1", is_delete=True),
            ]
        )


def registered_handler(**kwargs) -> ShimHandler:
    handler = ShimHandler(**kwargs)
    step = handler.receive(
        Msg(type=Msg.REGISTER, payload=chaincode_pb2.ChaincodeID(name="basic_1.0:ab").SerializeToString())
    )
    assert [m.type for m in step.send] == [Msg.REGISTERED, Msg.READY]
    return handler


def start(handler, sim, txid="tx1", channel="mychannel", is_init=False):
    return handler.start_transaction(
        channel, txid, NS, chaincode_pb2.ChaincodeInput(args=[b"Fn", b"a"]), sim, None, is_init
    )


def request(handler, msg_type, payload, txid="tx1", channel="mychannel"):
    step = handler.receive(
        Msg(type=msg_type, payload=payload.SerializeToString(), txid=txid, channel_id=channel)
    )
    assert len(step.send) == 1 and not step.events
    return step.send[0]


def ok_payload(reply) -> bytes:
    assert reply.type == Msg.RESPONSE, reply.payload
    return reply.payload


def error_text(reply) -> str:
    assert reply.type == Msg.ERROR
    return reply.payload.decode()


# --- handshake -----------------------------------------------------------------------


def test_register_is_answered_with_registered_then_ready():
    handler = ShimHandler()
    step = handler.receive(
        Msg(type=Msg.REGISTER, payload=chaincode_pb2.ChaincodeID(name="basic_1.0:ab").SerializeToString())
    )
    assert [m.type for m in step.send] == [Msg.REGISTERED, Msg.READY]
    assert step.events == [Registered("basic_1.0:ab")]
    assert handler.state is HandlerState.READY


def test_first_message_other_than_register_is_a_protocol_violation():
    handler = ShimHandler()
    step = handler.receive(Msg(type=Msg.GET_STATE, txid="t"))
    assert step.send[0].type == Msg.ERROR
    assert "expected REGISTER first, got GET_STATE" in step.send[0].payload.decode()
    assert isinstance(step.events[0], ProtocolViolation)
    assert handler.state is HandlerState.CLOSED


def test_register_with_garbage_or_without_name_is_refused():
    bad = ShimHandler().receive(Msg(type=Msg.REGISTER, payload=b"\xff\xff\xff"))
    assert isinstance(bad.events[0], ProtocolViolation) and "malformed REGISTER" in bad.events[0].message
    empty = ShimHandler().receive(Msg(type=Msg.REGISTER, payload=b""))
    assert isinstance(empty.events[0], ProtocolViolation)


def test_second_register_is_an_error_but_keeps_the_stream():
    handler = registered_handler()
    step = handler.receive(Msg(type=Msg.REGISTER, payload=b""))
    assert "already registered" in step.send[0].payload.decode()
    assert handler.state is HandlerState.READY


def test_keepalive_is_ignored_in_any_state():
    assert ShimHandler().receive(Msg(type=Msg.KEEPALIVE)).send == []


def test_transaction_before_ready_is_refused():
    with pytest.raises(HandlerError, match="not ready"):
        start(ShimHandler(), RecordingSimulator())


# --- transactions ---------------------------------------------------------------------


def test_transaction_message_carries_input_proposal_and_ids():
    handler = registered_handler()
    proposal = proposal_pb2.SignedProposal(proposal_bytes=b"p", signature=b"s")
    msg = handler.start_transaction(
        "mychannel", "tx1", NS, chaincode_pb2.ChaincodeInput(args=[b"Fn"]), RecordingSimulator(), proposal
    )
    assert msg.type == Msg.TRANSACTION and msg.txid == "tx1" and msg.channel_id == "mychannel"
    assert chaincode_pb2.ChaincodeInput.FromString(msg.payload).args == [b"Fn"]
    assert msg.proposal == proposal
    assert start(handler, RecordingSimulator(), txid="tx2", is_init=True).type == Msg.INIT


def test_duplicate_txid_on_one_stream_is_refused():
    handler = registered_handler()
    start(handler, RecordingSimulator())
    with pytest.raises(HandlerError, match="already running"):
        start(handler, RecordingSimulator())


def test_completed_yields_response_and_event():
    handler = registered_handler()
    start(handler, RecordingSimulator())
    response = proposal_response_pb2.Response(status=200, payload=b"ok")
    done = Msg(type=Msg.COMPLETED, payload=response.SerializeToString(), txid="tx1", channel_id="mychannel")
    done.chaincode_event.event_name = "Transferred"
    done.chaincode_event.payload = b"x"
    step = handler.receive(done)
    (event,) = step.events
    assert isinstance(event, TxCompleted) and event.response == response
    assert event.event.event_name == "Transferred"
    assert handler.in_flight() == []


def test_chaincode_error_message_fails_the_transaction():
    handler = registered_handler()
    start(handler, RecordingSimulator())
    step = handler.receive(Msg(type=Msg.ERROR, payload=b"boom", txid="tx1", channel_id="mychannel"))
    assert step.events == [TxFailed("mychannel", "tx1", "boom")]


def test_malformed_completed_fails_the_transaction():
    handler = registered_handler()
    start(handler, RecordingSimulator())
    step = handler.receive(Msg(type=Msg.COMPLETED, payload=b"\xff\xff", txid="tx1", channel_id="mychannel"))
    assert isinstance(step.events[0], TxFailed) and "malformed COMPLETED" in step.events[0].message


def test_completed_for_unknown_txid_is_ignored():
    handler = registered_handler()
    assert handler.receive(Msg(type=Msg.COMPLETED, txid="late", channel_id="mychannel")).events == []


def test_request_for_unknown_txid_gets_an_error():
    handler = registered_handler()
    reply = request(handler, Msg.GET_STATE, S.GetState(key="a"), txid="nope")
    assert "no transaction context for txid nope" in error_text(reply)


def test_two_transactions_interleave_on_one_stream():
    handler = registered_handler()
    sim1, sim2 = RecordingSimulator({"k": b"one"}), RecordingSimulator({"k": b"two"})
    start(handler, sim1, txid="a")
    start(handler, sim2, txid="b")
    assert ok_payload(request(handler, Msg.GET_STATE, S.GetState(key="k"), txid="b")) == b"two"
    assert ok_payload(request(handler, Msg.GET_STATE, S.GetState(key="k"), txid="a")) == b"one"
    request(handler, Msg.PUT_STATE, S.PutState(key="k", value=b"A"), txid="a")
    handler.receive(Msg(type=Msg.COMPLETED, txid="b", channel_id="mychannel"))
    assert handler.in_flight() == [("mychannel", "a")]
    assert ("set_state", NS, "k", b"A") in sim1.calls and all(c[0] == "get_state" for c in sim2.calls)


def test_same_txid_on_two_channels_is_two_transactions():
    handler = registered_handler()
    start(handler, RecordingSimulator({"k": b"1"}), channel="c1")
    start(handler, RecordingSimulator({"k": b"2"}), channel="c2")
    assert ok_payload(request(handler, Msg.GET_STATE, S.GetState(key="k"), channel="c2")) == b"2"


# --- each request type -------------------------------------------------------------------


def test_get_put_del_state():
    handler = registered_handler()
    sim = RecordingSimulator({"a": b"1"})
    start(handler, sim)
    assert ok_payload(request(handler, Msg.GET_STATE, S.GetState(key="a"))) == b"1"
    assert ok_payload(request(handler, Msg.GET_STATE, S.GetState(key="missing"))) == b""
    assert ok_payload(request(handler, Msg.PUT_STATE, S.PutState(key="b", value=b"2"))) == b""
    assert ok_payload(request(handler, Msg.DEL_STATE, S.DelState(key="a"))) == b""
    assert sim.calls == [
        ("get_state", NS, "a"),
        ("get_state", NS, "missing"),
        ("set_state", NS, "b", b"2"),
        ("delete_state", NS, "a"),
    ]


def test_simulator_refusal_becomes_an_error_reply():
    handler = registered_handler()
    start(handler, RecordingSimulator())
    assert error_text(request(handler, Msg.PUT_STATE, S.PutState(key="", value=b"x"))) == "empty key"


def test_get_state_multiple():
    handler = registered_handler()
    start(handler, RecordingSimulator({"a": b"1", "c": b"3"}))
    reply = request(handler, Msg.GET_STATE_MULTIPLE, S.GetStateMultiple(keys=["a", "b", "c"]))
    assert list(S.GetStateMultipleResult.FromString(ok_payload(reply)).values) == [b"1", b"", b"3"]


def test_state_metadata_get_and_put():
    handler = registered_handler()
    sim = RecordingSimulator()
    sim.metadata["a"] = {"VALIDATION_PARAMETER": b"policy"}
    start(handler, sim)
    reply = request(handler, Msg.GET_STATE_METADATA, S.GetStateMetadata(key="a"))
    entries = S.StateMetadataResult.FromString(ok_payload(reply)).entries
    assert [(e.metakey, e.value) for e in entries] == [("VALIDATION_PARAMETER", b"policy")]
    put = S.PutStateMetadata(key="a", metadata=S.StateMetadata(metakey="VALIDATION_PARAMETER", value=b"p2"))
    ok_payload(request(handler, Msg.PUT_STATE_METADATA, put))
    assert sim.calls[-1] == ("set_state_metadata", NS, "a", {"VALIDATION_PARAMETER": b"p2"})
    assert "metadata key" in error_text(request(handler, Msg.PUT_STATE_METADATA, S.PutStateMetadata(key="a")))


def test_write_batch_applies_records_in_order():
    handler = registered_handler()
    sim = RecordingSimulator()
    start(handler, sim)
    rec = S.WriteRecord
    batch = S.WriteBatchState(
        rec=[rec(key="a", value=b"1", type=rec.PUT_STATE), rec(key="b", type=rec.DEL_STATE)]
    )
    ok_payload(request(handler, Msg.WRITE_BATCH_STATE, batch))
    assert sim.calls == [("set_state", NS, "a", b"1"), ("delete_state", NS, "b")]


def range_handler(rows: int, batch: int = 3):
    handler = registered_handler(query_batch=batch)
    sim = RecordingSimulator({f"k{i:02d}": str(i).encode() for i in range(rows)})
    start(handler, sim)
    return handler, sim


def kv_keys(response: S.QueryResponse) -> list[str]:
    return [kv_query_result_pb2.KV.FromString(r.resultBytes).key for r in response.results]


def test_range_query_pages_through_batches_with_query_state_next():
    handler, sim = range_handler(7)
    first = S.QueryResponse.FromString(
        ok_payload(request(handler, Msg.GET_STATE_BY_RANGE, S.GetStateByRange(startKey="", endKey="")))
    )
    assert kv_keys(first) == ["k00", "k01", "k02"] and first.has_more
    kv = kv_query_result_pb2.KV.FromString(first.results[0].resultBytes)
    assert (kv.namespace, kv.value) == (NS, b"0")
    second = S.QueryResponse.FromString(
        ok_payload(request(handler, Msg.QUERY_STATE_NEXT, S.QueryStateNext(id=first.id)))
    )
    assert kv_keys(second) == ["k03", "k04", "k05"] and second.has_more
    third = S.QueryResponse.FromString(
        ok_payload(request(handler, Msg.QUERY_STATE_NEXT, S.QueryStateNext(id=first.id)))
    )
    assert kv_keys(third) == ["k06"] and not third.has_more
    assert sim.closed_iterators == 1
    # exhausted queries are gone; closing again is harmless
    assert "does not exist" in error_text(
        request(handler, Msg.QUERY_STATE_NEXT, S.QueryStateNext(id=first.id))
    )
    ok_payload(request(handler, Msg.QUERY_STATE_CLOSE, S.QueryStateClose(id=first.id)))


def test_exact_multiple_of_batch_reports_no_more():
    handler, _ = range_handler(3)
    first = S.QueryResponse.FromString(
        ok_payload(request(handler, Msg.GET_STATE_BY_RANGE, S.GetStateByRange(startKey="", endKey="")))
    )
    assert len(first.results) == 3 and not first.has_more


def test_query_state_close_closes_the_iterator_early():
    handler, sim = range_handler(7)
    first = S.QueryResponse.FromString(
        ok_payload(request(handler, Msg.GET_STATE_BY_RANGE, S.GetStateByRange(startKey="k", endKey="l")))
    )
    closed = S.QueryResponse.FromString(
        ok_payload(request(handler, Msg.QUERY_STATE_CLOSE, S.QueryStateClose(id=first.id)))
    )
    assert closed.id == first.id and sim.closed_iterators == 1


def test_transaction_end_closes_open_queries():
    handler, sim = range_handler(7)
    request(handler, Msg.GET_STATE_BY_RANGE, S.GetStateByRange(startKey="", endKey=""))
    request(handler, Msg.GET_STATE_BY_RANGE, S.GetStateByRange(startKey="", endKey=""))
    handler.receive(Msg(type=Msg.COMPLETED, txid="tx1", channel_id="mychannel"))
    assert sim.closed_iterators == 2


def test_two_open_queries_have_distinct_ids():
    handler, _ = range_handler(7)
    a = S.QueryResponse.FromString(
        ok_payload(request(handler, Msg.GET_STATE_BY_RANGE, S.GetStateByRange(startKey="", endKey="")))
    )
    b = S.QueryResponse.FromString(
        ok_payload(request(handler, Msg.GET_STATE_BY_RANGE, S.GetStateByRange(startKey="k03", endKey="")))
    )
    assert a.id != b.id
    assert kv_keys(
        S.QueryResponse.FromString(
            ok_payload(request(handler, Msg.QUERY_STATE_NEXT, S.QueryStateNext(id=b.id)))
        )
    ) == ["k06"]


def test_paged_range_query_returns_bookmark_metadata():
    handler, sim = range_handler(7, batch=100)
    meta = S.QueryMetadata(pageSize=4, bookmark="k01").SerializeToString()
    reply = request(handler, Msg.GET_STATE_BY_RANGE, S.GetStateByRange(startKey="", endKey="", metadata=meta))
    response = S.QueryResponse.FromString(ok_payload(reply))
    assert kv_keys(response) == ["k01", "k02", "k03", "k04"] and not response.has_more
    page = S.QueryResponseMetadata.FromString(response.metadata)
    assert (page.fetched_records_count, page.bookmark) == (4, "k05")
    assert sim.calls[-1] == ("get_state_range_paged", NS, "", "", 4, "k01")


def test_negative_page_size_is_refused():
    handler, _ = range_handler(2)
    meta = S.QueryMetadata(pageSize=-1).SerializeToString()
    reply = request(handler, Msg.GET_STATE_BY_RANGE, S.GetStateByRange(metadata=meta))
    assert "page size" in error_text(reply)


def test_rich_query_plain_and_paged():
    handler, sim = range_handler(2, batch=100)
    selector = '{"selector":{"Owner":"Tom"}}'
    plain = S.QueryResponse.FromString(
        ok_payload(request(handler, Msg.GET_QUERY_RESULT, S.GetQueryResult(query=selector)))
    )
    assert kv_keys(plain) == ["k00", "k01"]
    meta = S.QueryMetadata(pageSize=1).SerializeToString()
    paged = S.QueryResponse.FromString(
        ok_payload(request(handler, Msg.GET_QUERY_RESULT, S.GetQueryResult(query=selector, metadata=meta)))
    )
    assert kv_keys(paged) == ["k00"]
    assert S.QueryResponseMetadata.FromString(paged.metadata).bookmark == "next"
    assert sim.calls[-1] == ("execute_query_paged", NS, selector, 1, "")


def test_history_for_key_returns_key_modifications():
    handler, _ = range_handler(0)
    response = S.QueryResponse.FromString(
        ok_payload(request(handler, Msg.GET_HISTORY_FOR_KEY, S.GetHistoryForKey(key="a")))
    )
    mods = [kv_query_result_pb2.KeyModification.FromString(r.resultBytes) for r in response.results]
    assert [(m.tx_id, m.is_delete) for m in mods] == [("t2", False), ("t1", True)]


# --- private data, malformed and unexpected messages -----------------------------------------


@pytest.mark.parametrize(
    ("msg_type", "payload"),
    [
        (Msg.GET_STATE, S.GetState(key="a", collection="c")),
        (Msg.PUT_STATE, S.PutState(key="a", value=b"v", collection="c")),
        (Msg.DEL_STATE, S.DelState(key="a", collection="c")),
        (Msg.GET_STATE_BY_RANGE, S.GetStateByRange(collection="c")),
        (Msg.GET_QUERY_RESULT, S.GetQueryResult(query="{}", collection="c")),
        (Msg.GET_STATE_METADATA, S.GetStateMetadata(key="a", collection="c")),
        (Msg.GET_STATE_MULTIPLE, S.GetStateMultiple(keys=["a"], collection="c")),
        (Msg.GET_PRIVATE_DATA_HASH, S.GetState(key="a", collection="c")),
        (Msg.PURGE_PRIVATE_DATA, S.DelState(key="a", collection="c")),
    ],
)
def test_private_data_requests_are_refused(msg_type, payload):
    handler = registered_handler()
    sim = RecordingSimulator()
    start(handler, sim)
    assert error_text(request(handler, msg_type, payload)) == PRIVATE_DATA_UNSUPPORTED
    assert sim.calls == []


def test_malformed_request_payload_gets_an_error_and_the_stream_continues():
    handler = registered_handler()
    start(handler, RecordingSimulator({"a": b"1"}))
    step = handler.receive(
        Msg(type=Msg.GET_STATE, payload=b"\xff\xff\xff", txid="tx1", channel_id="mychannel")
    )
    assert "malformed GET_STATE payload" in error_text(step.send[0])
    assert ok_payload(request(handler, Msg.GET_STATE, S.GetState(key="a"))) == b"1"


def test_unexpected_message_type_gets_an_error():
    handler = registered_handler()
    start(handler, RecordingSimulator())
    for msg_type in (Msg.READY, Msg.TRANSACTION, 999):
        step = handler.receive(Msg(type=msg_type, txid="tx1", channel_id="mychannel"))
        assert "unexpected message type" in error_text(step.send[0])


# --- chaincode-to-chaincode -------------------------------------------------------------------


def invoke(handler, name, args=(b"Fn",)):
    spec = chaincode_pb2.ChaincodeSpec(
        chaincode_id=chaincode_pb2.ChaincodeID(name=name), input=chaincode_pb2.ChaincodeInput(args=list(args))
    )
    return handler.receive(
        Msg(type=Msg.INVOKE_CHAINCODE, payload=spec.SerializeToString(), txid="tx1", channel_id="mychannel")
    )


def test_invoke_chaincode_asks_the_shell_then_wraps_the_response_as_fabric_does():
    handler = registered_handler()
    sim = RecordingSimulator()
    start(handler, sim)
    step = invoke(handler, "other:1.0", [b"Get", b"x"])
    (event,) = step.events
    assert isinstance(event, InvokeRequested)
    assert (event.chaincode_name, list(event.input.args), event.simulator) == ("other", [b"Get", b"x"], sim)
    reply = handler.invoke_finished(
        "mychannel", "tx1", proposal_response_pb2.Response(status=200, payload=b"r")
    )
    inner = Msg.FromString(ok_payload(reply))
    assert inner.type == Msg.COMPLETED
    assert proposal_response_pb2.Response.FromString(inner.payload).payload == b"r"
    failed = handler.invoke_finished("mychannel", "tx1", None, "chaincode other is not defined")
    assert error_text(failed) == "chaincode other is not defined"


def test_invoke_on_same_channel_by_qualified_name_is_allowed():
    handler = registered_handler()
    start(handler, RecordingSimulator())
    assert isinstance(invoke(handler, "other/mychannel").events[0], InvokeRequested)


def test_cross_channel_invoke_is_refused_with_a_clear_message():
    handler = registered_handler()
    start(handler, RecordingSimulator())
    step = invoke(handler, "other/otherchannel")
    assert step.events == []
    assert "only same-channel calls" in error_text(step.send[0])


def test_invoke_without_a_name_or_of_itself_is_refused():
    handler = registered_handler()
    start(handler, RecordingSimulator())
    assert "chaincode_id.name" in error_text(invoke(handler, "").send[0])
    assert "cannot invoke itself" in error_text(invoke(handler, NS).send[0])
    # what fabric-chaincode-python 2.5.4 sends: a bare ChaincodeInput, no name
    bare = chaincode_pb2.ChaincodeInput(args=[b"other", b"Fn"]).SerializeToString()
    step = handler.receive(Msg(type=Msg.INVOKE_CHAINCODE, payload=bare, txid="tx1", channel_id="mychannel"))
    assert step.send[0].type == Msg.ERROR


def test_close_reports_in_flight_transactions_and_closes_queries():
    handler, sim = range_handler(7)
    request(handler, Msg.GET_STATE_BY_RANGE, S.GetStateByRange())
    assert handler.close() == [("mychannel", "tx1")]
    assert sim.closed_iterators == 1 and handler.state is HandlerState.CLOSED
