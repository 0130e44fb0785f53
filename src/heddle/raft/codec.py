"""Strict, deterministic binary codec for Raft messages, entries and state.

Every encoding starts with a 4-byte header: magic ``b"HR"``, format version (1) and a
kind byte. Integers are big-endian; ids, terms and indexes are u64; byte strings are a
u32 length then the bytes. Decoding checks the header, every enum value and length,
the per-type shape of a message, and that no bytes trail. Any failure raises
:class:`RaftCodecError` naming the field and offset.
"""

from __future__ import annotations

import struct

from heddle.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    RaftError,
    Snapshot,
    SnapshotMetadata,
)

MAGIC = b"HR"
VERSION = 1
KIND_MESSAGE = 1
KIND_ENTRY = 2
KIND_HARD_STATE = 3
KIND_SNAPSHOT = 4
KIND_CONF_CHANGE = 5
KIND_ENTRIES = 6

MAX_U64 = (1 << 64) - 1
DEFAULT_MAX_BYTES = 64 << 20
MAX_IDS = 1 << 16

_U8 = struct.Struct(">B")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_ENTRY_HEAD = struct.Struct(">QQB")
_MSG_HEAD = struct.Struct(">BQQQQQQBQ")
_HS = struct.Struct(">QQQ")


class RaftCodecError(RaftError, ValueError):
    """Bytes that are not a valid encoding; the message says which field and where."""


class _Writer:
    def __init__(self, kind: int) -> None:
        self.parts: list[bytes] = [MAGIC, bytes((VERSION, kind))]

    def u8(self, v: int) -> None:
        self.parts.append(_U8.pack(v))

    def u32(self, v: int) -> None:
        self.parts.append(_U32.pack(v))

    def u64(self, v: int, name: str) -> None:
        if not 0 <= v <= MAX_U64:
            raise RaftCodecError(f"{name}={v} does not fit in u64")
        self.parts.append(_U64.pack(v))

    def blob(self, b: bytes) -> None:
        self.parts.append(_U32.pack(len(b)))
        self.parts.append(bytes(b))

    def raw(self, b: bytes) -> None:
        self.parts.append(b)

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


class _Reader:
    def __init__(self, data: bytes, kind: int, max_bytes: int) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise RaftCodecError(f"expected bytes, got {type(data).__name__}")
        self.buf = memoryview(bytes(data))
        if len(self.buf) > max_bytes:
            raise RaftCodecError(f"encoding of {len(self.buf)} bytes exceeds limit {max_bytes}")
        self.pos = 0
        head = self._take(4, "header")
        if head[:2] != MAGIC:
            raise RaftCodecError(f"bad magic {bytes(head[:2])!r}, expected {MAGIC!r}")
        if head[2] != VERSION:
            raise RaftCodecError(f"unsupported codec version {head[2]} (this build speaks 1)")
        if head[3] != kind:
            raise RaftCodecError(f"kind byte is {head[3]}, expected {kind}")

    def _take(self, n: int, name: str) -> memoryview:
        end = self.pos + n
        if end > len(self.buf):
            raise RaftCodecError(
                f"truncated at offset {self.pos}: {name} needs {n} bytes, {len(self.buf) - self.pos} left"
            )
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def unpack(self, st: struct.Struct, name: str) -> tuple:
        return st.unpack(self._take(st.size, name))

    def u8(self, name: str) -> int:
        return self._take(1, name)[0]

    def u32(self, name: str) -> int:
        return _U32.unpack(self._take(4, name))[0]

    def u64(self, name: str) -> int:
        return _U64.unpack(self._take(8, name))[0]

    def blob(self, name: str) -> bytes:
        at = self.pos
        n = self.u32(name + " length")
        if n > len(self.buf) - self.pos:
            raise RaftCodecError(
                f"{name} at offset {at} declares {n} bytes, only {len(self.buf) - self.pos} left"
            )
        return bytes(self._take(n, name))

    def count(self, name: str, item_min_size: int) -> int:
        at = self.pos
        n = self.u32(name + " count")
        if n * item_min_size > len(self.buf) - self.pos:
            raise RaftCodecError(f"{name} count {n} at offset {at} exceeds the remaining bytes")
        return n

    def finish(self) -> None:
        if self.pos != len(self.buf):
            raise RaftCodecError(f"{len(self.buf) - self.pos} trailing bytes after offset {self.pos}")


def _enum(cls, value: int, name: str, at: int):
    try:
        return cls(value)
    except ValueError:
        raise RaftCodecError(f"unknown {name} {value} at offset {at}") from None


