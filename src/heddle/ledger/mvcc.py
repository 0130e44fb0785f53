"""MVCC and phantom-read validation of a block, in block order, and the block's state updates.

Sans-I/O: it reads committed state through ``get_many`` and ``range`` and returns codes, an
``UpdateBatch`` and history entries; it never writes. For each transaction still VALID after
the parallel signature and policy checks, in block order:

1. every KVRead must carry the version the key has now: committed state, unless an earlier
   VALID transaction of this block wrote the key (then it is always a conflict, since the
   read cannot have seen an uncommitted version) -> MVCC_READ_CONFLICT;
2. every RangeQueryInfo is re-run over committed state plus this block's earlier updates and
   must yield exactly its raw reads -> PHANTOM_READ_CONFLICT. An exhausted range is re-run as
   [start_key, end_key); a range the caller stopped early ends at the last key read, inclusive;
3. endorsement-policy inputs that changed earlier in the block invalidate the transaction: a
   key whose VALIDATION_PARAMETER an earlier VALID transaction changed (the policy it was
   checked against in parallel is stale) -> ENDORSEMENT_POLICY_FAILURE; a chaincode whose
   definition an earlier VALID _lifecycle transaction changed -> MVCC_READ_CONFLICT (in Fabric
   the invocation reads the definition, so that read conflicts);
4. the transaction's writes go into the batch at version Height(block, tx).

Write rules (the replay path uses the same code, so a replayed block gives the same batch):
a delete removes the key and its metadata; a value write keeps the key's latest metadata unless
the transaction also writes metadata for it; a metadata-only write changes the metadata (and
version) of an existing key and is ignored for a missing one; metadata is stored as a
serialized KVMetadataWrite with entries sorted by name (empty -> b""). History gets one entry
per KVWrite (value or delete), as Fabric's history index does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import transaction_pb2

from heddle.ledger.history import HistoryEntry
from heddle.ledger.statedb.base import Height, StateDB, UpdateBatch, VersionedValue

Code = transaction_pb2.TxValidationCode
VALIDATION_PARAMETER = "VALIDATION_PARAMETER"
LIFECYCLE_NAMESPACE = "_lifecycle"


@dataclass
class MvccTx:
    """One transaction as MVCC sees it: its code so far and its namespaces' read/write sets.

    ``rwsets`` is a list of (namespace, KVRWSet) pairs (``heddle.protocol.NsRwSet`` fits);
    ``policy_namespaces`` are the chaincodes whose definitions its policy check relied on.
    """

    code: int
    rwsets: Sequence = ()
    policy_namespaces: Iterable[str] = ()
    reason: str = ""


@dataclass
class BlockOutcome:
    codes: list[int]
    reasons: list[str]
    batch: UpdateBatch
    history: list[HistoryEntry] = field(default_factory=list)


def encode_metadata(entries: dict[str, bytes] | Iterable[kv_rwset_pb2.KVMetadataEntry]) -> bytes:
    """Key metadata as stored in state: a serialized KVMetadataWrite, entries sorted by name."""
    if isinstance(entries, dict):
        pairs = entries.items()
    else:
        pairs = [(e.name, e.value) for e in entries]
    ordered = [kv_rwset_pb2.KVMetadataEntry(name=n, value=v) for n, v in sorted(pairs)]
    if not ordered:
        return b""
    return kv_rwset_pb2.KVMetadataWrite(entries=ordered).SerializeToString()


def decode_metadata(raw: bytes) -> dict[str, bytes]:
    """The name -> value map of stored key metadata (b"" -> {})."""
    if not raw:
        return {}
    md = kv_rwset_pb2.KVMetadataWrite.FromString(raw)
    return {e.name: e.value for e in md.entries}


def validation_parameter(raw_metadata: bytes) -> bytes | None:
    """The key-level endorsement policy (SignaturePolicyEnvelope bytes) in stored metadata."""
    if not raw_metadata:
        return None
    return decode_metadata(raw_metadata).get(VALIDATION_PARAMETER)


def defined_chaincode(lifecycle_key: str) -> str | None:
    """The chaincode whose definition a public _lifecycle key belongs to, if any.

    Fabric's layout: ``namespaces/metadata/<name>`` and ``namespaces/fields/<name>/<Field>``.
    """
    parts = lifecycle_key.split("/")
    if len(parts) >= 3 and parts[0] == "namespaces" and parts[1] in ("metadata", "fields"):
        return parts[2]
    return None


def _utf8_after(key: str) -> str:
    """The smallest key greater than ``key`` in UTF-8 byte order."""
    return key + "\x00"


class _BlockState:
    """Committed state (prefetched with one get_many per namespace) plus this block's updates."""

    def __init__(self, state: StateDB | None, block_num: int):
        self.state = state
        self.block_num = block_num
        self.batch = UpdateBatch()
        self.history: list[HistoryEntry] = []
        self._committed: dict[str, dict[str, VersionedValue | None]] = {}
        self._in_block: dict[str, set[str]] = {}  # ns -> keys written by this block so far
        self.vp_changed: set[tuple[str, str]] = set()
        self.definitions_changed: set[str] = set()

    def prefetch(self, wanted: dict[str, set[str]]) -> None:
        for ns, keys in wanted.items():
            cache = self._committed.setdefault(ns, {})
            missing = [k for k in keys if k not in cache]
            if not missing:
                continue
            if self.state is None:
                cache.update(dict.fromkeys(missing))
            else:
                cache.update(self.state.get_many(ns, missing))

    def committed(self, ns: str, key: str) -> VersionedValue | None:
        cache = self._committed.setdefault(ns, {})
        if key not in cache:
            cache[key] = None if self.state is None else self.state.get(ns, key)
        return cache[key]

    def written_in_block(self, ns: str, key: str) -> bool:
        keys = self._in_block.get(ns)
        return keys is not None and key in keys

    def latest_metadata(self, ns: str, key: str) -> bytes:
        """Metadata of the key as of the updates so far (b"" if the key does not exist)."""
        w = self.batch.get(ns, key)
        if w is not None:
            return b"" if w.kind == "delete" else w.metadata
        vv = self.committed(ns, key)
        return b"" if vv is None else vv.metadata

    def key_exists(self, ns: str, key: str) -> bool:
        w = self.batch.get(ns, key)
        if w is not None:
            return w.kind != "delete"
        return self.committed(ns, key) is not None

    # ----- checks -----
    def read_conflict(self, ns: str, kv: kv_rwset_pb2.KVRWSet) -> str | None:
        for r in kv.reads:
            if self.written_in_block(ns, r.key):
                return f"key {ns}/{r.key!r} was updated by an earlier transaction in this block"
            vv = self.committed(ns, r.key)
            if r.HasField("version"):
                want = Height(r.version.block_num, r.version.tx_num)
                if vv is None:
                    return f"key {ns}/{r.key!r} read at version {tuple(want)} no longer exists"
                if vv.version != want:
                    return f"key {ns}/{r.key!r} read at version {tuple(want)} is now at {tuple(vv.version)}"
            elif vv is not None:
                return f"key {ns}/{r.key!r} read as absent now exists at version {tuple(vv.version)}"
        return None

    def phantom(self, ns: str, rqi: kv_rwset_pb2.RangeQueryInfo) -> str | None:
        if rqi.HasField("reads_merkle_hashes"):
            return f"range query on {ns} carries a merkle summary, which is not supported"
        end = rqi.end_key if rqi.itr_exhausted else _utf8_after(rqi.end_key)
        current: dict[str, Height] = {}
        if self.state is not None:
            for key, vv in self.state.range(ns, rqi.start_key, end):
                current[key] = vv.version
        lo = rqi.start_key.encode()
        hi = end.encode() if end else None
        touched = False
        for key in self._in_block.get(ns, ()):
            kb = key.encode()
            if kb < lo or (hi is not None and kb >= hi):
                continue
            touched = True
            w = self.batch.get(ns, key)
            if w is None:
                continue
            if w.kind == "delete":
                current.pop(key, None)
            elif w.kind == "put" or key in current:
                current[key] = w.version
        keys = sorted(current, key=str.encode) if touched else list(current)
        raw = rqi.raw_reads.kv_reads
        if len(keys) != len(raw):
            return (
                f"range [{rqi.start_key!r}, {rqi.end_key!r}] on {ns} now yields {len(keys)} key(s), "
                f"simulation read {len(raw)}"
            )
        for key, r in zip(keys, raw, strict=True):
            v = current[key]
            if (
                r.key != key
                or not r.HasField("version")
                or Height(r.version.block_num, r.version.tx_num) != v
            ):
                return f"range [{rqi.start_key!r}, {rqi.end_key!r}] on {ns} changed at key {key!r}"
        return None

    # ----- updates -----
    def apply(self, tx_num: int, rwsets: Sequence) -> None:
        """Add one VALID transaction's writes (Fabric's rules, see the module docstring)."""
        version = Height(self.block_num, tx_num)
        for ns_rw in rwsets:
            ns, kv = ns_rw.namespace, ns_rw.kv
            md_writes = {mw.key: mw for mw in kv.metadata_writes}
            written = self._in_block.setdefault(ns, set())
            for w in kv.writes:
                old_vp = validation_parameter(self.latest_metadata(ns, w.key))
                mw = md_writes.pop(w.key, None)
                if w.is_delete:
                    self.batch.delete(ns, w.key, version)
                    new_vp = None
                else:
                    md = encode_metadata(mw.entries) if mw is not None else self.latest_metadata(ns, w.key)
                    self.batch.put(ns, w.key, w.value, version, md)
                    new_vp = validation_parameter(md)
                if new_vp != old_vp:
                    self.vp_changed.add((ns, w.key))
                written.add(w.key)
                self.history.append(HistoryEntry(ns, w.key, self.block_num, tx_num))
                if ns == LIFECYCLE_NAMESPACE:
                    name = defined_chaincode(w.key)
                    if name:
                        self.definitions_changed.add(name)
            for key, mw in md_writes.items():
                if not self.key_exists(ns, key):
                    continue  # Fabric ignores metadata of a key that does not exist
                old_vp = validation_parameter(self.latest_metadata(ns, key))
                md = encode_metadata(mw.entries)
                self.batch.put_metadata(ns, key, md, version)
                if validation_parameter(md) != old_vp:
                    self.vp_changed.add((ns, key))
                written.add(key)


