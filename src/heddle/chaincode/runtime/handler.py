"""The peer side of one chaincode_shim.proto stream, as a sans-I/O state machine.

``ShimHandler`` takes ChaincodeMessages from the chaincode (``receive``) and returns a
``Step``: the messages to send back and the events the I/O shell acts on (registered,
transaction completed or failed, another chaincode to invoke, protocol violation).
It never touches sockets, clocks or tasks; ledger reads and writes go to the
transaction's simulator, which is plain code. Transactions are multiplexed by
(channel_id, txid), as Fabric does.
"""

from __future__ import annotations

import enum
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.peer import (
    chaincode_event_pb2,
    chaincode_pb2,
    chaincode_shim_pb2,
    proposal_pb2,
    proposal_response_pb2,
)
from google.protobuf.message import DecodeError

log = logging.getLogger(__name__)

Msg = chaincode_shim_pb2.ChaincodeMessage
# Rows per RESPONSE batch of a query; the shim asks for more with QUERY_STATE_NEXT.
DEFAULT_QUERY_BATCH = 100
PRIVATE_DATA_UNSUPPORTED = "private data is not supported yet"
TxKey = tuple[str, str]  # (channel_id, txid)


class HandlerState(enum.Enum):
    CREATED = "created"  # waiting for REGISTER
    READY = "ready"  # REGISTERED and READY sent
    CLOSED = "closed"  # protocol violation or connection gone


@dataclass(frozen=True)
class Registered:
    """The chaincode registered under this id (for a package: its package id)."""

    chaincode_id: str


@dataclass(frozen=True)
class TxCompleted:
    channel_id: str
    txid: str
    response: proposal_response_pb2.Response
    event: chaincode_event_pb2.ChaincodeEvent | None


@dataclass(frozen=True)
class TxFailed:
    channel_id: str
    txid: str
    message: str


@dataclass(frozen=True)
class InvokeRequested:
    """The chaincode calls another chaincode in the same transaction; answer with
    ``ShimHandler.invoke_finished``."""

    channel_id: str
    txid: str
    chaincode_name: str
    input: chaincode_pb2.ChaincodeInput
    simulator: Any
    signed_proposal: proposal_pb2.SignedProposal | None


@dataclass(frozen=True)
class ProtocolViolation:
    """The stream cannot continue; the shell closes it."""

    message: str


Event = Registered | TxCompleted | TxFailed | InvokeRequested | ProtocolViolation


@dataclass
class Step:
    send: list[Msg] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


class HandlerError(Exception):
    """A request the handler refuses; becomes an ERROR message to the chaincode."""


@dataclass
class _Query:
    rows: Iterator[bytes]  # serialized KV / KeyModification per row
    close: Callable[[], None]
    metadata: chaincode_shim_pb2.QueryResponseMetadata | None = None
    # looks ahead without consuming (TxSimulator's RangeIterator.has_next records no read)
    has_next: Callable[[], bool] | None = None


@dataclass
class _Tx:
    channel_id: str
    txid: str
    namespace: str
    simulator: Any
    signed_proposal: proposal_pb2.SignedProposal | None
    queries: dict[str, _Query] = field(default_factory=dict)
    query_ids: Iterator[int] = field(default_factory=itertools.count)


