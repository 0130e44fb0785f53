"""Transaction simulation: what a chaincode read and wrote, as Fabric's TxReadWriteSet.

Fabric's semantics: reads see committed state only (no read-your-writes) and record the
version they saw (no version for an absent key); the first read of a key is the one kept;
writes and deletes are last-wins per key; metadata writes replace the key's whole metadata
map. Range scans record a RangeQueryInfo with their raw reads (no merkle summary) when the
iterator is closed: exhausted -> the requested end key and ``itr_exhausted``; stopped early
-> the last key read as end key, so validation re-runs [start, last] inclusive. Rich
queries are not recorded (Fabric does not re-check them at commit). ``results()`` is
deterministic: namespaces sorted, reads, writes and metadata writes sorted by key, range
queries in execution order.
"""

from __future__ import annotations

from collections.abc import Iterator

from fabric_protos.common import common_pb2
from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2

from heddle.ledger import richquery
from heddle.ledger.mvcc import decode_metadata
from heddle.ledger.statedb.base import Height, StateDB, VersionedValue

_PRIVATE = "private data is not supported yet"


class SimulatorError(Exception):
    """A simulator call that cannot be honoured (bad argument, finished simulation, private data)."""


def _kv_read(key: str, version: Height | None) -> kv_rwset_pb2.KVRead:
    if version is None:
        return kv_rwset_pb2.KVRead(key=key)
    return kv_rwset_pb2.KVRead(
        key=key, version=kv_rwset_pb2.Version(block_num=version.block_num, tx_num=version.tx_num)
    )


def _utf8_key(key: str) -> bytes:
    return key.encode("utf-8")


class RangeIterator:
    """Iterates (key, value) of a range scan over committed state and records what it read."""

    def __init__(self, sim: TxSimulator, ns: str, start_key: str, end_key: str, limit: int | None = None):
        self._sim = sim
        self._ns = ns
        self._start, self._end = start_key, end_key
        self._rows = sim._state.range(ns, start_key, end_key, limit=limit)
        self._reads: list[kv_rwset_pb2.KVRead] = []
        self._exhausted = False
        self._closed = False
        self._peeked: tuple[str, VersionedValue] | None = None
        sim._open.append(self)

    def __iter__(self) -> RangeIterator:
        return self

    def _pull(self) -> tuple[str, VersionedValue] | None:
        if self._peeked is not None:
            row, self._peeked = self._peeked, None
            return row
        if self._closed or self._exhausted:
            return None
        try:
            return next(self._rows)
        except StopIteration:
            self._exhausted = True
            return None

    def has_next(self) -> bool:
        """True if another result is available (looks ahead without recording a read)."""
        if self._peeked is None:
            self._peeked = self._pull()
        return self._peeked is not None

    def __next__(self) -> tuple[str, bytes]:
        if self._closed:
            raise SimulatorError("range iterator is closed")
        row = self._pull()
        if row is None:
            raise StopIteration
        key, vv = row
        self._reads.append(_kv_read(key, vv.version))
        return key, vv.value

    def close(self, *, exhausted: bool | None = None) -> None:
        """Stop the scan and record its RangeQueryInfo (once)."""
        if self._closed:
            return
        done = self._exhausted and self._peeked is None if exhausted is None else exhausted
        self._closed = True
        if self in self._sim._open:
            self._sim._open.remove(self)
        if not done and not self._reads:
            return  # stopped before reading anything: it observed nothing
        end = self._end if done else self._reads[-1].key
        info = kv_rwset_pb2.RangeQueryInfo(
            start_key=self._start,
            end_key=end,
            itr_exhausted=done,
            raw_reads=kv_rwset_pb2.QueryReads(kv_reads=self._reads),
        )
        self._sim._ranges.setdefault(self._ns, []).append(info)