# entries ---------------------------------------------------------------------------


def _put_entry(w: _Writer, e: Entry) -> None:
    w.u64(e.term, "entry.term")
    w.u64(e.index, "entry.index")
    w.u8(int(e.type))
    w.blob(e.data)


def _get_entry(r: _Reader) -> Entry:
    at = r.pos
    term, index, etype = r.unpack(_ENTRY_HEAD, "entry")
    data = r.blob("entry.data")
    if index == 0:
        raise RaftCodecError(f"entry at offset {at} has index 0")
    if term == 0:
        raise RaftCodecError(f"entry at offset {at} has term 0")
    return Entry(term, index, _enum(EntryType, etype, "entry type", at + 16), data)


def _get_entry_list(r: _Reader) -> tuple[Entry, ...]:
    n = r.count("entries", _ENTRY_HEAD.size + 4)
    ents = tuple(_get_entry(r) for _ in range(n))
    for a, b in zip(ents, ents[1:], strict=False):
        if b.index != a.index + 1:
            raise RaftCodecError(f"entries not contiguous: index {b.index} follows {a.index}")
        if b.term < a.term:
            raise RaftCodecError(f"entry terms decrease: {b.term} at {b.index} after {a.term}")
    return ents


def encode_entry(e: Entry) -> bytes:
    w = _Writer(KIND_ENTRY)
    _put_entry(w, e)
    return w.getvalue()