class ShimHandler:
    """Per-connection protocol state for one chaincode stream."""

    def __init__(self, *, query_batch: int = DEFAULT_QUERY_BATCH):
        self.state = HandlerState.CREATED
        self.chaincode_id = ""
        self.query_batch = query_batch
        self._txs: dict[TxKey, _Tx] = {}

    # --- transactions the peer starts -------------------------------------------------

    def start_transaction(
        self,
        channel_id: str,
        txid: str,
        namespace: str,
        input: chaincode_pb2.ChaincodeInput,
        simulator: Any,
        signed_proposal: proposal_pb2.SignedProposal | None = None,
        is_init: bool = False,
    ) -> Msg:
        """Open a transaction context; returns the TRANSACTION (or INIT) message to send."""
        if self.state is not HandlerState.READY:
            raise HandlerError(f"chaincode stream is {self.state.value}, not ready")
        key = (channel_id, txid)
        if key in self._txs:
            raise HandlerError(f"transaction {txid} on channel {channel_id} is already running here")
        self._txs[key] = _Tx(channel_id, txid, namespace, simulator, signed_proposal)
        msg = Msg(
            type=Msg.INIT if is_init else Msg.TRANSACTION,
            txid=txid,
            channel_id=channel_id,
            payload=input.SerializeToString(),
        )
        if signed_proposal is not None:
            msg.proposal.CopyFrom(signed_proposal)
        return msg

    def finish_transaction(self, channel_id: str, txid: str) -> None:
        """Drop a transaction context and close its open queries (done, failed or timed out)."""
        tx = self._txs.pop((channel_id, txid), None)
        if tx is not None:
            for query in tx.queries.values():
                _close_quietly(query)
            tx.queries.clear()

    def has_transaction(self, channel_id: str, txid: str) -> bool:
        return (channel_id, txid) in self._txs

    def in_flight(self) -> list[TxKey]:
        return list(self._txs)

    def invoke_finished(
        self,
        channel_id: str,
        txid: str,
        response: proposal_response_pb2.Response | None,
        error: str | None = None,
    ) -> Msg:
        """Answer a pending INVOKE_CHAINCODE: the called chaincode's Response wrapped in a
        COMPLETED ChaincodeMessage (what Fabric's shims unpack), or an ERROR."""
        if error is not None or response is None:
            return _error(channel_id, txid, error or "chaincode invocation failed")
        completed = Msg(
            type=Msg.COMPLETED, payload=response.SerializeToString(), txid=txid, channel_id=channel_id
        )
        return Msg(type=Msg.RESPONSE, payload=completed.SerializeToString(), txid=txid, channel_id=channel_id)

    def close(self) -> list[TxKey]:
        """The stream ended: close everything; returns the transactions that were in flight."""
        self.state = HandlerState.CLOSED
        keys = self.in_flight()
        for key in keys:
            self.finish_transaction(*key)
        return keys

    # --- messages from the chaincode ---------------------------------------------------

    def receive(self, msg: Msg) -> Step:
        if msg.type == Msg.KEEPALIVE:
            return Step()
        if self.state is HandlerState.CREATED:
            return self._receive_register(msg)
        if self.state is HandlerState.CLOSED:
            return Step()
        if msg.type == Msg.REGISTER:
            return Step(send=[_error(msg.channel_id, msg.txid, "chaincode is already registered")])
        key = (msg.channel_id, msg.txid)
        tx = self._txs.get(key)
        if msg.type in (Msg.COMPLETED, Msg.ERROR):
            return self._receive_end(msg, tx)
        if tx is None:
            return Step(
                send=[_error(msg.channel_id, msg.txid, f"no transaction context for txid {msg.txid}")]
            )
        if msg.type == Msg.INVOKE_CHAINCODE:
            return self._receive_invoke(msg, tx)
        request = _REQUESTS.get(msg.type)
        if request is None:
            text = f"unexpected message type {_type_name(msg.type)}"
            return Step(send=[_error(msg.channel_id, msg.txid, text)])
        try:
            payload = request(self, tx, msg.payload)
        except HandlerError as exc:
            return Step(send=[_error(msg.channel_id, msg.txid, str(exc))])
        except DecodeError as exc:
            name = Msg.Type.Name(msg.type)
            return Step(send=[_error(msg.channel_id, msg.txid, f"malformed {name} payload: {exc}")])
        except Exception as exc:  # the simulator refused: tell the chaincode, keep serving
            log.debug("chaincode request %s failed", Msg.Type.Name(msg.type), exc_info=True)
            return Step(send=[_error(msg.channel_id, msg.txid, str(exc) or type(exc).__name__)])
        return Step(send=[Msg(type=Msg.RESPONSE, payload=payload, txid=msg.txid, channel_id=msg.channel_id)])

    def _receive_register(self, msg: Msg) -> Step:
        if msg.type != Msg.REGISTER:
            self.state = HandlerState.CLOSED
            text = f"expected REGISTER first, got {_type_name(msg.type)}"
            return Step(send=[_error(msg.channel_id, msg.txid, text)], events=[ProtocolViolation(text)])
        try:
            ccid = chaincode_pb2.ChaincodeID.FromString(msg.payload)
        except DecodeError as exc:
            self.state = HandlerState.CLOSED
            text = f"malformed REGISTER payload: {exc}"
            return Step(send=[_error("", "", text)], events=[ProtocolViolation(text)])
        if not ccid.name:
            self.state = HandlerState.CLOSED
            text = "REGISTER without a chaincode name"
            return Step(send=[_error("", "", text)], events=[ProtocolViolation(text)])
        self.chaincode_id = ccid.name
        self.state = HandlerState.READY
        return Step(send=[Msg(type=Msg.REGISTERED), Msg(type=Msg.READY)], events=[Registered(ccid.name)])

    def _receive_end(self, msg: Msg, tx: _Tx | None) -> Step:
        if tx is None:
            # late answer to a transaction that timed out or never existed
            log.debug("ignoring %s for unknown txid %s", _type_name(msg.type), msg.txid)
            return Step()
        self.finish_transaction(msg.channel_id, msg.txid)
        if msg.type == Msg.ERROR:
            text = msg.payload.decode("utf-8", errors="replace") or "chaincode reported an error"
            return Step(events=[TxFailed(msg.channel_id, msg.txid, text)])
        try:
            response = proposal_response_pb2.Response.FromString(msg.payload)
        except DecodeError as exc:
            return Step(events=[TxFailed(msg.channel_id, msg.txid, f"malformed COMPLETED payload: {exc}")])
        event = None
        if msg.HasField("chaincode_event") and msg.chaincode_event.event_name:
            event = chaincode_event_pb2.ChaincodeEvent()
            event.CopyFrom(msg.chaincode_event)
        return Step(events=[TxCompleted(msg.channel_id, msg.txid, response, event)])

    def _receive_invoke(self, msg: Msg, tx: _Tx) -> Step:
        try:
            spec = chaincode_pb2.ChaincodeSpec.FromString(msg.payload)
        except DecodeError as exc:
            return Step(send=[_error(msg.channel_id, msg.txid, f"malformed INVOKE_CHAINCODE payload: {exc}")])
        target = spec.chaincode_id.name
        if not target:
            text = "INVOKE_CHAINCODE payload must be a ChaincodeSpec with chaincode_id.name"
            return Step(send=[_error(msg.channel_id, msg.txid, text)])
        name, _, channel = target.partition("/")
        name = name.split(":", 1)[0]
        if channel and channel != msg.channel_id:
            text = (
                f"calling chaincode {name} on channel {channel} from channel {msg.channel_id} "
                "is not supported: only same-channel calls are"
            )
            return Step(send=[_error(msg.channel_id, msg.txid, text)])
        if name == tx.namespace:
            return Step(send=[_error(msg.channel_id, msg.txid, f"chaincode {name} cannot invoke itself")])
        return Step(
            events=[
                InvokeRequested(msg.channel_id, msg.txid, name, spec.input, tx.simulator, tx.signed_proposal)
            ]
        )

    # --- request handlers: payload bytes in, RESPONSE payload bytes out -----------------

    def _get_state(self, tx: _Tx, payload: bytes) -> bytes:
        req = chaincode_shim_pb2.GetState.FromString(payload)
        _refuse_collection(req.collection)
        return tx.simulator.get_state(tx.namespace, req.key) or b""

    def _get_state_multiple(self, tx: _Tx, payload: bytes) -> bytes:
        req = chaincode_shim_pb2.GetStateMultiple.FromString(payload)
        _refuse_collection(req.collection)
        values = tx.simulator.get_state_multiple(tx.namespace, list(req.keys))
        result = chaincode_shim_pb2.GetStateMultipleResult(values=[v or b"" for v in values])
        return result.SerializeToString()

    def _put_state(self, tx: _Tx, payload: bytes) -> bytes:
        req = chaincode_shim_pb2.PutState.FromString(payload)
        _refuse_collection(req.collection)
        tx.simulator.set_state(tx.namespace, req.key, req.value)
        return b""

    def _del_state(self, tx: _Tx, payload: bytes) -> bytes:
        req = chaincode_shim_pb2.DelState.FromString(payload)
        _refuse_collection(req.collection)
        tx.simulator.delete_state(tx.namespace, req.key)
        return b""

    def _get_state_metadata(self, tx: _Tx, payload: bytes) -> bytes:
        req = chaincode_shim_pb2.GetStateMetadata.FromString(payload)
        _refuse_collection(req.collection)
        metadata = tx.simulator.get_state_metadata(tx.namespace, req.key) or {}
        entries = [chaincode_shim_pb2.StateMetadata(metakey=k, value=v) for k, v in sorted(metadata.items())]
        result = chaincode_shim_pb2.StateMetadataResult(entries=entries)
        return result.SerializeToString()

    def _put_state_metadata(self, tx: _Tx, payload: bytes) -> bytes:
        req = chaincode_shim_pb2.PutStateMetadata.FromString(payload)
        _refuse_collection(req.collection)
        if not req.metadata.metakey:
            raise HandlerError("PUT_STATE_METADATA without a metadata key")
        tx.simulator.set_state_metadata(tx.namespace, req.key, {req.metadata.metakey: req.metadata.value})
        return b""

    def _write_batch(self, tx: _Tx, payload: bytes) -> bytes:
        req = chaincode_shim_pb2.WriteBatchState.FromString(payload)
        record_type = chaincode_shim_pb2.WriteRecord
        for rec in req.rec:
            _refuse_collection(rec.collection)
            if rec.type == record_type.PUT_STATE:
                tx.simulator.set_state(tx.namespace, rec.key, rec.value)
            elif rec.type == record_type.DEL_STATE:
                tx.simulator.delete_state(tx.namespace, rec.key)
            elif rec.type == record_type.PUT_STATE_METADATA:
                meta = rec.metadata
                tx.simulator.set_state_metadata(tx.namespace, rec.key, {meta.metakey: meta.value})
            elif rec.type == record_type.PURGE_PRIVATE_DATA:
                raise HandlerError(PRIVATE_DATA_UNSUPPORTED)
            else:
                raise HandlerError(f"write batch record for key {rec.key!r} has no type")
        return b""

    def _get_state_by_range(self, tx: _Tx, payload: bytes) -> bytes:
        req = chaincode_shim_pb2.GetStateByRange.FromString(payload)
        _refuse_collection(req.collection)
        page_size, bookmark = _query_metadata(req.metadata)
        sim, ns = tx.simulator, tx.namespace
        if page_size:
            rows, next_bookmark = sim.get_state_range_paged(ns, req.startKey, req.endKey, page_size, bookmark)
            return self._open_query(tx, _kv_rows(ns, rows), _noop, _page_metadata(len(rows), next_bookmark))
        it = sim.get_state_range(ns, req.startKey, req.endKey)
        return self._open_query(
            tx, _kv_rows(ns, it), getattr(it, "close", _noop), has_next=getattr(it, "has_next", None)
        )

    def _get_query_result(self, tx: _Tx, payload: bytes) -> bytes:
        req = chaincode_shim_pb2.GetQueryResult.FromString(payload)
        _refuse_collection(req.collection)
        page_size, bookmark = _query_metadata(req.metadata)
        sim, ns = tx.simulator, tx.namespace
        if page_size:
            rows, next_bookmark = sim.execute_query_paged(ns, req.query, page_size, bookmark)
            return self._open_query(tx, _kv_rows(ns, rows), _noop, _page_metadata(len(rows), next_bookmark))
        it = sim.execute_query(ns, req.query)
        return self._open_query(tx, _kv_rows(ns, it), getattr(it, "close", _noop))

    def _get_history_for_key(self, tx: _Tx, payload: bytes) -> bytes:
        req = chaincode_shim_pb2.GetHistoryForKey.FromString(payload)
        it = tx.simulator.get_history_for_key(tx.namespace, req.key)
        rows = (mod.SerializeToString() for mod in it)
        return self._open_query(tx, rows, getattr(it, "close", _noop))

    def _query_state_next(self, tx: _Tx, payload: bytes) -> bytes:
        req = chaincode_shim_pb2.QueryStateNext.FromString(payload)
        query = tx.queries.get(req.id)
        if query is None:
            raise HandlerError(f"query {req.id!r} does not exist or is closed")
        return self._next_batch(tx, req.id, query)

    def _query_state_close(self, tx: _Tx, payload: bytes) -> bytes:
        req = chaincode_shim_pb2.QueryStateClose.FromString(payload)
        query = tx.queries.pop(req.id, None)
        if query is not None:
            _close_quietly(query)
        return chaincode_shim_pb2.QueryResponse(id=req.id).SerializeToString()

    def _private_data(self, tx: _Tx, payload: bytes) -> bytes:
        raise HandlerError(PRIVATE_DATA_UNSUPPORTED)

    # --- queries -------------------------------------------------------------------------

    def _open_query(
        self,
        tx: _Tx,
        rows: Iterator[bytes],
        close: Callable[[], None],
        metadata: chaincode_shim_pb2.QueryResponseMetadata | None = None,
        has_next: Callable[[], bool] | None = None,
    ) -> bytes:
        query_id = str(next(tx.query_ids))
        query = _Query(iter(rows), close, metadata, has_next)
        tx.queries[query_id] = query
        return self._next_batch(tx, query_id, query)

    def _next_batch(self, tx: _Tx, query_id: str, query: _Query) -> bytes:
        batch = list(itertools.islice(query.rows, self.query_batch))
        has_more = len(batch) == self.query_batch and _has_more(query)
        response = chaincode_shim_pb2.QueryResponse(
            results=[chaincode_shim_pb2.QueryResultBytes(resultBytes=row) for row in batch],
            has_more=has_more,
            id=query_id,
        )
        if not has_more:
            # exhausted: the shim may still send QUERY_STATE_CLOSE, which is then a no-op
            tx.queries.pop(query_id, None)
            _close_quietly(query)
            if query.metadata is not None:
                response.metadata = query.metadata.SerializeToString()
        return response.SerializeToString()


