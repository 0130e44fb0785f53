"""The host side of a virtual enclave: process plumbing around the boundary.

:class:`Enclave` starts the enclave process (``enclave/_loader.py``) and owns the
only two channels to it: serialized host-to-enclave messages into its stdin, and
enclave-to-host messages out of its stdout. Host requests are numbered from the
host's id space; the enclave numbers its own requests to the host separately.
Replies resolve futures as they arrive, in any order. Messages are written in call
order from one writer, so each client or peer stream keeps its order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from heddle.tee.enclave import measure as _measure
from heddle.tee.enclave import wire
from heddle.tee.enclave.evidence import Evidence
from heddle.tee.errors import EnclaveDied, EnclaveError, EnclaveStartError
from heddle.tee.virtual import VirtualPlatform

log = logging.getLogger("heddle.tee.host")
enclave_log = logging.getLogger("heddle.tee.enclave")

RUNTIME_DIR = Path(_measure.__file__).resolve().parent
LOADER = RUNTIME_DIR / "_loader.py"

Tap = Callable[[str, bytes], None]
HostRequestHandler = Callable[[bytes], Awaitable[bytes]]


def expected_measurement(application: str | os.PathLike[str]) -> bytes:
    """The measurement an enclave running ``application`` will have (for policies)."""
    runtime = {name: (RUNTIME_DIR / name).read_bytes() for name in _measure.RUNTIME_FILES}
    return _measure.measure(runtime, Path(application).read_bytes())


class Enclave:
    """A running virtual enclave, seen from the untrusted host.

    ``tap``, if given, is called with ("h2e" | "e2h", bytes) for every byte written to
    or read from the boundary: what a host operator could record.
    """

    def __init__(self, application: Path, debug: bool, tap: Tap | None) -> None:
        self.application = application
        self.debug = debug
        self.measurement = b""
        self._tap = tap
        self._proc: asyncio.subprocess.Process | None = None
        self._endpoint = wire.Endpoint()  # the host's own request id space
        self._streams = itertools.count(1)
        self._pending: dict[int, asyncio.Future[wire.Message]] = {}
        self._handlers: dict[str, HostRequestHandler] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._dead: EnclaveDied | None = None
        self._died = asyncio.Event()
        self._stderr_tail: deque[str] = deque(maxlen=20)
        self._stopping = False
        self._stderr_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "dead" if self._dead else "running"
        return f"Enclave({self.application.name!r}, {self.measurement.hex()[:16]}, {state})"

    @classmethod
    async def start(
        cls,
        application: str | os.PathLike[str],
        *,
        platform: VirtualPlatform,
        debug: bool = False,
        tap: Tap | None = None,
        timeout: float = 30.0,
    ) -> Enclave:
        """Start an enclave process running ``application`` on ``platform``."""
        app = Path(application).resolve()
        if not app.is_file():
            raise EnclaveStartError(f"enclave application {app} does not exist")
        self = cls(app, debug, tap)
        args = [sys.executable, "-I", "-B", str(LOADER), str(app), str(platform.directory)]
        if debug:
            args.append("--debug")
        self._proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._spawn(self._read_frames())
        self._stderr_task = self._spawn(self._read_stderr())
        try:
            info = await asyncio.wait_for(self._request("enclave.info", b"", 0), timeout)
        except (EnclaveDied, TimeoutError) as exc:
            await self.stop()
            tail = "\n".join(self._stderr_tail)
            raise EnclaveStartError(f"enclave did not start: {exc}\n{tail}".rstrip()) from None
        self.measurement, self.debug = info[:32], bool(info[32])
        log.info("enclave %s started (pid %d)", self.measurement.hex()[:16], self.pid)
        return self

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._dead is None

    async def wait_dead(self) -> EnclaveDied:
        """Wait until the enclave process is gone; return the error requests now get."""
        await self._died.wait()
        assert self._dead is not None
        return self._dead

    # --- requests -------------------------------------------------------------

    async def evidence(self, nonce: bytes) -> Evidence:
        """Evidence binding the enclave's public keys and ``nonce``."""
        return Evidence.from_bytes(await self._request("enclave.evidence", nonce, 0))

    async def call(self, method: str, body: bytes = b"", *, stream: int = 0) -> bytes:
        """A plaintext host request to the application's ``host_handler(method)``."""
        return await self._request("app." + method, body, stream)

    def new_stream(self) -> int:
        """A fresh stream id (a session or a peer stream), from the host's id space."""
        return next(self._streams)

    async def open_session(self) -> int:
        """Open an attested-session endpoint inside the enclave; return its stream id."""
        sid = self.new_stream()
        await self._request("session.open", b"", sid)
        return sid

    async def relay(self, session: int, data: bytes) -> bytes:
        """Hand the client's ciphertext to the enclave; return the enclave's ciphertext."""
        return await self._request("session.data", data, session)

    async def close_session(self, session: int) -> None:
        await self._request("session.close", b"", session)

    def on_request(self, method: str, handler: HostRequestHandler) -> None:
        """Serve the enclave's requests to the host for ``method``."""
        self._handlers[method] = handler

    async def stop(self, timeout: float = 5.0) -> None:
        """Close the boundary and wait for the process to exit (kill it if it lingers)."""
        self._stopping = True
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await asyncio.wait_for(self._died.wait(), timeout)
        if self._stderr_task is not None:  # let the last log lines (and errors) arrive
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)
        for t in list(self._tasks):
            t.cancel()

    async def __aenter__(self) -> Enclave:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- plumbing -------------------------------------------------------------

    async def _request(self, method: str, body: bytes, stream: int) -> bytes:
        if self._dead is not None:
            raise self._dead
        txid, frame = self._endpoint.request(method, body, stream)
        fut: asyncio.Future[wire.Message] = asyncio.get_running_loop().create_future()
        self._pending[txid] = fut
        try:
            await self._send(frame)
            reply = await fut
        finally:
            self._pending.pop(txid, None)
            self._endpoint.abandon(txid)
        if reply.status != wire.OK:
            raise EnclaveError(reply.body.decode(errors="replace"))
        return reply.body

    async def _send(self, data: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        if self._tap is not None:
            self._tap("h2e", data)
        try:
            self._proc.stdin.write(data)  # synchronous: call order is wire order
            await self._proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            await self._died.wait()
            assert self._dead is not None
            raise self._dead from None

    async def _read_frames(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        endpoint = self._endpoint
        try:
            while True:
                data = await self._proc.stdout.read(1 << 16)
                if not data:
                    break
                if self._tap is not None:
                    self._tap("e2h", data)
                malformed, dropped = endpoint.malformed, endpoint.dropped_replies
                for msg in endpoint.receive(data):
                    self._dispatch(msg)
                if endpoint.malformed != malformed or endpoint.dropped_replies != dropped:
                    log.warning("dropped malformed or unmatched messages from the enclave")
        except wire.FrameError as exc:
            log.error("enclave broke the framing (%s); killing it", exc)
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        finally:
            await self._on_exit()

    def _dispatch(self, msg: wire.Message) -> None:
        if msg.kind == wire.REPLY:
            fut = self._pending.get(msg.txid)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        self._spawn(self._serve_enclave_request(msg))

    async def _serve_enclave_request(self, msg: wire.Message) -> None:
        handler = self._handlers.get(msg.method)
        try:
            if handler is None:
                raise LookupError(f"host has no handler for {msg.method!r}")
            reply = self._endpoint.reply(msg, await handler(msg.body))
        except Exception as exc:
            reply = self._endpoint.reply(msg, error=f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(EnclaveDied):
            await self._send(reply)

    async def _read_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while line := await self._proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self._stderr_tail.append(text)
            level = logging.WARNING if text.startswith(("WARNING", "ERROR")) else logging.INFO
            enclave_log.log(level, "[pid %d] %s", self.pid, text)

    async def _on_exit(self) -> None:
        assert self._proc is not None
        code = await self._proc.wait()
        if code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exit code {code}"
        what = "stopped" if self._stopping else "died"
        self._dead = EnclaveDied(
            f"enclave {self.measurement.hex()[:16] or self.application.name} "
            f"(pid {self._proc.pid}) {what}: {how}; start a new one"
        )
        if not self._stopping:
            log.error("%s", self._dead)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(self._dead)
        self._died.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
