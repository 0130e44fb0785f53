"""The load generator: K transactions in flight (or a target rate) over the Gateway protocol.

Asynchronous (``grpc.aio``) so one process keeps a thousand transactions in flight; every
signature is made on a thread pool (``cryptography`` releases the GIL). A transaction is
Endorse, Submit and CommitStatus, as fabric-gateway clients do it; it counts as committed
when CommitStatus says VALID. Its latency runs from the start of the transaction (the
proposal) to the commit status. (The ``tcf`` workload's operation is a whole work order:
see ``heddle.bench.workloads.TcfWorkOrders``.) ``GatewayClient.blocks`` follows the
committed blocks (protos.Deliver) for workloads that wait for what others commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import events_pb2, proposal_pb2, transaction_pb2

from heddle.client.errors import error_details
from heddle.client.gateway import gateway_stubs
from heddle.client.identity import Identity, Signer, sha256
from heddle.common.deliver import seek_info, seek_payload
from heddle.protocol import create_proposal

if TYPE_CHECKING:
    from heddle.bench.workloads import Workload  # workloads import TxError from here

_GRPC_OPTIONS = [
    ("grpc.max_send_message_length", 100 * 1024 * 1024),
    ("grpc.max_receive_message_length", 100 * 1024 * 1024),
    ("grpc.enable_retries", 0),
]


@dataclass(frozen=True)
class GatewayTarget:
    """Where the load goes: a gateway peer, the client identity, the channel and chaincode."""

    endpoint: str
    tls_ca: bytes | None
    identity: Identity
    signer: Signer
    channel: str
    chaincode: str
    server_name: str | None = None


@dataclass
class TxSample:
    """One finished transaction: when it started and ended (monotonic seconds) and how."""

    start: float
    end: float
    ok: bool
    error: str = ""


@dataclass
class LoadResult:
    samples: list[TxSample] = field(default_factory=list)
    window_start: float = 0.0
    window_end: float = 0.0

    def in_window(self) -> list[TxSample]:
        return [s for s in self.samples if self.window_start <= s.end <= self.window_end]


class TxError(Exception):
    """A transaction that did not commit VALID; the message names the phase and the reason."""


def _rpc_error(phase: str, exc: grpc.aio.AioRpcError) -> TxError:
    """The phase, gRPC status and message, and what each node said (gateway.ErrorDetail)."""
    text = f"{phase}: {exc.code().name}: {exc.details()}"
    nodes = "; ".join(f"{d.address} ({d.msp_id}): {d.message}" for d in error_details(exc))
    return TxError(f"{text} [{nodes}]" if nodes else text)


def open_channel(target: GatewayTarget) -> grpc.aio.Channel:
    options = list(_GRPC_OPTIONS)
    if target.server_name:
        options.append(("grpc.ssl_target_name_override", target.server_name))
    if target.tls_ca is None:
        return grpc.aio.insecure_channel(target.endpoint, options=options)
    creds = grpc.ssl_channel_credentials(root_certificates=target.tls_ca)
    return grpc.aio.secure_channel(target.endpoint, creds, options=options)


class GatewayClient:
    """The three transaction RPCs and Evaluate, asynchronous, with signing on a pool."""

    def __init__(self, target: GatewayTarget, channel: grpc.aio.Channel, pool: ThreadPoolExecutor):
        self.target = target
        self.pool = pool
        self.creator = target.identity.serialized()
        self._evaluate, self._endorse, self._submit, self._commit_status = gateway_stubs(channel)
        self._deliver = channel.stream_stream(
            "/protos.Deliver/Deliver",
            common_pb2.Envelope.SerializeToString,
            events_pb2.DeliverResponse.FromString,
        )

    def _sign_now(self, data: bytes) -> bytes:
        return self.target.signer(sha256(data))

    async def sign(self, data: bytes) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._sign_now, data)

    def _signed_proposal(self, args: list[bytes]) -> tuple[str, proposal_pb2.SignedProposal]:
        proposal, txid = create_proposal(self.creator, self.target.channel, self.target.chaincode, args)
        data = proposal.SerializeToString()
        return txid, proposal_pb2.SignedProposal(proposal_bytes=data, signature=self._sign_now(data))

    async def proposal(self, args: list[bytes]) -> tuple[str, proposal_pb2.SignedProposal]:
        """A signed proposal, built and signed on the pool (one hop off the event loop)."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._signed_proposal, args)

    async def evaluate(self, args: list[bytes], timeout: float = 60.0) -> bytes:
        txid, signed = await self.proposal(args)
        request = gateway_pb2.EvaluateRequest(
            transaction_id=txid, channel_id=self.target.channel, proposed_transaction=signed
        )
        try:
            response = await self._evaluate(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise _rpc_error("evaluate", exc) from None
        return response.result.payload

    async def submit(self, args: list[bytes], timeout: float = 120.0) -> tuple[str, int]:
        """Endorse, submit and wait for the commit; (txid, block number) if VALID, else TxError."""
        txid, signed = await self.proposal(args)
        channel = self.target.channel
        try:
            endorsed = await self._endorse(
                gateway_pb2.EndorseRequest(
                    transaction_id=txid, channel_id=channel, proposed_transaction=signed
                ),
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise _rpc_error("endorse", exc) from None
        envelope = endorsed.prepared_transaction
        status_request = gateway_pb2.CommitStatusRequest(
            transaction_id=txid, channel_id=channel, identity=self.creator
        ).SerializeToString()
        # both signatures in one hop to the pool
        envelope.signature, status_signature = await asyncio.get_running_loop().run_in_executor(
            self.pool, lambda: (self._sign_now(envelope.payload), self._sign_now(status_request))
        )
        try:
            await self._submit(
                gateway_pb2.SubmitRequest(
                    transaction_id=txid, channel_id=channel, prepared_transaction=envelope
                ),
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise _rpc_error("submit", exc) from None
        try:
            status = await self._commit_status(
                gateway_pb2.SignedCommitStatusRequest(request=status_request, signature=status_signature),
                timeout=timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise _rpc_error("commit status", exc) from None
        if status.result != transaction_pb2.VALID:
            name = transaction_pb2.TxValidationCode.Name(status.result)
            raise TxError(f"commit: {name} in block {status.block_number}")
        return txid, status.block_number

    async def blocks(self, start: int | None = None) -> AsyncIterator[common_pb2.Block]:
        """Committed blocks of the channel from the gateway peer (protos.Deliver), from block
        ``start`` (default: the newest block, then each one committed after it), until the
        caller stops iterating (the stream is cancelled) or the stream fails (TxError)."""
        position = (
            ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=start))
            if start is not None
            else ab_pb2.SeekPosition(newest=ab_pb2.SeekNewest())
        )
        payload = seek_payload(self.target.channel, self.creator, seek_info(position))
        envelope = common_pb2.Envelope(payload=payload, signature=await self.sign(payload))
        call = self._deliver(iter([envelope]))
        try:
            async for response in call:
                kind = response.WhichOneof("Type")
                if kind == "block":
                    yield response.block
                elif kind == "status":
                    raise TxError(f"deliver: ended with {common_pb2.Status.Name(response.status)}")
        except grpc.aio.AioRpcError as exc:
            raise _rpc_error("deliver", exc) from None
        finally:
            call.cancel()


Progress = Callable[[float, "LoadGenerator"], None]


class LoadGenerator:
    """Drives a workload closed-loop (``concurrency`` in flight) or at a target ``rate``."""

    def __init__(
        self,
        client: GatewayClient,
        workload: Workload,
        *,
        concurrency: int = 1000,
        rate: float | None = None,
        duration: float | None = 10.0,
        count: int | None = None,
        warmup: float = 0.0,
        timeout: float = 120.0,
    ):
        if duration is None and count is None:
            raise ValueError("give a duration or a count")
        self.client = client
        self.workload = workload
        self.concurrency = max(1, concurrency)
        self.rate = rate
        self.duration = duration
        self.count = count
        self.warmup = warmup
        self.timeout = timeout
        self.result = LoadResult()
        self.started = 0
        self.in_flight = 0
        self.committed = 0
        self.failed = 0
        self.errors: dict[str, int] = {}
        self._stop = False
        self._t0 = 0.0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0 if self._t0 else 0.0

    async def _one(self) -> None:
        self.in_flight += 1
        self.started += 1
        start = time.monotonic()
        try:
            await self.workload.run_one(self.client, self.timeout)
            ok, error = True, ""
        except TxError as exc:
            ok, error = False, str(exc)
        except Exception as exc:  # a bug in a workload must show, not hang the run
            ok, error = False, f"{type(exc).__name__}: {exc}"
        end = time.monotonic()
        self.in_flight -= 1
        self.result.samples.append(TxSample(start, end, ok, error))
        if ok:
            self.committed += 1
        else:
            self.failed += 1
            kind = error.split(" in block")[0][:300]
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def _more(self) -> bool:
        if self._stop:
            return False
        if self.count is not None and self.started >= self.count:
            return False
        return True

    async def _worker(self) -> None:
        while self._more():
            await self._one()

    async def _paced(self) -> None:
        assert self.rate
        tasks: set[asyncio.Task] = set()
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while self._more():
            now = time.monotonic()
            if next_at > now:
                await asyncio.sleep(next_at - now)
            next_at += interval
            if self.in_flight >= self.concurrency:  # open loop, but never more than K in flight
                continue
            task = asyncio.create_task(self._one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)

    async def run(self, on_window: Callable[[str], None] | None = None, progress: Progress | None = None):
        """Run the load; ``on_window("start"|"end")`` is called at the measurement window's
        edges (to sample CPU). Returns the LoadResult."""
        self._t0 = time.monotonic()
        self.result.window_start = self._t0 + self.warmup
        loop_task = asyncio.ensure_future(
            self._paced() if self.rate else asyncio.gather(*(self._worker() for _ in range(self.concurrency)))
        )
        if self.warmup:
            await _sleep_or_done(self.warmup, loop_task, progress, self)
        if on_window:
            on_window("start")
        self.result.window_start = time.monotonic()
        if self.duration is not None:
            await _sleep_or_done(self.duration, loop_task, progress, self)
            self.result.window_end = time.monotonic()
            if on_window:
                on_window("end")
            self._stop = True
            await _sleep_or_done(None, loop_task, progress, self)
        else:
            await _sleep_or_done(None, loop_task, progress, self)
            self.result.window_end = time.monotonic()
            if on_window:
                on_window("end")
        return self.result


async def _sleep_or_done(seconds: float | None, task: asyncio.Future, progress, gen) -> None:
    """Wait ``seconds`` (None: until ``task`` ends), reporting progress twice a second."""
    deadline = None if seconds is None else time.monotonic() + seconds
    while not task.done():
        left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
        if left <= 0:
            break
        await asyncio.wait([task], timeout=left)
        if progress:
            progress(time.monotonic(), gen)
    if task.done():
        task.result()  # surface a crash of the load loop


def read_bytes(path: str | Path | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()