_REQUESTS: dict[int, Callable[[ShimHandler, _Tx, bytes], bytes]] = {
    Msg.GET_STATE: ShimHandler._get_state,
    Msg.GET_STATE_MULTIPLE: ShimHandler._get_state_multiple,
    Msg.PUT_STATE: ShimHandler._put_state,
    Msg.DEL_STATE: ShimHandler._del_state,
    Msg.GET_STATE_METADATA: ShimHandler._get_state_metadata,
    Msg.PUT_STATE_METADATA: ShimHandler._put_state_metadata,
    Msg.WRITE_BATCH_STATE: ShimHandler._write_batch,
    Msg.GET_STATE_BY_RANGE: ShimHandler._get_state_by_range,
    Msg.GET_QUERY_RESULT: ShimHandler._get_query_result,
    Msg.GET_HISTORY_FOR_KEY: ShimHandler._get_history_for_key,
    Msg.QUERY_STATE_NEXT: ShimHandler._query_state_next,
    Msg.QUERY_STATE_CLOSE: ShimHandler._query_state_close,
    Msg.GET_PRIVATE_DATA_HASH: ShimHandler._private_data,
    Msg.PURGE_PRIVATE_DATA: ShimHandler._private_data,
}


def _error(channel_id: str, txid: str, text: str) -> Msg:
    return Msg(type=Msg.ERROR, payload=text.encode(), txid=txid, channel_id=channel_id)


