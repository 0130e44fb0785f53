"""The bench's workloads: three over asset-transfer-basic, as Caliper's fabric benchmarks
run them, and trusted-compute work orders.

- ``create``: blind writes, CreateAsset of a new asset each time (about 105 bytes of JSON);
- ``transfer``: read-modify-write, TransferAsset of preloaded assets; an asset is used by
  one transaction at a time, so no two in flight conflict (MVCC failures would be the
  benchmark's fault, not the ledger's);
- ``read``: queries, ReadAsset through Evaluate (no ordering, no commit);
- ``tcf``: trusted-compute work orders in proxy mode (``TcfWorkOrders``), on the ``tcf``
  chaincode with the connector and a worker running: one operation is one encrypted
  work order of the worker's ``echo`` workload (the cheapest, so the platform is measured
  and not the analytics), from WorkOrderSubmit to a result whose worker signature and
  data hashes are verified and whose output is decrypted and checked. No receipts are
  created (a receipt is one more ledger transaction per work order, not part of getting
  the result).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import deque
from pathlib import Path
from typing import Any

from heddle.bench.loadgen import TxError

WORKLOADS = ("create", "transfer", "read", "tcf")

_COLORS = ("blue", "red", "green", "yellow", "black", "white")
_OWNERS = (
    "Tomoko Hayashi",
    "Brad Donovan",
    "Jin Soo Park",
    "Max Mustermann",
    "Adriana Silva",
    "Michel Dupont",
)


def asset_args(asset_id: str, i: int) -> list[bytes]:
    """CreateAsset arguments; the stored JSON is about 105 bytes, as in Fabric's reference run."""
    return [
        b"CreateAsset",
        asset_id.encode(),
        _COLORS[i % len(_COLORS)].encode(),
        str(5 + i % 20).encode(),
        _OWNERS[i % len(_OWNERS)].encode(),
        str(1000 + i % 9000).encode(),
    ]