class TxSimulator:
    """Simulates one transaction against committed state; ``results()`` gives its rwset."""

    def __init__(self, state: StateDB, txid: str, blocks=None):
        self._state = state
        self.txid = txid
        self._blocks = blocks
        self._reads: dict[str, dict[str, Height | None]] = {}
        self._writes: dict[str, dict[str, bytes | None]] = {}
        self._metadata: dict[str, dict[str, dict[str, bytes]]] = {}
        self._ranges: dict[str, list[kv_rwset_pb2.RangeQueryInfo]] = {}
        self._open: list[RangeIterator] = []
        self._done = False

    # ----- helpers -----
    def _check(self, ns: str, key: str | None = None) -> None:
        if self._done:
            raise SimulatorError(f"transaction {self.txid}: simulation has already finished")
        if not ns:
            raise SimulatorError("namespace must not be empty")
        if key is not None and not key:
            raise SimulatorError("key must not be empty")

    def _record_read(self, ns: str, key: str, vv: VersionedValue | None) -> None:
        reads = self._reads.setdefault(ns, {})
        if key not in reads:  # the first version seen is the one validated
            reads[key] = None if vv is None else vv.version

    # ----- reads -----
    def get_state(self, ns: str, key: str) -> bytes | None:
        self._check(ns, key)
        vv = self._state.get(ns, key)
        self._record_read(ns, key, vv)
        return None if vv is None else vv.value

    def get_state_multiple(self, ns: str, keys: list[str]) -> list[bytes | None]:
        self._check(ns)
        for k in keys:
            self._check(ns, k)
        found = self._state.get_many(ns, keys)
        out = []
        for k in keys:
            vv = found.get(k)
            self._record_read(ns, k, vv)
            out.append(None if vv is None else vv.value)
        return out

    def get_state_metadata(self, ns: str, key: str) -> dict[str, bytes]:
        """The key's committed metadata (records a read of the key, as Fabric does)."""
        self._check(ns, key)
        vv = self._state.get(ns, key)
        self._record_read(ns, key, vv)
        return {} if vv is None else decode_metadata(vv.metadata)

    def get_state_range(self, ns: str, start_key: str, end_key: str) -> RangeIterator:
        """Keys in [start_key, end_key) (end "" = to the end); close() records the scan."""
        self._check(ns)
        if end_key and _utf8_key(end_key) < _utf8_key(start_key):
            raise SimulatorError(f"range end key {end_key!r} is before start key {start_key!r}")
        return RangeIterator(self, ns, start_key, end_key)

    def get_state_range_paged(
        self, ns: str, start_key: str, end_key: str, page_size: int, bookmark: str = ""
    ) -> tuple[list[tuple[str, bytes]], str]:
        """One page of a range scan from ``bookmark`` (or start_key); returns (rows, next bookmark).

        The next bookmark is the first key of the next page, "" when the range is exhausted.
        """
        self._check(ns)
        if page_size <= 0:
            raise SimulatorError(f"page size must be positive, got {page_size}")
        start = bookmark or start_key
        if bookmark and (_utf8_key(bookmark) < _utf8_key(start_key)):
            raise SimulatorError(f"bookmark {bookmark!r} is before the range start {start_key!r}")
        it = RangeIterator(self, ns, start, end_key, limit=page_size + 1)
        rows = []
        for _ in range(page_size):
            try:
                rows.append(next(it))
            except StopIteration:
                break
        nxt = ""
        if len(rows) == page_size and it.has_next():
            nxt = it._peeked[0]  # type: ignore[index]
            it.close(exhausted=False)
        else:
            it.close(exhausted=True)
        return rows, nxt

    def execute_query(self, ns: str, query_json: str | bytes) -> Iterator[tuple[str, bytes]]:
        """A JSON selector query over the namespace (full scan; not re-validated at commit)."""
        self._check(ns)
        try:
            query = richquery.parse_query(query_json)
        except richquery.QueryError as exc:
            raise SimulatorError(f"rich query: {exc}") from exc
        rows = ((k, vv.value) for k, vv in self._state.range(ns))
        return iter(richquery.execute(rows, query))

    def execute_query_paged(
        self, ns: str, query_json: str | bytes, page_size: int, bookmark: str = ""
    ) -> tuple[list[tuple[str, bytes]], str]:
        """A page of a rich query; the bookmark is opaque (an offset into the sorted results)."""
        if page_size <= 0:
            raise SimulatorError(f"page size must be positive, got {page_size}")
        try:
            offset = int(bookmark) if bookmark else 0
        except ValueError as exc:
            raise SimulatorError(f"invalid bookmark {bookmark!r}") from exc
        results = list(self.execute_query(ns, query_json))
        page = results[offset : offset + page_size]
        nxt = str(offset + page_size) if offset + page_size < len(results) else ""
        return page, nxt

    def get_history_for_key(self, ns: str, key: str) -> Iterator[kv_query_result_pb2.KeyModification]:
        """Every committed write of (ns, key), newest first, read from the block store."""
        self._check(ns, key)
        if self._blocks is None:
            raise SimulatorError("history queries need the block store")
        return self._history(ns, key)

    def _history(self, ns: str, key: str) -> Iterator[kv_query_result_pb2.KeyModification]:
        from heddle.protocol import parse_endorser_transaction, parse_envelope

        heights = list(self._state.history(ns, key))
        for h in heights:
            block = self._blocks.get_by_number(h.block_num)
            parsed = parse_envelope(block.data.data[h.tx_num])
            mod = kv_query_result_pb2.KeyModification(tx_id=parsed.channel_header.tx_id)
            mod.timestamp.CopyFrom(parsed.channel_header.timestamp)
            if parsed.header_type == common_pb2.ENDORSER_TRANSACTION:
                for action in parse_endorser_transaction(parsed.payload.data):
                    for rw in action.rwsets:
                        if rw.namespace != ns:
                            continue
                        for w in rw.kv.writes:
                            if w.key == key:
                                mod.value, mod.is_delete = w.value, w.is_delete
            yield mod

    # ----- writes -----
    def set_state(self, ns: str, key: str, value: bytes) -> None:
        self._check(ns, key)
        if value is None:
            raise SimulatorError("value must not be None; use delete_state")
        self._writes.setdefault(ns, {})[key] = bytes(value)

    def delete_state(self, ns: str, key: str) -> None:
        self._check(ns, key)
        self._writes.setdefault(ns, {})[key] = None

    def set_state_metadata(self, ns: str, key: str, metadata: dict[str, bytes]) -> None:
        """Replace the key's metadata map (e.g. {"VALIDATION_PARAMETER": policy bytes})."""
        self._check(ns, key)
        self._metadata.setdefault(ns, {})[key] = {str(n): bytes(v) for n, v in metadata.items()}

    # ----- private data: not yet -----
    def get_private_data(self, *args, **kwargs):
        raise SimulatorError(_PRIVATE)

    get_private_data_hash = get_private_data
    get_private_data_metadata = get_private_data
    get_private_data_range = get_private_data
    get_private_data_query_result = get_private_data
    set_private_data = get_private_data
    delete_private_data = get_private_data
    purge_private_data = get_private_data
    set_private_data_metadata = get_private_data

    # ----- the result -----
    def results(self) -> rwset_pb2.TxReadWriteSet:
        """The transaction's TxReadWriteSet; closes open iterators and ends the simulation."""
        if self._done:
            raise SimulatorError(f"transaction {self.txid}: results() was already called")
        for it in list(self._open):
            it.close()
        self._done = True
        namespaces = set(self._reads) | set(self._writes) | set(self._metadata) | set(self._ranges)
        out = rwset_pb2.TxReadWriteSet(data_model=rwset_pb2.TxReadWriteSet.KV)
        for ns in sorted(namespaces, key=_utf8_key):
            kv = kv_rwset_pb2.KVRWSet()
            reads = self._reads.get(ns, {})
            kv.reads.extend(_kv_read(k, reads[k]) for k in sorted(reads, key=_utf8_key))
            kv.range_queries_info.extend(self._ranges.get(ns, []))
            writes = self._writes.get(ns, {})
            for k in sorted(writes, key=_utf8_key):
                v = writes[k]
                kv.writes.append(
                    kv_rwset_pb2.KVWrite(key=k, is_delete=True)
                    if v is None
                    else kv_rwset_pb2.KVWrite(key=k, value=v)
                )
            md = self._metadata.get(ns, {})
            for k in sorted(md, key=_utf8_key):
                entries = [kv_rwset_pb2.KVMetadataEntry(name=n, value=v) for n, v in sorted(md[k].items())]
                kv.metadata_writes.append(kv_rwset_pb2.KVMetadataWrite(key=k, entries=entries))
            out.ns_rwset.append(rwset_pb2.NsReadWriteSet(namespace=ns, rwset=kv.SerializeToString()))
        return out

    def results_bytes(self) -> bytes:
        return self.results().SerializeToString()


__all__ = ["RangeIterator", "SimulatorError", "TxSimulator"]