def _type_name(value: int) -> str:
    return Msg.Type.Name(value) if value in Msg.Type.values() else str(value)


def _refuse_collection(collection: str) -> None:
    if collection:
        raise HandlerError(PRIVATE_DATA_UNSUPPORTED)


def _query_metadata(raw: bytes) -> tuple[int, str]:
    if not raw:
        return 0, ""
    meta = chaincode_shim_pb2.QueryMetadata.FromString(raw)
    if meta.pageSize < 0:
        raise HandlerError(f"page size must not be negative, got {meta.pageSize}")
    return meta.pageSize, meta.bookmark


def _page_metadata(count: int, bookmark: str) -> chaincode_shim_pb2.QueryResponseMetadata:
    return chaincode_shim_pb2.QueryResponseMetadata(fetched_records_count=count, bookmark=bookmark or "")


def _kv_rows(ns: str, rows: Iterable[tuple[str, bytes]]) -> Iterator[bytes]:
    for key, value in rows:
        yield kv_query_result_pb2.KV(namespace=ns, key=key, value=value).SerializeToString()


def _has_more(query: _Query) -> bool:
    """Whether the query has another row, without losing it."""
    if query.has_next is not None:
        return query.has_next()
    try:
        row = next(query.rows)
    except StopIteration:
        return False
    query.rows = itertools.chain([row], query.rows)
    return True


def _close_quietly(query: _Query) -> None:
    try:
        query.close()
    except Exception:
        log.debug("closing a query iterator failed", exc_info=True)


def _noop() -> None:
    pass
