"""Sans-I/O framing for the host/enclave boundary and for requests inside a channel.

The boundary carries length-prefixed frames. Each frame is one ``Message``: a request
or a reply, with a transaction id taken from the *sender's* id space for requests
(host-to-enclave and enclave-to-host requests are numbered independently), and the
id of the request it answers for replies. ``stream`` names a client or peer stream
(an attested session, say); messages of one stream are handled in order.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass

MAX_FRAME = 16 * 1024 * 1024
_LEN = struct.Struct(">I")
_HEAD = struct.Struct(">BQQBB")  # kind, txid, stream, status, method length

REQUEST = 1
REPLY = 2
OK = 0
ERROR = 1


class FrameError(ValueError):
    """A frame or message on the boundary is malformed."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message across the boundary. ``body`` is opaque bytes (ciphertext for sessions)."""

    kind: int
    txid: int
    method: str = ""
    stream: int = 0
    status: int = OK
    body: bytes = b""

    def __repr__(self) -> str:  # bodies may be sensitive inside the enclave: never print them
        kind = {REQUEST: "request", REPLY: "reply"}.get(self.kind, str(self.kind))
        return (
            f"Message({kind} txid={self.txid} method={self.method!r} stream={self.stream} "
            f"status={self.status} body=<{len(self.body)} bytes>)"
        )


def encode_message(msg: Message) -> bytes:
    """Serialize ``msg`` as one length-prefixed frame."""
    method = msg.method.encode()
    if len(method) > 255:
        raise FrameError("method name longer than 255 bytes")
    if msg.kind not in (REQUEST, REPLY):
        raise FrameError(f"unknown message kind {msg.kind}")
    payload = _HEAD.pack(msg.kind, msg.txid, msg.stream, msg.status, len(method)) + method
    total = len(payload) + len(msg.body)
    if total > MAX_FRAME:
        raise FrameError(f"message of {total} bytes exceeds the {MAX_FRAME}-byte frame limit")
    return _LEN.pack(total) + payload + msg.body


def decode_message(payload: bytes) -> Message:
    """Parse one frame payload (without its length prefix)."""
    if len(payload) < _HEAD.size:
        raise FrameError("frame shorter than a message header")
    kind, txid, stream, status, mlen = _HEAD.unpack_from(payload)
    if kind not in (REQUEST, REPLY):
        raise FrameError(f"unknown message kind {kind}")
    if status not in (OK, ERROR):
        raise FrameError(f"unknown status {status}")
    end = _HEAD.size + mlen
    if len(payload) < end:
        raise FrameError("method name runs past the end of the frame")
    try:
        method = payload[_HEAD.size : end].decode()
    except UnicodeDecodeError as exc:
        raise FrameError("method name is not UTF-8") from exc
    return Message(kind, txid, method, stream, status, bytes(payload[end:]))


class FrameDecoder:
    """Accumulates bytes and yields complete frame payloads; no I/O inside."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return every frame payload now complete, in order."""
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= _LEN.size:
            (n,) = _LEN.unpack_from(self._buf)
            if n > self._max:
                raise FrameError(f"frame of {n} bytes exceeds the {self._max}-byte limit")
            if len(self._buf) < _LEN.size + n:
                break
            out.append(bytes(self._buf[_LEN.size : _LEN.size + n]))
            del self._buf[: _LEN.size + n]
        return out

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet form a frame."""
        return len(self._buf)


def frame(payload: bytes) -> bytes:
    """Length-prefix ``payload`` (the framing used inside an attested channel)."""
    if len(payload) > MAX_FRAME:
        raise FrameError(f"payload of {len(payload)} bytes exceeds the {MAX_FRAME}-byte limit")
    return _LEN.pack(len(payload)) + payload


def encode_call(method: str, body: bytes) -> bytes:
    """A request inside an attested channel: method name and body."""
    m = method.encode()
    if len(m) > 255:
        raise FrameError("method name longer than 255 bytes")
    return frame(bytes([len(m)]) + m + body)


def decode_call(payload: bytes) -> tuple[str, bytes]:
    """Inverse of :func:`encode_call` for one frame payload."""
    if not payload or len(payload) < 1 + payload[0]:
        raise FrameError("malformed channel request")
    n = payload[0]
    try:
        return payload[1 : 1 + n].decode(), payload[1 + n :]
    except UnicodeDecodeError as exc:
        raise FrameError("method name is not UTF-8") from exc


def encode_result(status: int, body: bytes) -> bytes:
    """A reply inside an attested channel: status byte and body."""
    return frame(bytes([status]) + body)


def decode_result(payload: bytes) -> tuple[int, bytes]:
    """Inverse of :func:`encode_result` for one frame payload."""
    if not payload or payload[0] not in (OK, ERROR):
        raise FrameError("malformed channel reply")
    return payload[0], payload[1:]


class Endpoint:
    """One side of the boundary, sans-I/O: numbers its own requests and matches replies.

    Each side's requests take ids from that side's own space; a reply is accepted only
    for a request this side sent and has not yet seen answered, so duplicated, late or
    invented replies are dropped (and counted) instead of confusing a caller.
    Thread-safe: the enclave sends requests from many worker threads.
    """

    def __init__(self) -> None:
        self._next = 1
        self._outstanding: set[int] = set()
        self._decoder = FrameDecoder()
        self._lock = threading.Lock()
        self.dropped_replies = 0
        self.malformed = 0

    def request(self, method: str, body: bytes = b"", stream: int = 0) -> tuple[int, bytes]:
        """A new request: its transaction id and the frame to send."""
        with self._lock:
            txid = self._next
            self._next += 1
            self._outstanding.add(txid)
        return txid, encode_message(Message(REQUEST, txid, method, stream, OK, body))

    def reply(self, request: Message, body: bytes = b"", *, error: str | None = None) -> bytes:
        """The frame answering ``request`` (an error reply if ``error`` is given)."""
        status, payload = (OK, body) if error is None else (ERROR, error.encode())
        return encode_message(Message(REPLY, request.txid, request.method, request.stream, status, payload))

    def abandon(self, txid: int) -> None:
        """Stop waiting for ``txid`` (timeout, cancellation); a late reply is dropped."""
        with self._lock:
            self._outstanding.discard(txid)

    def receive(self, data: bytes) -> list[Message]:
        """Feed bytes from the other side; return its requests and our matched replies.

        Raises ``FrameError`` only when the framing itself is broken (the stream
        cannot be resynchronised); a single malformed message is skipped.
        """
        out: list[Message] = []
        for payload in self._decoder.feed(data):
            try:
                msg = decode_message(payload)
            except FrameError:
                self.malformed += 1
                continue
            if msg.kind == REPLY:
                with self._lock:
                    if msg.txid not in self._outstanding:
                        self.dropped_replies += 1
                        continue
                    self._outstanding.discard(msg.txid)
            out.append(msg)
        return out

    @property
    def outstanding(self) -> int:
        """Requests sent and not yet answered or abandoned."""
        return len(self._outstanding)
