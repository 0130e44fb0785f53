"""The I/O shell around ShimHandler: gRPC protos.Chaincode/Connect streams the peer dials.

A ``ChaincodeEndpoint`` is one dialled chaincode (one gRPC channel). By default it runs
one transaction at a time on each stream, and keeps a stream open for the next transaction
once one ends (opening a stream and registering on it cost both sides more than the
transaction itself); with ``shared_stream`` it multiplexes every
transaction on one stream, as Fabric's peer does. A stream per transaction exists
because fabric-chaincode-python 2.5.4 writes to its stream from concurrent tasks: when a
write overlaps another gRPC refuses it (GRPC_CALL_ERROR_TOO_MANY_OPERATIONS) and the
message is lost, so a busy shared stream would leave transactions hanging. One transaction
at a time writes one message at a time. Every shim accepts several Connect streams, so this
works with all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from fabric_protos.peer import chaincode_pb2, chaincode_shim_pb2_grpc, proposal_pb2, proposal_response_pb2

from heddle.chaincode.runtime.handler import (
    HandlerError,
    InvokeRequested,
    Msg,
    ProtocolViolation,
    Registered,
    ShimHandler,
    TxCompleted,
    TxFailed,
)
from heddle.chaincode.runtime.target import (
    ChaincodeError,
    ChaincodeResult,
    ChaincodeTarget,
    ChaincodeUnresponsive,
)

log = logging.getLogger(__name__)

# runs a chaincode-to-chaincode call; returns the called chaincode's Response
InvokeFn = Callable[[InvokeRequested], Awaitable[proposal_response_pb2.Response]]
# says why a stream broke, e.g. " (process exited with code -9)"; "" when it cannot tell
LossDetail = Callable[[], Awaitable[str]]
MAX_MESSAGE_BYTES = 100 * 1024 * 1024
# Streams kept open between transactions (one transaction at a time on each); more run on
# streams opened for them and closed after.
MAX_IDLE_STREAMS = 1024
# A stream rests this long before its next transaction. fabric-chaincode-python writes each
# message from a task of its own: a TRANSACTION that arrives while the shim's write of the
# previous COMPLETED is still finishing makes the next write overlap it, and gRPC drops it
# (the transaction would hang). Seen under heavy load without a rest; with it, the previous
# write has long finished.
STREAM_REST_SECONDS = 0.5


def _expire(future: asyncio.Future, name: str, timeout: float) -> None:
    if not future.done():
        future.set_exception(ChaincodeError(f"chaincode {name}: timed out after {timeout:g}s"))


def channel_credentials(target: ChaincodeTarget) -> grpc.ChannelCredentials | None:
    if not target.tls_required:
        return None
    if target.client_auth_required:
        return grpc.ssl_channel_credentials(target.root_cert, target.client_key, target.client_cert)
    return grpc.ssl_channel_credentials(target.root_cert)


class ChaincodeStream:
    """One Connect stream and its protocol state; runs any number of transactions."""

    def __init__(
        self,
        target: ChaincodeTarget,
        channel: grpc.aio.Channel,
        *,
        on_invoke: InvokeFn,
        loss_detail: LossDetail | None = None,
    ):
        self.target = target
        self.handler = ShimHandler()
        self._channel = channel
        self._on_invoke = on_invoke
        self._loss_detail = loss_detail
        self._call: Any = None
        self._reader: asyncio.Task | None = None
        self._write_lock = asyncio.Lock()
        self._pending: dict[tuple[str, str], asyncio.Future[ChaincodeResult]] = {}
        self._registered: asyncio.Future[str] | None = None
        self._tasks: set[asyncio.Task] = set()
        self.closed = False
        self.lost_reason = ""

    @property
    def name(self) -> str:
        return self.target.name

    async def open(self, timeout: float) -> None:
        """Start the stream and wait for the chaincode's REGISTER."""
        self._call = chaincode_shim_pb2_grpc.ChaincodeStub(self._channel).Connect()
        self._registered = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read_loop(), name=f"chaincode-{self.name}-reader")
        try:
            ccid = await asyncio.wait_for(asyncio.shield(self._registered), timeout)
        except TimeoutError:
            await self.close()
            raise ChaincodeUnresponsive(
                f"chaincode {self.name}: not responding (no REGISTER on a new stream within {timeout:g}s)"
            ) from None
        except ChaincodeError:
            await self.close()
            raise
        log.debug("chaincode %s registered as %s", self.name, ccid)

    async def execute(
        self,
        channel_id: str,
        txid: str,
        input: chaincode_pb2.ChaincodeInput,
        simulator: Any,
        signed_proposal: proposal_pb2.SignedProposal | None,
        is_init: bool,
        timeout: float,
        budget: float | None = None,
    ) -> ChaincodeResult:
        """Run one transaction; ``budget`` (default ``timeout``) is the time it may take."""
        if self.closed:
            raise self._lost_error()
        try:
            msg = self.handler.start_transaction(
                channel_id, txid, self.target.name, input, simulator, signed_proposal, is_init
            )
        except HandlerError as exc:
            raise ChaincodeError(f"chaincode {self.name}: {exc}") from None
        key = (channel_id, txid)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ChaincodeResult] = loop.create_future()
        self._pending[key] = future
        # one timer per transaction (wait_for and shield cost a task's worth of futures each)
        timer = loop.call_later(timeout if budget is None else budget, _expire, future, self.name, timeout)
        try:
            await self._send(msg)
            return await future
        finally:
            timer.cancel()
            self._pending.pop(key, None)
            self.handler.finish_transaction(channel_id, txid)

    async def close(self) -> None:
        """End the stream from the peer's side (not an error)."""
        await self._lost("closed by the peer", quiet=True)
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def abort(self, reason: str) -> None:
        """Fail everything in flight and end the stream (e.g. its process died)."""
        await self._lost(reason)

    def track(self, coro: Awaitable[Any]) -> None:
        """Run a background task, kept referenced until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- internals ---------------------------------------------------------------------

    def _lost_error(self) -> ChaincodeError:
        return ChaincodeError(f"chaincode {self.name}: connection lost{self.lost_reason}")

    async def _send(self, msg: Msg) -> None:
        if self._call is None or self.closed:
            raise self._lost_error()
        try:
            async with self._write_lock:
                await self._call.write(msg)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError) as exc:
            await self._lost(f"send failed: {exc}")
            raise self._lost_error() from None

    async def _read_loop(self) -> None:
        reason = "stream ended"
        try:
            while True:
                msg = await self._call.read()
                if msg is grpc.aio.EOF:
                    break
                step = self.handler.receive(msg)
                for out in step.send:
                    await self._send(out)
                for event in step.events:
                    self._dispatch(event)
                if self.closed:
                    return
        except grpc.aio.AioRpcError as exc:
            reason = f"{exc.code().name}: {exc.details()}"
        except (ChaincodeError, asyncio.CancelledError):
            return
        await self._lost(reason)

    def _dispatch(self, event: Any) -> None:
        if isinstance(event, Registered):
            if self._registered is not None and not self._registered.done():
                self._registered.set_result(event.chaincode_id)
        elif isinstance(event, TxCompleted):
            self._resolve((event.channel_id, event.txid), result=ChaincodeResult(event.response, event.event))
        elif isinstance(event, TxFailed):
            error = ChaincodeError(f"chaincode {self.name}: {event.message}")
            self._resolve((event.channel_id, event.txid), error=error)
        elif isinstance(event, InvokeRequested):
            self.track(self._invoke(event))
        elif isinstance(event, ProtocolViolation):
            self.track(self._lost(f"protocol violation: {event.message}"))

    def _resolve(self, key: tuple[str, str], *, result=None, error=None) -> None:
        future = self._pending.get(key)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    async def _invoke(self, event: InvokeRequested) -> None:
        try:
            response = await self._on_invoke(event)
            reply = self.handler.invoke_finished(event.channel_id, event.txid, response)
        except ChaincodeError as exc:
            reply = self.handler.invoke_finished(event.channel_id, event.txid, None, str(exc))
        except Exception as exc:  # a broken resolver must not leave the caller waiting
            log.exception("chaincode %s: calling %s failed", self.name, event.chaincode_name)
            text = f"calling chaincode {event.chaincode_name} failed: {exc}"
            reply = self.handler.invoke_finished(event.channel_id, event.txid, None, text)
        with contextlib.suppress(ChaincodeError):
            await self._send(reply)

    async def _lost(self, reason: str, quiet: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        detail = ""
        if self._loss_detail is not None and not quiet:
            detail = await self._loss_detail()
        detail = detail or f" ({reason})"
        self.lost_reason = detail
        if not quiet:
            log.warning("chaincode %s: stream lost%s", self.name, detail)
        for key in self.handler.close():
            self._resolve(key, error=self._lost_error())
        for key in list(self._pending):
            self._resolve(key, error=self._lost_error())
        if self._registered is not None and not self._registered.done():
            self._registered.set_exception(
                ChaincodeError(f"chaincode {self.name}: stream ended before REGISTER{detail}")
            )
            self._registered.exception()  # retrieved: nobody may be waiting any more
        if self._call is not None:
            self._call.cancel()


class ChaincodeEndpoint:
    """A dialled chaincode: one gRPC channel, and a stream per transaction or one shared."""

    def __init__(
        self,
        target: ChaincodeTarget,
        address: str,
        *,
        on_invoke: InvokeFn,
        loss_detail: LossDetail | None = None,
    ):
        self.target = target
        self.address = address
        self._on_invoke = on_invoke
        self._loss_detail = loss_detail
        self._channel: grpc.aio.Channel | None = None
        self._streams: set[ChaincodeStream] = set()
        self._shared: ChaincodeStream | None = None
        self._shared_lock = asyncio.Lock()
        # open streams between transactions, oldest first, with the time each may be reused
        self._idle: deque[tuple[float, ChaincodeStream]] = deque()
        self._running: set[tuple[str, str]] = set()
        self.closed = False
        self.lost_reason = ""

    @property
    def name(self) -> str:
        return self.target.name

    async def connect(self, timeout: float) -> None:
        """Dial, and check the chaincode registers on a first stream."""
        creds = channel_credentials(self.target)
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.enable_retries", 0),  # a stream is never retried; no per-message buffering
        ]
        if creds is None:
            self._channel = grpc.aio.insecure_channel(self.address, options=options)
        else:
            self._channel = grpc.aio.secure_channel(self.address, creds, options=options)
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except TimeoutError:
            await self.close()
            raise ChaincodeError(
                f"chaincode {self.name}: could not connect to {self.address} within {timeout:g}s"
            ) from None
        first = await self._open_stream(timeout)
        if self.target.shared_stream:
            self._shared = first
        else:
            self._idle.append((asyncio.get_running_loop().time() + STREAM_REST_SECONDS, first))
        log.info("chaincode %s connected at %s", self.name, self.address)

    async def execute(
        self,
        channel_id: str,
        txid: str,
        input: chaincode_pb2.ChaincodeInput,
        simulator: Any,
        signed_proposal: proposal_pb2.SignedProposal | None,
        is_init: bool,
        timeout: float,
    ) -> ChaincodeResult:
        if self.closed:
            raise ChaincodeError(f"chaincode {self.name}: connection lost{self.lost_reason}")
        key = (channel_id, txid)
        if key in self._running:
            raise ChaincodeError(f"chaincode {self.name} is already running transaction {txid}")
        self._running.add(key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        args = (channel_id, txid, input, simulator, signed_proposal, is_init, timeout)
        try:
            if self.target.shared_stream:
                stream = await self._shared_stream(timeout)
                return await stream.execute(*args, budget=max(0.0, deadline - loop.time()))
            stream = await self._idle_stream(timeout)
            try:
                result = await stream.execute(*args, budget=max(0.0, deadline - loop.time()))
            except BaseException:
                await self._close_stream(stream)  # its state is unknown (timed out, lost)
                # and the chaincode's may be too: the next transaction opens a fresh stream,
                # whose REGISTER tells a stuck chaincode (ChaincodeUnresponsive) from a slow one
                await self._drain_idle()
                raise
            if stream.closed or self.closed or len(self._idle) >= MAX_IDLE_STREAMS:
                await self._close_stream(stream)
            else:
                self._idle.append((loop.time() + STREAM_REST_SECONDS, stream))
            return result
        finally:
            self._running.discard(key)

    async def abort(self, reason: str) -> None:
        """The chaincode is gone (its process died): fail every stream now."""
        if self.closed:
            return
        self.closed = True
        streams = list(self._streams)
        for stream in streams:
            await stream.abort(reason)
        self.lost_reason = next((s.lost_reason for s in streams), f" ({reason})")
        await self._close_channel()

    async def close(self) -> None:
        self.closed = True
        for stream in list(self._streams):
            await stream.close()
        await self._close_channel()

    # --- internals ---------------------------------------------------------------------

    async def _open_stream(self, timeout: float) -> ChaincodeStream:
        if self._channel is None or self.closed:
            raise ChaincodeError(f"chaincode {self.name}: connection lost{self.lost_reason}")
        stream = ChaincodeStream(
            self.target, self._channel, on_invoke=self._on_invoke, loss_detail=self._loss_detail
        )
        self._streams.add(stream)
        try:
            await stream.open(timeout)
        except ChaincodeError:
            self._streams.discard(stream)
            raise
        return stream

    async def _drain_idle(self) -> None:
        idle, self._idle = self._idle, deque()
        for _, stream in idle:
            await self._close_stream(stream)

    async def _idle_stream(self, timeout: float) -> ChaincodeStream:
        """The longest-idle registered stream that has rested, or a new one."""
        now = asyncio.get_running_loop().time()
        while self._idle and self._idle[0][0] <= now:
            _, stream = self._idle.popleft()
            if not stream.closed:
                return stream
            self._streams.discard(stream)
        return await self._open_stream(timeout)

    async def _close_stream(self, stream: ChaincodeStream) -> None:
        self._streams.discard(stream)
        await stream.close()

    async def _shared_stream(self, timeout: float) -> ChaincodeStream:
        async with self._shared_lock:
            if self._shared is None or self._shared.closed:
                if self._shared is not None:
                    self._streams.discard(self._shared)
                self._shared = await self._open_stream(timeout)
            return self._shared

    async def _close_channel(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()