def decode_entry(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Entry:
    r = _Reader(data, KIND_ENTRY, max_bytes)
    e = _get_entry(r)
    r.finish()
    return e


def encode_entries(entries: list[Entry] | tuple[Entry, ...]) -> bytes:
    w = _Writer(KIND_ENTRIES)
    w.u32(len(entries))
    for e in entries:
        _put_entry(w, e)
    return w.getvalue()


def decode_entries(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Entry]:
    r = _Reader(data, KIND_ENTRIES, max_bytes)
    ents = _get_entry_list(r)
    r.finish()
    return list(ents)


# hard state, conf state, snapshot, conf change -------------------------------------


def encode_hard_state(hs: HardState) -> bytes:
    w = _Writer(KIND_HARD_STATE)
    w.u64(hs.term, "term")
    w.u64(hs.vote, "vote")
    w.u64(hs.commit, "commit")
    return w.getvalue()


def decode_hard_state(data: bytes) -> HardState:
    r = _Reader(data, KIND_HARD_STATE, 64)
    term, vote, commit = r.unpack(_HS, "hard state")
    r.finish()
    return HardState(term, vote, commit)


def _put_ids(w: _Writer, ids: tuple[int, ...], name: str) -> None:
    w.u32(len(ids))
    for i in ids:
        w.u64(i, name)


def _get_ids(r: _Reader, name: str) -> tuple[int, ...]:
    n = r.count(name, 8)
    if n > MAX_IDS:
        raise RaftCodecError(f"{name} count {n} exceeds {MAX_IDS}")
    ids = tuple(r.u64(name) for _ in range(n))
    if 0 in ids:
        raise RaftCodecError(f"{name} contains node id 0")
    if len(set(ids)) != len(ids):
        raise RaftCodecError(f"{name} contains duplicate ids")
    return ids


def _put_snapshot(w: _Writer, s: Snapshot) -> None:
    w.u64(s.metadata.index, "snapshot.index")
    w.u64(s.metadata.term, "snapshot.term")
    _put_ids(w, s.metadata.conf_state.voters, "voters")
    _put_ids(w, s.metadata.conf_state.learners, "learners")
    w.blob(s.data)


def _get_snapshot(r: _Reader) -> Snapshot:
    at = r.pos
    index = r.u64("snapshot.index")
    term = r.u64("snapshot.term")
    voters = _get_ids(r, "voters")
    learners = _get_ids(r, "learners")
    data = r.blob("snapshot.data")
    if index == 0 or term == 0:
        raise RaftCodecError(f"snapshot at offset {at} has zero index or term")
    if set(voters) & set(learners):
        raise RaftCodecError("snapshot conf state lists a node as both voter and learner")
    if not voters:
        raise RaftCodecError("snapshot conf state has no voters")
    return Snapshot(SnapshotMetadata(index, term, ConfState(voters, learners)), data)


def encode_snapshot(s: Snapshot) -> bytes:
    w = _Writer(KIND_SNAPSHOT)
    _put_snapshot(w, s)
    return w.getvalue()


def decode_snapshot(data: bytes, max_bytes: int = 1 << 40) -> Snapshot:
    r = _Reader(data, KIND_SNAPSHOT, max_bytes)
    s = _get_snapshot(r)
    r.finish()
    return s


def encode_conf_change(cc: ConfChange) -> bytes:
    w = _Writer(KIND_CONF_CHANGE)
    w.u8(int(cc.type))
    w.u64(cc.node_id, "node_id")
    w.blob(cc.context)
    return w.getvalue()


def decode_conf_change(data: bytes) -> ConfChange:
    r = _Reader(data, KIND_CONF_CHANGE, DEFAULT_MAX_BYTES)
    at = r.pos
    cctype = _enum(ConfChangeType, r.u8("conf change type"), "conf change type", at)
    node_id = r.u64("node_id")
    ctx = r.blob("context")
    r.finish()
    if node_id == 0:
        raise RaftCodecError("conf change node_id is 0")
    return ConfChange(cctype, node_id, ctx)


# messages ----------------------------------------------------------------------------

_HAS_ENTRIES = frozenset({MessageType.APP})
_HAS_SNAPSHOT = frozenset({MessageType.SNAP})


def encode_message(m: Message) -> bytes:
    """Encode a message; raises RaftCodecError for a shape decode would refuse."""
    w = _Writer(KIND_MESSAGE)
    for name in ("to", "frm", "term", "log_term", "index", "commit", "reject_hint"):
        v = getattr(m, name)
        if not 0 <= v <= MAX_U64:
            raise RaftCodecError(f"message {name}={v} does not fit in u64")
    w.raw(
        _MSG_HEAD.pack(
            int(m.type),
            m.to,
            m.frm,
            m.term,
            m.log_term,
            m.index,
            m.commit,
            1 if m.reject else 0,
            m.reject_hint,
        )
    )
    w.blob(m.context)
    w.u32(len(m.entries))
    for e in m.entries:
        _put_entry(w, e)
    if m.snapshot is None:
        w.u8(0)
    else:
        w.u8(1)
        _put_snapshot(w, m.snapshot)
    out = w.getvalue()
    decode_message(out, max_bytes=len(out))  # refuse to emit what a peer would reject
    return out


def decode_message(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Message:
    """Decode and validate one message; raises RaftCodecError on any defect."""
    r = _Reader(data, KIND_MESSAGE, max_bytes)
    at = r.pos
    mtype, to, frm, term, log_term, index, commit, reject, hint = r.unpack(_MSG_HEAD, "message header")
    mtype = _enum(MessageType, mtype, "message type", at)
    if reject > 1:
        raise RaftCodecError(f"reject flag is {reject}, expected 0 or 1")
    context = r.blob("context")
    entries = _get_entry_list(r)
    flag_at = r.pos
    flag = r.u8("snapshot flag")
    if flag > 1:
        raise RaftCodecError(f"snapshot flag is {flag} at offset {flag_at}, expected 0 or 1")
    snapshot = _get_snapshot(r) if flag else None
    r.finish()

    name = mtype.name
    if to == 0 or frm == 0:
        raise RaftCodecError(f"{name}: sender and recipient ids must be non-zero")
    if to == frm:
        raise RaftCodecError(f"{name}: sender and recipient are both {to}")
    if term == 0 and mtype != MessageType.READ_INDEX:
        raise RaftCodecError(f"{name}: term 0 is only valid for READ_INDEX")
    if entries and mtype not in _HAS_ENTRIES:
        raise RaftCodecError(f"{name} must not carry entries")
    if (snapshot is not None) != (mtype in _HAS_SNAPSHOT):
        raise RaftCodecError(f"{name} {'requires' if snapshot is None else 'forbids'} a snapshot")
    if entries:
        if entries[0].index != index + 1:
            raise RaftCodecError(f"APP entries start at {entries[0].index}, expected index+1={index + 1}")
        if entries[-1].term > term or entries[0].term < log_term:
            raise RaftCodecError("APP entry terms outside [log_term, term]")
    if mtype == MessageType.APP and log_term > term:
        raise RaftCodecError("APP log_term exceeds message term")
    if mtype in (MessageType.VOTE, MessageType.PRE_VOTE) and log_term > term:
        raise RaftCodecError(f"{name} last log term exceeds campaign term")
    if snapshot is not None and snapshot.term > term:
        raise RaftCodecError("SNAP snapshot term exceeds message term")
    return Message(
        type=mtype,
        to=to,
        frm=frm,
        term=term,
        log_term=log_term,
        index=index,
        entries=entries,
        commit=commit,
        reject=bool(reject),
        reject_hint=hint,
        snapshot=snapshot,
        context=context,
    )
