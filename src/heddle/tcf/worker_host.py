"""The untrusted host of TCF workers: starts the enclaves, registers, runs the queue.

* :class:`SingletonWorker`: one enclave holding the worker's keys.
* :class:`WorkerPool`: one key-management enclave (KME) and N work-order-processing
  enclaves (WPEs); each WPE joins only after the KME verified its evidence.

Both keep the worker's keys sealed in the state directory (only the same measurement
on the same platform unseals them), so a restarted worker has the same identity and
finishes the work queued for it. :func:`run_worker` registers the worker in the store
shared with the listener and processes claimed work orders until stopped.

Run it with ``heddle tcf worker start`` or ``python -m heddle.tcf.worker_host``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

from heddle.tcf import bundle, signup
from heddle.tcf.codes import ErrorCode, TcfError, WorkerStatus
from heddle.tcf.registry import WORKER, TcfRegistry
from heddle.tcf.store import SqliteStore
from heddle.tee import Enclave, EnclaveError, VirtualPlatform, expected_measurement

log = logging.getLogger("heddle.tcf.worker")

SEALED_KEYS = "worker-keys.sealed"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


async def _init_keys(enclave: Enclave, state_dir: Path) -> dict[str, str]:
    sealed_path = state_dir / SEALED_KEYS
    sealed = sealed_path.read_bytes() if sealed_path.exists() else b""
    identity = json.loads(await enclave.call("tcf.init", sealed))
    _write_atomic(sealed_path, bytes.fromhex(identity.pop("sealed")))
    return identity


class SingletonWorker:
    """A worker that is one enclave."""

    kind = "singleton"

    def __init__(self, enclave: Enclave, identity: dict[str, str], evidence: bytes) -> None:
        self.enclave = enclave
        self.identity = identity
        self.evidence = evidence

    @property
    def worker_id(self) -> str:
        return self.identity["workerId"]

    @property
    def measurement(self) -> bytes:
        return self.enclave.measurement

    @classmethod
    async def start(
        cls,
        platform: VirtualPlatform,
        state_dir: str | Path,
        *,
        debug: bool = False,
        application: str | Path | None = None,
    ) -> SingletonWorker:
        state = Path(state_dir)
        state.mkdir(parents=True, exist_ok=True)
        app = application or bundle.write("worker", state / "enclave")
        enclave = await Enclave.start(app, platform=platform, debug=debug)
        try:
            identity = await _init_keys(enclave, state)
            evidence = await enclave.evidence(signup.signup_nonce(identity["workerId"]))
        except BaseException:
            await enclave.stop()
            raise
        return cls(enclave, identity, evidence.to_bytes())

    def register_params(self, **kw: Any) -> dict[str, Any]:
        return signup.register_params(self.identity, self.evidence, **kw)

    async def process(self, params: dict[str, Any]) -> dict[str, Any]:
        """{result | error, receipt} for one work order."""
        return json.loads(await self.enclave.call("tcf.process", json.dumps(params).encode()))

    async def stop(self) -> None:
        await self.enclave.stop()


class WorkerPool:
    """A KME holding the worker identity and WPEs that it attested and endorsed."""

    kind = "pool"

    def __init__(
        self, kme: Enclave, wpes: list[tuple[Enclave, str]], identity: dict[str, str], evidence: bytes
    ):
        self.kme = kme
        self.wpes = wpes  # (enclave, wpe id)
        self.identity = identity
        self.evidence = evidence
        self._next = itertools.cycle(range(len(wpes)))

    @property
    def worker_id(self) -> str:
        return self.identity["workerId"]

    @property
    def measurement(self) -> bytes:
        return self.kme.measurement

    @staticmethod
    def applications(state_dir: str | Path) -> tuple[Path, Path]:
        """Write the WPE bundle, then the KME bundle that admits exactly that WPE measurement."""
        d = Path(state_dir) / "enclave"
        wpe_app = bundle.write("wpe", d)
        kme_app = bundle.write("kme", d, {"wpe_measurements": [expected_measurement(wpe_app).hex()]})
        return kme_app, wpe_app

    @classmethod
    async def start(
        cls,
        platform: VirtualPlatform,
        state_dir: str | Path,
        *,
        wpes: int = 2,
        debug: bool = False,
        wpe_application: str | Path | None = None,
    ) -> WorkerPool:
        state = Path(state_dir)
        state.mkdir(parents=True, exist_ok=True)
        kme_app, wpe_app = cls.applications(state)
        kme = await Enclave.start(kme_app, platform=platform, debug=debug)
        started: list[Enclave] = [kme]
        try:
            identity = await _init_keys(kme, state)
            evidence = await kme.evidence(signup.signup_nonce(identity["workerId"]))
            members = []
            for _ in range(wpes):
                wpe = await Enclave.start(wpe_application or wpe_app, platform=platform, debug=debug)
                started.append(wpe)
                wpe_id = await cls.join(kme, wpe)
                members.append((wpe, wpe_id))
        except BaseException:
            for enclave in started:
                await enclave.stop()
            raise
        return cls(kme, members, identity, evidence.to_bytes())

    @staticmethod
    async def join(kme: Enclave, wpe: Enclave) -> str:
        """Have the KME attest ``wpe``; raises EnclaveError if the KME refuses it."""
        nonce = await kme.call("kme.nonce")
        evidence = await wpe.evidence(nonce)
        body = json.dumps({"nonce": nonce.hex(), "evidence": evidence.to_bytes().hex()}).encode()
        endorsement = json.loads(await kme.call("kme.register_wpe", body))
        await wpe.call("wpe.endorse", json.dumps(endorsement).encode())
        return str(endorsement["wpeId"])

    def register_params(self, **kw: Any) -> dict[str, Any]:
        return signup.register_params(self.identity, self.evidence, **kw)

    async def process(self, params: dict[str, Any]) -> dict[str, Any]:
        wpe, wpe_id = self.wpes[next(self._next)]
        wo_id = params.get("workOrderId")
        try:
            pre = json.loads(
                await self.kme.call(
                    "kme.preprocess", json.dumps({"wpeId": wpe_id, "params": params}).encode()
                )
            )
            if "error" in pre:
                outcome = pre
            else:
                body = json.dumps({"params": params, "keys": pre["keys"]}).encode()
                outcome = json.loads(await wpe.call("wpe.process", body))
        except EnclaveError:
            outcome = {"error": {"code": int(ErrorCode.INVALID_PARAMETER), "message": "malformed work order"}}
        receipt = json.loads(
            await self.kme.call("kme.complete", json.dumps({**outcome, "workOrderId": wo_id}).encode())
        )
        return {**outcome, "receipt": receipt}

    async def stop(self) -> None:
        for wpe, _ in self.wpes:
            await wpe.stop()
        await self.kme.stop()


def register(store: SqliteStore, worker: SingletonWorker | WorkerPool, **kw: Any) -> None:
    """Register the worker in the shared store, or refresh its proof data after a restart."""
    registry = TcfRegistry(store)
    params = worker.register_params(**kw)
    with store.transaction():
        if store.get(WORKER, worker.worker_id) is None:
            registry.worker_register(params)
        else:
            registry.worker_update({"workerId": worker.worker_id, "details": params["details"]})
            registry.worker_set_status({"workerId": worker.worker_id, "status": int(WorkerStatus.ACTIVE)})


async def process_one(store: SqliteStore, worker: SingletonWorker | WorkerPool, lease: float = 300.0) -> bool:
    """Claim and finish one queued work order; False when there was none."""
    registry = TcfRegistry(store)
    wo_id = await asyncio.to_thread(store.claim, worker.worker_id, lease)
    if wo_id is None:
        return False

    def start() -> dict[str, Any]:
        with store.transaction():
            registry.mark_processing(wo_id)
            return registry.work_order(wo_id)["params"]

    params = await asyncio.to_thread(start)
    outcome = await worker.process(params)
    receipt = outcome.pop("receipt", None)

    def finish() -> None:
        with store.transaction():
            try:
                registry.complete_work_order(wo_id, outcome, receipt)
            except TcfError as exc:
                log.error("work order %s could not be completed: %s", wo_id[:16], exc.message)
            store.finish(wo_id)

    await asyncio.to_thread(finish)
    log.info("work order %s %s", wo_id[:16], "completed" if "result" in outcome else "failed")
    return True


async def run_worker(
    store_dir: str | Path,
    worker: SingletonWorker | WorkerPool,
    *,
    stop: asyncio.Event,
    poll: float = 0.1,
) -> None:
    store = SqliteStore(store_dir)
    await asyncio.to_thread(register, store, worker)
    released = await asyncio.to_thread(store.release_claims, worker.worker_id)
    if released:
        log.info("requeued %d work orders an earlier run had claimed", released)
    print(f"TCF {worker.kind} worker {worker.worker_id} ready", flush=True)
    while not stop.is_set():
        if not await process_one(store, worker):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll)


async def serve(data_dir: str, platform_dir: str, *, pool: int = 0, debug: bool = False) -> None:
    platform = VirtualPlatform.ensure(platform_dir)
    state = Path(data_dir) / ("pool" if pool else "worker")
    worker: SingletonWorker | WorkerPool
    if pool:
        worker = await WorkerPool.start(platform, state, wpes=pool, debug=debug)
    else:
        worker = await SingletonWorker.start(platform, state, debug=debug)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await run_worker(data_dir, worker, stop=stop)
    finally:
        await worker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m heddle.tcf.worker_host")
    parser.add_argument("--data", default="tcf-data")
    parser.add_argument("--platform", default="tcf-platform")
    parser.add_argument("--pool", type=int, default=0, help="run a KME and this many WPEs")
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.data, args.platform, pool=args.pool, debug=args.debug))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
