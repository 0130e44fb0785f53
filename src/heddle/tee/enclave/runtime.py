"""The virtual enclave's runtime: the message loop, sessions and the application API.

One reader thread takes host-to-enclave frames off the boundary. Requests on a
stream (an attested session, or a peer stream an application uses) are queued per
stream and drained by a worker pool, so each stream is handled in order under its
own lock while different streams run in parallel. Replies go back in whatever order
they finish; a write lock keeps each frame whole on the pipe.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from types import ModuleType

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import wire
from .evidence import VIRTUAL, Evidence, VirtualQuote, report_data
from .sealing import SealError, SealingKey
from .tls import ChannelError, TlsIdentity, TlsServerSession, spki

log = logging.getLogger("enclave.runtime")

ROOT_KEY_FILE = "root.key"
SEAL_SECRET_FILE = "seal.secret"
_WORKERS = 16

ChannelHandler = Callable[[bytes, "Session"], bytes]
HostHandler = Callable[[bytes], bytes]


class HostCallError(Exception):
    """The host answered an enclave-to-host request with an error."""


class Session:
    """An attested client session as an application handler sees it."""

    __slots__ = ("id", "state")

    def __init__(self, sid: int) -> None:
        self.id = sid
        self.state: dict[str, object] = {}

    def __repr__(self) -> str:
        return f"Session(id={self.id})"


class EnclaveContext:
    """What an enclave application gets in ``setup(ctx)``.

    Register handlers for confidential requests (arriving through attested sessions)
    with :meth:`handler`, and for plaintext host requests with :meth:`host_handler`.
    Keys an application generates stay in this process; publish their public halves
    with :meth:`add_public_key` so evidence binds them.
    """

    def __init__(self, runtime: _Runtime) -> None:
        self._rt = runtime
        self.measurement: bytes = runtime.measurement
        self.debug: bool = runtime.debug
        self.log = logging.getLogger("enclave.app")

    def handler(self, method: str) -> Callable[[ChannelHandler], ChannelHandler]:
        """Decorator: ``fn(body, session) -> bytes`` answers ``method`` on attested sessions."""

        def register(fn: ChannelHandler) -> ChannelHandler:
            self._rt.channel_handlers[method] = fn
            return fn

        return register

    def host_handler(self, method: str) -> Callable[[HostHandler], HostHandler]:
        """Decorator: ``fn(body) -> bytes`` answers plaintext host calls to ``method``."""

        def register(fn: HostHandler) -> HostHandler:
            self._rt.host_handlers[method] = fn
            return fn

        return register

    def add_public_key(self, name: str, public_key_der: bytes) -> None:
        """Bind a public key (DER SubjectPublicKeyInfo) into all future evidence."""
        if name == "tls":
            raise ValueError("the name 'tls' is reserved for the channel key")
        self._rt.public_keys[name] = bytes(public_key_der)

    def seal(self, data: bytes, label: bytes = b"") -> bytes:
        """Encrypt ``data`` so only this measurement on this platform can unseal it."""
        return self._rt.sealing.seal(data, label)

    def unseal(self, blob: bytes, label: bytes = b"") -> bytes:
        """Decrypt sealed data; raises ``SealError`` under any other measurement."""
        return self._rt.sealing.unseal(blob, label)

    def call_host(self, method: str, body: bytes = b"", timeout: float | None = 30.0) -> bytes:
        """Send an enclave-to-host request and wait for its reply (from a handler thread)."""
        return self._rt.call_host(method, body, timeout)


class _Stream:
    __slots__ = ("id", "lock", "queue", "running", "session", "tls")

    def __init__(self, sid: int) -> None:
        self.id = sid
        self.lock = threading.Lock()
        self.queue: deque[wire.Message] = deque()
        self.running = False
        self.tls: TlsServerSession | None = None
        self.session = Session(sid)


class _Runtime:
    def __init__(self, measurement: bytes, platform_dir: str, debug: bool, out_fd: int) -> None:
        self.measurement = measurement
        self.debug = debug
        self._out_fd = out_fd
        self._write_lock = threading.Lock()
        self._streams: dict[int, _Stream] = {}
        self._streams_lock = threading.Lock()
        self.endpoint = wire.Endpoint()  # the enclave's own request id space
        self._pending: dict[int, Future[wire.Message]] = {}
        self._pending_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="enclave-worker")
        self.channel_handlers: dict[str, ChannelHandler] = {}
        self.host_handlers: dict[str, HostHandler] = {}

        with open(os.path.join(platform_dir, ROOT_KEY_FILE), "rb") as f:
            root = serialization.load_pem_private_key(f.read(), password=None)
        if not isinstance(root, ec.EllipticCurvePrivateKey):
            raise TypeError("virtual platform root key must be an EC key")
        self._root = root
        self._platform_id = _sha256(spki(root.public_key()))
        with open(os.path.join(platform_dir, SEAL_SECRET_FILE), "rb") as f:
            self.sealing = SealingKey(f.read(), measurement)
        self._tls = TlsIdentity()
        self.public_keys: dict[str, bytes] = {"tls": self._tls.public_key_der}

    # --- boundary ---------------------------------------------------------------

    def send(self, data: bytes) -> None:
        with self._write_lock:
            view = memoryview(data)
            while view:
                n = os.write(self._out_fd, view)
                view = view[n:]

    def dispatch(self, msg: wire.Message) -> None:
        if msg.kind == wire.REPLY:
            with self._pending_lock:
                fut = self._pending.pop(msg.txid, None)
            if fut is not None:  # None: the caller timed out meanwhile
                fut.set_result(msg)
            return
        if msg.stream == 0:
            self._pool.submit(self._run, msg, None)
            return
        with self._streams_lock:
            stream = self._streams.get(msg.stream)
            if stream is None:
                stream = self._streams[msg.stream] = _Stream(msg.stream)
        with stream.lock:
            stream.queue.append(msg)
            if stream.running:
                return
            stream.running = True
        self._pool.submit(self._drain, stream)

    def _drain(self, stream: _Stream) -> None:
        while True:
            with stream.lock:
                if not stream.queue:
                    stream.running = False
                    return
                msg = stream.queue.popleft()
            self._run(msg, stream)

    def _run(self, msg: wire.Message, stream: _Stream | None) -> None:
        try:
            reply = self.endpoint.reply(msg, self._handle(msg, stream))
        except (_Refusal, SealError, HostCallError) as exc:  # messages free of secrets
            reply = self.endpoint.reply(msg, error=str(exc))
        except Exception as exc:  # an application bug must not take the enclave down
            log.warning("handler for %r failed: %s", msg.method, type(exc).__name__)
            reply = self.endpoint.reply(msg, error=f"{msg.method} failed: {type(exc).__name__}")
        self.send(reply)

    def call_host(self, method: str, body: bytes, timeout: float | None) -> bytes:
        fut: Future[wire.Message] = Future()
        with self._pending_lock:
            txid, frame = self.endpoint.request(method, body)
            self._pending[txid] = fut
        self.send(frame)
        try:
            reply = fut.result(timeout)
        except TimeoutError:
            raise HostCallError(f"host did not answer {method!r} within {timeout} s") from None
        finally:
            with self._pending_lock:
                self._pending.pop(txid, None)
            self.endpoint.abandon(txid)
        if reply.status != wire.OK:
            raise HostCallError(reply.body.decode(errors="replace"))
        return reply.body

    # --- requests ---------------------------------------------------------------

    def _handle(self, msg: wire.Message, stream: _Stream | None) -> bytes:
        method = msg.method
        if method == "enclave.info":
            return self.measurement + bytes([self.debug])
        if method == "enclave.evidence":
            return self._evidence(msg.body)
        if method.startswith("app."):
            fn = self.host_handlers.get(method[4:])
            if fn is None:
                raise _Refusal(f"no host handler {method[4:]!r} in this enclave application")
            return fn(msg.body)
        if not method.startswith("session."):
            raise _Refusal(f"unknown method {method!r}")
        if stream is None:
            raise _Refusal(f"{method} needs a stream id")
        if method == "session.open":
            if stream.tls is not None:
                raise _Refusal(f"session {stream.id} is already open")
            stream.tls = TlsServerSession(self._tls.context)
            stream.session = Session(stream.id)
            return b""
        if method == "session.close":
            with self._streams_lock:
                self._streams.pop(stream.id, None)
            stream.tls = None
            return b""
        if method == "session.data":
            return self._session_data(stream, msg.body)
        raise _Refusal(f"unknown method {method!r}")

    def _session_data(self, stream: _Stream, data: bytes) -> bytes:
        tls = stream.tls
        if tls is None:
            raise _Refusal(f"no open session {stream.id}")
        try:
            for payload in tls.receive(data):
                tls.send(self._call(payload, stream.session))
        except ChannelError as exc:
            stream.tls = None
            with self._streams_lock:
                self._streams.pop(stream.id, None)
            log.info("session %d closed: %s", stream.id, exc)
            raise _Refusal(str(exc)) from None
        return tls.outgoing()

    def _call(self, payload: bytes, session: Session) -> bytes:
        try:
            method, body = wire.decode_call(payload)
        except wire.FrameError as exc:
            return wire.encode_result(wire.ERROR, str(exc).encode())
        fn = self.channel_handlers.get(method)
        if fn is None:
            return wire.encode_result(wire.ERROR, f"unknown method {method!r}".encode())
        try:
            return wire.encode_result(wire.OK, fn(body, session))
        except Exception as exc:  # reported to the client inside the channel only
            log.info("channel handler %r raised %s", method, type(exc).__name__)
            return wire.encode_result(wire.ERROR, f"{type(exc).__name__}: {exc}".encode())

    def _evidence(self, nonce: bytes) -> bytes:
        if not 8 <= len(nonce) <= 1024:
            raise _Refusal("nonce must be 8 to 1024 bytes")
        keys = dict(self.public_keys)
        quote = VirtualQuote(self.measurement, report_data(keys, nonce), self._platform_id, self.debug)
        sig = self._root.sign(quote.signed_bytes(), ec.ECDSA(hashes.SHA256()))
        return Evidence(VIRTUAL, replace(quote, signature=sig).to_bytes(), keys).to_bytes()


class _Refusal(Exception):
    """A request the enclave refuses; the message goes back to the host."""


def _sha256(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize()


def _load_application(application: bytes, app_path: str) -> ModuleType:
    module = ModuleType("enclave_application")
    module.__file__ = app_path
    sys.modules[module.__name__] = module
    code = compile(application, app_path, "exec")
    exec(code, module.__dict__)  # noqa: S102 - the measured application bytes, by design
    return module


def main(
    *,
    application: bytes,
    app_path: str,
    measurement: bytes,
    platform_dir: str,
    debug: bool,
    in_fd: int,
    out_fd: int,
) -> int:
    """Run the enclave until the host closes the boundary."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    rt = _Runtime(measurement, platform_dir, debug, out_fd)
    module = _load_application(application, app_path)
    setup = getattr(module, "setup", None)
    if not callable(setup):
        log.error("the enclave application defines no setup(ctx) function")
        return 4
    setup(EnclaveContext(rt))
    log.info("enclave ready, measurement %s", measurement.hex())
    endpoint = rt.endpoint
    while True:
        data = os.read(in_fd, 1 << 16)
        if not data:
            break
        malformed, dropped = endpoint.malformed, endpoint.dropped_replies
        try:
            messages = endpoint.receive(data)
        except wire.FrameError as exc:
            log.error("host broke the framing (%s); stopping", exc)
            return 5
        if endpoint.malformed != malformed or endpoint.dropped_replies != dropped:
            log.warning("dropped malformed or unmatched messages from the host")
        for msg in messages:
            rt.dispatch(msg)
    rt._pool.shutdown(wait=True, cancel_futures=True)
    return 0


__all__ = ["EnclaveContext", "HostCallError", "SealError", "Session", "main"]