class Workload:
    """One kind of transaction; ``run_one`` does one (raises TxError if it fails)."""

    name = ""
    submits = True  # orders and commits (False: evaluate only)
    chaincode = "basic"  # the chaincode it calls (unless the bench is told another name)

    def __init__(self, prefix: str | None = None):
        self.prefix = prefix or f"bench-{os.urandom(4).hex()}"
        self.next = 0

    def new_id(self) -> tuple[str, int]:
        i = self.next
        self.next += 1
        return f"{self.prefix}-{i}", i

    async def warm_up(self, client, timeout: float) -> None:
        """One transaction endorsed by every required peer, so the chaincode processes run
        (and can be measured) before the window opens; raises TxError if it fails."""
        await client.submit(asset_args(f"bench-warmup-{os.urandom(4).hex()}", 0), timeout)

    async def prepare(self, client, concurrency: int, progress=None) -> None:
        """Set up state the workload needs (preloaded assets), before measuring."""

    async def run_one(self, client, timeout: float) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Stop what the workload started (background tasks); the client stays open."""

    def describe(self) -> dict[str, Any] | None:
        """Workload facts for the report (None: nothing beyond the name)."""
        return None


class CreateAssets(Workload):
    name = "create"

    async def run_one(self, client, timeout: float) -> None:
        asset_id, i = self.new_id()
        await client.submit(asset_args(asset_id, i), timeout)


async def _preload(client, ids: list[str], concurrency: int, progress=None) -> None:
    queue = deque(enumerate(ids))
    done = 0

    async def worker():
        nonlocal done
        while queue:
            i, asset_id = queue.popleft()
            await client.submit(asset_args(asset_id, i), 120.0)
            done += 1
            if progress:
                progress(done, len(ids))

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(ids))))))


class TransferAssets(Workload):
    """TransferAsset over ``assets`` preloaded assets (default: twice the concurrency)."""

    name = "transfer"

    def __init__(self, prefix: str | None = None, assets: int | None = None):
        super().__init__(prefix)
        self.assets = assets
        self.free: deque[str] = deque()
        self._available = asyncio.Condition()

    async def prepare(self, client, concurrency: int, progress=None) -> None:
        n = self.assets or 2 * concurrency
        ids = [f"{self.prefix}-{i}" for i in range(n)]
        await _preload(client, ids, concurrency, progress)
        self.free.extend(ids)

    async def run_one(self, client, timeout: float) -> None:
        async with self._available:
            await self._available.wait_for(lambda: bool(self.free))
            asset_id = self.free.popleft()
        i = self.next
        self.next += 1
        try:
            await client.submit([b"TransferAsset", asset_id.encode(), _OWNERS[i % 6].encode()], timeout)
        finally:
            async with self._available:
                self.free.append(asset_id)
                self._available.notify()


class ReadAssets(Workload):
    """ReadAsset through Evaluate over ``assets`` preloaded assets (default 100)."""

    name = "read"
    submits = False

    def __init__(self, prefix: str | None = None, assets: int | None = None):
        super().__init__(prefix)
        self.assets = assets or 100
        self.ids: list[str] = []

    async def prepare(self, client, concurrency: int, progress=None) -> None:
        self.ids = [f"{self.prefix}-{i}" for i in range(self.assets)]
        await _preload(client, self.ids, concurrency, progress)

    async def run_one(self, client, timeout: float) -> None:
        i = self.next
        self.next += 1
        await client.evaluate([b"ReadAsset", self.ids[i % len(self.ids)].encode()], timeout)


# --- trusted compute ----------------------------------------------------------------------

TCF_WORKLOAD = "echo"  # the worker's cheapest workload: each input back, prefixed "RESULT: "
TCF_IN_PROGRESS = frozenset({5, 6, 7})  # ErrorCode PENDING, SCHEDULED, PROCESSING
# the message ends where the gateway appends a node's answer ("; HOST:PORT (" or " [HOST:PORT (")
_TCF_ERROR = re.compile(r"TCF error (-?\d+): (.*?)(?=(?:;|\s\[)\s*\S+:\d+ \(|\]|$)", re.S)


def tcf_refusal(text: str) -> tuple[int, str] | None:
    """(code, message) of the first ``TCF error <code>: <message>`` in an error text (how
    the ``tcf`` chaincode refuses a call; the gateway adds the peer's address and the
    other nodes' answers after it), or None when the text carries none."""
    m = _TCF_ERROR.search(text)
    return (int(m.group(1)), m.group(2).strip()) if m else None


def tcf_payload(i: int, size: int = 64) -> bytes:
    """The ``i``-th work order's input: ``size`` bytes of printable text (more if ``i`` needs
    them), unique per ``i``."""
    head = f"heddle bench work order {i} ".encode()
    return (head + b"." * max(0, size - len(head)))[: max(size, len(head))]


def finished_work_orders(block, chaincode: str = "tcf") -> list[tuple[str, str]]:
    """(work order id, "completed" | "failed") for each work order a VALID transaction of
    ``block`` finished on ``chaincode``."""
    from heddle.tcf.connector import work_orders_in_block

    return [
        (wo.work_order_id, wo.status)
        for wo in work_orders_in_block(block, chaincode)
        if wo.status in ("completed", "failed")
    ]


class _LedgerLookups:
    """A ``heddle.tcf.client.Transport`` for the worker lookups of ``TcfClient.select_worker``:
    it runs in a thread and evaluates on the bench's event loop through its Gateway client."""

    def __init__(self, client, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.client = client
        self.loop = loop
        self.timeout = timeout

    def call(self, method: str, params: dict[str, Any]) -> Any:
        from heddle.tcf.client import RpcError

        args = [method.encode(), json.dumps(params, sort_keys=True).encode()]
        try:
            raw = asyncio.run_coroutine_threadsafe(
                self.client.evaluate(args, self.timeout), self.loop
            ).result()
        except TxError as exc:
            refusal = tcf_refusal(str(exc))
            if refusal is None:
                raise
            raise RpcError(*refusal) from None
        return json.loads(raw) if raw else {}


class TcfWorkOrders(Workload):
    """Encrypted work orders in proxy mode, each from submission to a verified result.

    Warm-up: find the worker on the ledger (WorkerLookUp, WorkerRetrieve through Evaluate)
    and verify its attestation with ``TcfClient.select_worker`` under a development policy
    allowing heddle's worker measurements on the virtual platform ``platform_dir``; start
    following committed blocks; run one work order end to end.

    One operation: ``requester.build_work_order`` (a fresh session key wrapped to the
    worker's encryption key, the input encrypted, the request signed) off the event loop;
    WorkOrderSubmit as a transaction (Endorse, Submit, CommitStatus); wait until a committed
    block carries the connector's WorkOrderComplete of this work order (the contract's
    events never reach the ledger, so the workload reads the blocks, as the connector
    does); WorkOrderGetResult through Evaluate; ``requester.open_result`` (the worker's
    signature, every data hash, decryption) off the event loop; and a check that the
    output is the echo of the input. Latency: submission to verified result. Should the
    block stream miss something, a result is also asked for every ``poll`` seconds.
    """

    name = "tcf"
    chaincode = "tcf"

    def __init__(
        self,
        platform_dir: str | Path,
        *,
        measurements: list[bytes] | None = None,
        payload_size: int = 64,
        poll: float = 5.0,
        prefix: str | None = None,
    ):
        super().__init__(prefix)
        self.platform_dir = Path(platform_dir)
        self.measurements = measurements
        self.payload_size = payload_size
        self.poll = poll
        self.requester: Any = None
        self.worker: Any = None
        self.attestation: Any = None
        # WorkOrderGetResult answers "not finished yet": a poll every ``poll`` s found it still
        # queued, or the evaluating peer was behind the block stream's
        self.pending_polls = 0
        self.follower_errors = 0
        self.follower_error = ""  # the block stream's last error
        self._waiting: dict[str, asyncio.Future] = {}
        self._follower: asyncio.Task | None = None
        self._following = asyncio.Event()

    def _tcf_client(self, client, loop: asyncio.AbstractEventLoop, timeout: float):
        from heddle.tcf.client import TcfClient
        from heddle.tcf.story import allowed_measurements
        from heddle.tee import VerificationPolicy, VirtualPlatform

        policy = VerificationPolicy.development(self.measurements or allowed_measurements())
        verifiers = [VirtualPlatform(self.platform_dir).verifier()]
        return TcfClient(_LedgerLookups(client, loop, timeout), policy=policy, verifiers=verifiers)

    async def warm_up(self, client, timeout: float) -> None:
        from heddle.tcf.codes import TcfError
        from heddle.tee import TeeError

        loop = asyncio.get_running_loop()
        if self.worker is None:
            try:
                tcf = await asyncio.to_thread(self._tcf_client, client, loop, timeout)
                self.worker, self.attestation = await asyncio.to_thread(tcf.select_worker)
            except (LookupError, TeeError, TcfError, OSError, ValueError) as exc:
                raise TxError(f"no usable worker on the ledger: {exc}") from None
            self.requester = tcf.requester
        if self._follower is None:
            self._follower = asyncio.create_task(self._follow(client))
            try:
                await asyncio.wait_for(self._following.wait(), timeout)
            except TimeoutError:
                why = f" ({self.follower_error})" if self.follower_error else ""
                raise TxError(f"deliver: no block from the gateway peer{why}") from None
        await self.run_one(client, timeout)

    def notify(self, work_order_id: str, status: str) -> None:
        """A committed block finished ``work_order_id``: wake its operation."""
        waiter = self._waiting.get(work_order_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(status)

    async def _follow(self, client) -> None:
        start: int | None = None  # the newest block first: the stream is up once it arrives
        while True:
            try:
                async for block in client.blocks(start):
                    self._following.set()
                    start = block.header.number + 1
                    for work_order_id, status in finished_work_orders(block, self.chaincode):
                        self.notify(work_order_id, status)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the peer went away or the stream broke: reconnect, polls cover it
                self.follower_errors += 1
                self.follower_error = str(exc)[:300]
                await asyncio.sleep(1.0)

    async def _result(self, client, work_order_id: str, finished: asyncio.Future, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        args = [b"WorkOrderGetResult", json.dumps({"workOrderId": work_order_id}).encode()]
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TxError(f"result: no result within {timeout:g} s")
            if not finished.done():
                try:
                    await asyncio.wait_for(asyncio.shield(finished), min(self.poll, left))
                except TimeoutError:
                    pass
            try:
                return json.loads(await client.evaluate(args, timeout))
            except TxError as exc:
                refusal = tcf_refusal(str(exc))
                if refusal is None:
                    raise
                if refusal[0] not in TCF_IN_PROGRESS:  # the worker's error, as the requester sees it
                    raise TxError(f"result: TCF error {refusal[0]}: {refusal[1]}") from None
            self.pending_polls += 1
            if finished.done():  # committed at the block stream's peer, not yet at the evaluating one
                await asyncio.sleep(0.05)

    async def run_one(self, client, timeout: float) -> None:
        from heddle.tcf.codes import TcfError
        from heddle.tcf.requester import build_work_order, open_result

        if self.worker is None:
            raise TxError("the tcf workload was not warmed up (no worker selected)")
        i = self.next
        self.next += 1
        payload = tcf_payload(i, self.payload_size)
        loop = asyncio.get_running_loop()
        pending = await loop.run_in_executor(
            client.pool, build_work_order, self.worker, TCF_WORKLOAD, [payload], self.requester
        )
        finished = loop.create_future()
        self._waiting[pending.work_order_id] = finished
        try:
            await client.submit(
                [b"WorkOrderSubmit", json.dumps(pending.params, sort_keys=True).encode()], timeout
            )
            result = await self._result(client, pending.work_order_id, finished, timeout)
        finally:
            del self._waiting[pending.work_order_id]
        try:
            outputs = await loop.run_in_executor(client.pool, open_result, pending, result)
        except TcfError as exc:
            raise TxError(f"verify: TCF error {int(exc.code)}: {exc.message}") from None
        if outputs != [b"RESULT: " + payload]:
            raise TxError("verify: the decrypted output is not the echo of the input")

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            try:
                await self._follower
            except asyncio.CancelledError:
                pass
            self._follower = None

    def describe(self) -> dict[str, Any]:
        return {
            "mode": "proxy (ledger)",
            "worker_workload": TCF_WORKLOAD,
            "payload_bytes": self.payload_size,
            "worker_id": self.worker.worker_id if self.worker is not None else None,
            "measurement": self.attestation.measurement.hex() if self.attestation is not None else None,
            "receipts": False,
            "result_wait": "committed blocks (Deliver), then WorkOrderGetResult (Evaluate)",
            "pending_polls": self.pending_polls,
            "block_stream_errors": self.follower_errors,
        }


def make_workload(
    name: str, assets: int | None = None, *, tcf_platform: str | Path | None = None
) -> Workload:
    if name == "create":
        return CreateAssets()
    if name == "transfer":
        return TransferAssets(assets=assets)
    if name == "read":
        return ReadAssets(assets=assets)
    if name == "tcf":
        if tcf_platform is None:
            raise ValueError("the tcf workload needs the worker's platform folder (DATA/tcf/platform)")
        return TcfWorkOrders(tcf_platform)
    raise ValueError(f"unknown workload {name!r}; choose one of {', '.join(WORKLOADS)}")