def _touched_keys(txs: Iterable[tuple[int, Sequence]]) -> dict[str, set[str]]:
    wanted: dict[str, set[str]] = {}
    for _, rwsets in txs:
        for ns_rw in rwsets:
            keys = wanted.setdefault(ns_rw.namespace, set())
            kv = ns_rw.kv
            keys.update(r.key for r in kv.reads)
            keys.update(w.key for w in kv.writes)
            keys.update(m.key for m in kv.metadata_writes)
    return wanted


def validate_block(state: StateDB, block_num: int, txs: Sequence[MvccTx]) -> BlockOutcome:
    """MVCC-validate a block's transactions in order; return final codes, reasons and updates."""
    bs = _BlockState(state, block_num)
    candidates = [(i, t.rwsets) for i, t in enumerate(txs) if t.code == Code.VALID]
    bs.prefetch(_touched_keys(candidates))
    codes = [t.code for t in txs]
    reasons = [t.reason for t in txs]
    for i, rwsets in candidates:
        code, reason = _check(bs, txs[i], rwsets)
        if code != Code.VALID:
            codes[i], reasons[i] = code, reason
            continue
        bs.apply(i, rwsets)
    return BlockOutcome(codes, reasons, bs.batch, bs.history)


def _check(bs: _BlockState, tx: MvccTx, rwsets: Sequence) -> tuple[int, str]:
    for name in tx.policy_namespaces:
        if name in bs.definitions_changed:
            return Code.MVCC_READ_CONFLICT, f"chaincode {name}'s definition changed earlier in this block"
    for ns_rw in rwsets:
        ns, kv = ns_rw.namespace, ns_rw.kv
        for key in [w.key for w in kv.writes] + [m.key for m in kv.metadata_writes]:
            if (ns, key) in bs.vp_changed:
                return (
                    Code.ENDORSEMENT_POLICY_FAILURE,
                    f"the endorsement policy of key {ns}/{key!r} changed earlier in this block",
                )
    for ns_rw in rwsets:
        reason = bs.read_conflict(ns_rw.namespace, ns_rw.kv)
        if reason:
            return Code.MVCC_READ_CONFLICT, reason
    for ns_rw in rwsets:
        for rqi in ns_rw.kv.range_queries_info:
            reason = bs.phantom(ns_rw.namespace, rqi)
            if reason:
                return Code.PHANTOM_READ_CONFLICT, reason
    return Code.VALID, ""


def block_updates_for(
    state: StateDB | None, block_num: int, valid_txs: Iterable[tuple[int, Sequence]]
) -> tuple[UpdateBatch, list[HistoryEntry]]:
    """The updates of already-validated transactions (replay): the same rules, no checks."""
    txs = list(valid_txs)
    bs = _BlockState(state, block_num)
    bs.prefetch(_touched_keys(txs))
    for i, rwsets in txs:
        bs.apply(i, rwsets)
    return bs.batch, bs.history


__all__ = [
    "VALIDATION_PARAMETER",
    "BlockOutcome",
    "MvccTx",
    "block_updates_for",
    "decode_metadata",
    "defined_chaincode",
    "encode_metadata",
    "validate_block",
    "validation_parameter",
]
