"""ChaincodeSupport: run a transaction on a chaincode, connecting or launching it first.

One endpoint per package; an endpoint that broke or a process that died is
replaced on the next execute. Chaincode-to-chaincode calls (INVOKE_CHAINCODE) find
their target through ``resolver`` and run in the caller's transaction, on its simulator.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fabric_protos.peer import chaincode_pb2, proposal_pb2, proposal_response_pb2

from heddle.chaincode.runtime.connection import ChaincodeEndpoint
from heddle.chaincode.runtime.handler import InvokeRequested
from heddle.chaincode.runtime.launcher import ChaincodeProcess
from heddle.chaincode.runtime.target import (
    ChaincodeError,
    ChaincodeResult,
    ChaincodeTarget,
    ChaincodeUnresponsive,
)

log = logging.getLogger(__name__)

# (channel_id, name) -> target, or None when the channel has no such chaincode; may be async
Resolver = Callable[[str, str], "ChaincodeTarget | None | Awaitable[ChaincodeTarget | None]"]


class ChaincodeSupport:
    def __init__(
        self,
        *,
        execute_timeout: float = 30.0,
        launch_timeout: float = 30.0,
        resolver: Resolver | None = None,
        work_dir: Path | str | None = None,
        python: str | None = None,
    ):
        """``work_dir`` holds local chaincode logs (a temporary folder when None);
        ``python`` is the interpreter that runs Python packages (default: the peer's)."""
        self.execute_timeout = execute_timeout
        self.launch_timeout = launch_timeout
        self.resolver = resolver
        self._tmp = None if work_dir is not None else tempfile.TemporaryDirectory(prefix="heddle-cc-")
        self.work_dir = Path(work_dir) if work_dir is not None else Path(self._tmp.name)
        self._python = python
        self._endpoints: dict[str, ChaincodeEndpoint] = {}
        self._processes: dict[str, ChaincodeProcess] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._watchers: set[asyncio.Task] = set()

    async def execute(
        self,
        channel_id: str,
        txid: str,
        target: ChaincodeTarget,
        input: chaincode_pb2.ChaincodeInput,
        simulator: Any,
        signed_proposal: proposal_pb2.SignedProposal | None = None,
        is_init: bool = False,
        timeout: float | None = None,
    ) -> ChaincodeResult:
        """Run one transaction; raises ChaincodeError when the chaincode cannot answer
        (unreachable, died, timed out, or reported ERROR). A chaincode's own error is a
        Response with status >= 400, not an exception."""
        endpoint = await self._endpoint(target)
        try:
            return await endpoint.execute(
                channel_id,
                txid,
                input,
                simulator,
                signed_proposal,
                is_init,
                self.execute_timeout if timeout is None else timeout,
            )
        except ChaincodeUnresponsive as exc:
            if target.kind != "process":
                raise
            # a stuck local process is replaced: the next execute launches a fresh one
            await self._restart(target, endpoint)
            raise ChaincodeError(f"{exc}; it was stopped and will be restarted") from None

    async def stop(self) -> None:
        """Close every stream and stop the processes this peer started."""
        endpoints, self._endpoints = self._endpoints, {}
        for endpoint in endpoints.values():
            await endpoint.close()
        processes, self._processes = self._processes, {}
        for process in processes.values():
            await process.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def running(self) -> dict[str, ChaincodeProcess]:
        """Local chaincode processes by package id (for operations and tests)."""
        return dict(self._processes)

    # --- internals ---------------------------------------------------------------------

    async def _endpoint(self, target: ChaincodeTarget) -> ChaincodeEndpoint:
        key = target.key
        endpoint = self._endpoints.get(key)
        if endpoint is not None and not endpoint.closed:
            return endpoint
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            endpoint = self._endpoints.get(key)
            if endpoint is not None and not endpoint.closed:
                return endpoint
            endpoint = await self._open(target)
            self._endpoints[key] = endpoint
            return endpoint

    async def _open(self, target: ChaincodeTarget) -> ChaincodeEndpoint:
        if target.kind == "ccaas":
            endpoint = ChaincodeEndpoint(target, target.address, on_invoke=self._invoke)
            await endpoint.connect(target.dial_timeout)
            return endpoint
        if target.kind != "process":
            raise ChaincodeError(f"chaincode {target.name}: unknown target kind {target.kind!r}")
        old = self._processes.pop(target.key, None)
        if old is not None:
            await old.stop()
        kwargs = {"python": self._python} if self._python else {}
        process = ChaincodeProcess(target, self.work_dir / "logs", **kwargs)
        address = await process.start(self.launch_timeout)
        self._processes[target.key] = process
        endpoint = ChaincodeEndpoint(
            target, address, on_invoke=self._invoke, loss_detail=lambda: _exit_detail(process)
        )
        try:
            await endpoint.connect(self.launch_timeout)
        except ChaincodeError:
            await process.stop()
            raise
        watcher = asyncio.create_task(_watch_process(process, endpoint))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return endpoint

    async def _restart(self, target: ChaincodeTarget, endpoint: ChaincodeEndpoint) -> None:
        log.warning("chaincode %s is not responding; stopping its process", target.name)
        process = self._processes.pop(target.key, None)
        if process is not None:
            await process.stop(grace=0.5)
        await endpoint.abort("not responding")
        if self._endpoints.get(target.key) is endpoint:
            del self._endpoints[target.key]

    async def _invoke(self, request: InvokeRequested) -> proposal_response_pb2.Response:
        if self.resolver is None:
            name = request.chaincode_name
            raise ChaincodeError(f"chaincode {name} cannot be called: no resolver is configured")
        target = self.resolver(request.channel_id, request.chaincode_name)
        if inspect.isawaitable(target):
            target = await target
        if target is None:
            raise ChaincodeError(
                f"chaincode {request.chaincode_name} is not defined on channel {request.channel_id}"
            )
        result = await self.execute(
            request.channel_id,
            request.txid,
            target,
            request.input,
            request.simulator,
            request.signed_proposal,
        )
        return result.response


async def _exit_detail(process: ChaincodeProcess) -> str:
    code = await process.exit_code(wait=2.0)
    return "" if code is None else f" (process exited with code {code})"


async def _watch_process(process: ChaincodeProcess, endpoint: ChaincodeEndpoint) -> None:
    """A process that dies takes its stream with it at once, whatever the socket says."""
    if process.proc is None:
        return
    await process.proc.wait()
    await endpoint.abort(f"process exited with code {process.proc.returncode}")
