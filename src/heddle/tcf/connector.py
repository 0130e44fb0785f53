"""Proxy mode, worker side: follow the ledger, hand work orders to workers, write results back.

The connector runs next to a worker host and shares its data directory (the
``SqliteStore`` of direct mode). For every committed block it reads the VALID
transactions of the ``tcf`` chaincode and the work orders they wrote
(``work_orders_in_block``); a pending work order for one of its workers is submitted
to the local registry, which re-checks the requester's signature and queues it for the
worker host. When the worker host has finished one, the connector sends the signed
outcome and receipt update to the ledger (``WorkOrderComplete``) as the worker's
registered ledger identity.

Why blocks and not chaincode events: the contract calls ``set_event`` for
workOrderSubmitted and workOrderCompleted, but fabric-chaincode-python 2.5.4 never
attaches those events to its COMPLETED message, so no event reaches the ledger. The
committed write set carries the same facts, and reading it needs no shim support.

Exactly once: the checkpoint (last block handled) and the inbox (work orders taken
from the ledger, each ``queued`` until its completion is on the ledger, then
``forwarded``) live in the same SQLite file and change in one transaction per block.
After a crash the connector resumes at the block after the checkpoint and forwards
every ``queued`` work order whose result is ready. A completion that did reach the
ledger before the crash is refused by the contract ("already finished") and counted as
done, and two racing completions of one work order cannot both commit (MVCC), so every
work order has exactly one VALID completion transaction.

Run it with ``heddle tcf connector start`` or ``python -m heddle.tcf.connector``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabric_protos.common import common_pb2
from fabric_protos.peer import transaction_pb2

from heddle.client import CommitError, GatewayError
from heddle.protocol import parse_endorser_transaction, parse_envelope, transactions_filter
from heddle.tcf.client import RpcError
from heddle.tcf.codes import ErrorCode, TcfError
from heddle.tcf.proxy import CHAINCODE, LedgerTransport
from heddle.tcf.registry import WORK_ORDER, WORKER, TcfRegistry
from heddle.tcf.store import SqliteStore

log = logging.getLogger("heddle.tcf.connector")
# completions sent at once (each a transaction that waits for its commit)
COMPLETIONS_IN_FLIGHT = 16

_SCHEMA = """
CREATE TABLE IF NOT EXISTS connector_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 0), block INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS connector_inbox (
    work_order_id TEXT PRIMARY KEY,
    worker_id TEXT NOT NULL,
    block INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued'
);
"""
_WO_PREFIX = f"{WORK_ORDER}/"


@dataclass(frozen=True)
class LedgerWorkOrder:
    """A work order as a VALID transaction wrote it to the world state."""

    work_order_id: str
    block: int
    transaction_id: str
    doc: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.doc.get("status", ""))


def work_orders_in_block(block: common_pb2.Block, chaincode: str = CHAINCODE) -> Iterator[LedgerWorkOrder]:
    """The work-order writes of ``chaincode`` in the VALID transactions of ``block``."""
    flt = transactions_filter(block)
    for n, raw in enumerate(block.data.data):
        if n >= len(flt) or flt[n] != transaction_pb2.VALID:
            continue
        try:
            env = parse_envelope(raw)
            if env.header_type != common_pb2.ENDORSER_TRANSACTION:
                continue
            actions = parse_endorser_transaction(env.payload.data)
        except ValueError:
            continue
        for action in actions:
            for ns in action.rwsets:
                if ns.namespace != chaincode:
                    continue
                for write in ns.kv.writes:
                    if write.is_delete or not write.key.startswith(_WO_PREFIX):
                        continue
                    try:
                        doc = json.loads(write.value)
                    except ValueError:
                        continue
                    yield LedgerWorkOrder(
                        write.key[len(_WO_PREFIX) :], block.header.number, env.channel_header.tx_id, doc
                    )


def chain_height(ledger: LedgerTransport) -> int:
    """The channel's block height at the ledger user's peer (qscc GetChainInfo)."""
    from fabric_protos.common import ledger_pb2

    network = ledger.contract.network
    raw = network.get_contract("qscc").evaluate_transaction("GetChainInfo", network.name)
    return int(ledger_pb2.BlockchainInfo.FromString(raw).height)


def ledger_blocks(ledger: LedgerTransport, start: int = 0) -> Iterator[common_pb2.Block]:
    """The committed blocks from ``start`` up to the current height."""
    height = chain_height(ledger)
    if start >= height:
        return
    events = ledger.contract.network.get_block_events(start_block=start)
    try:
        for block in events:
            yield block
            if block.header.number + 1 >= height:
                break
    finally:
        events.close()


def work_order_history(
    ledger: LedgerTransport, chaincode: str = CHAINCODE
) -> dict[str, list[LedgerWorkOrder]]:
    """Every VALID work-order write on the ledger, by work order id, in commit order."""
    history: dict[str, list[LedgerWorkOrder]] = {}
    for block in ledger_blocks(ledger):
        for wo in work_orders_in_block(block, chaincode):
            history.setdefault(wo.work_order_id, []).append(wo)
    return history


class Checkpoint:
    """The connector's durable state in the worker's SQLite store."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        store._conn().executescript(_SCHEMA)

    def last_block(self) -> int:
        row = self.store._conn().execute("SELECT block FROM connector_checkpoint WHERE id=0").fetchone()
        return int(row[0]) if row else -1

    def set_last_block(self, number: int) -> None:
        self.store._conn().execute(
            "INSERT INTO connector_checkpoint (id, block) VALUES (0, ?) "
            "ON CONFLICT (id) DO UPDATE SET block=excluded.block",
            (number,),
        )

    def state(self, work_order_id: str) -> str | None:
        row = (
            self.store._conn()
            .execute("SELECT state FROM connector_inbox WHERE work_order_id=?", (work_order_id,))
            .fetchone()
        )
        return str(row[0]) if row else None

    def add(self, work_order_id: str, worker_id: str, block: int, state: str = "queued") -> None:
        self.store._conn().execute(
            "INSERT OR IGNORE INTO connector_inbox (work_order_id, worker_id, block, state) "
            "VALUES (?, ?, ?, ?)",
            (work_order_id, worker_id, block, state),
        )

    def mark(self, work_order_id: str, state: str) -> None:
        self.store._conn().execute(
            "UPDATE connector_inbox SET state=? WHERE work_order_id=?", (state, work_order_id)
        )

    def queued(self) -> list[str]:
        rows = self.store._conn().execute(
            "SELECT work_order_id FROM connector_inbox WHERE state='queued' ORDER BY block, work_order_id"
        )
        return [str(r[0]) for r in rows.fetchall()]

    def counts(self) -> dict[str, int]:
        rows = self.store._conn().execute("SELECT state, COUNT(*) FROM connector_inbox GROUP BY state")
        return {str(state): int(n) for state, n in rows.fetchall()}


class Connector:
    """Follows one peer's blocks for the workers registered in ``store``."""

    def __init__(self, store: SqliteStore, ledger: LedgerTransport, *, chaincode: str = CHAINCODE) -> None:
        self.store = store
        self.ledger = ledger
        self.chaincode = chaincode
        self.registry = TcfRegistry(store)
        self.checkpoint = Checkpoint(store)
        self.stop = threading.Event()
        self._events: Any = None
        self._retry_at: dict[str, float] = {}

    # --- workers ---------------------------------------------------------------------

    def local_workers(self) -> list[str]:
        return [worker_id for worker_id, _ in self.store.scan(WORKER)]

    def register_workers(self) -> list[str]:
        """Register the local workers on the ledger under this connector's ledger identity."""
        done = []
        for worker_id, doc in self.store.scan(WORKER):
            try:
                self.ledger.call("WorkerRetrieve", {"workerId": worker_id})
            except TcfError:
                params = {"workerId": worker_id, **{k: doc[k] for k in ("workerType", "applicationTypeId")}}
                params.update(organizationId=doc.get("organizationId") or "00", details=doc["details"])
                self.ledger.call("WorkerRegister", params)
                log.info("registered worker %s on the ledger", worker_id[:16])
            owner = self.ledger.worker_ledger_identity(worker_id)
            if owner != self.ledger.identity():
                log.error(
                    "worker %s is registered on the ledger by another identity (%s); the contract will "
                    "refuse this connector's completions for it",
                    worker_id[:16],
                    owner.get("mspid"),
                )
            done.append(worker_id)
        return done

    # --- ledger -> workers --------------------------------------------------------------

    def handle_block(self, block: common_pb2.Block) -> int:
        """Queue this block's new work orders for local workers; advance the checkpoint. Atomic."""
        ours = set(self.local_workers())
        taken = 0
        with self.store.transaction():
            for wo in work_orders_in_block(block, self.chaincode):
                worker_id = str(wo.doc.get("workerId", ""))
                if worker_id not in ours:
                    continue
                known = self.checkpoint.state(wo.work_order_id)
                if wo.status in ("completed", "failed"):
                    if known == "queued":  # our completion committed; we may have crashed before noting it
                        self.checkpoint.mark(wo.work_order_id, "forwarded")
                    continue
                if wo.status != "pending" or known is not None:
                    continue
                try:
                    self.registry.work_order_submit(wo.doc["params"])
                except TcfError as exc:
                    log.error("work order %s from block %d refused: %s", wo.work_order_id[:16], wo.block, exc)
                    self.checkpoint.add(wo.work_order_id, worker_id, wo.block, "refused")
                    continue
                self.checkpoint.add(wo.work_order_id, worker_id, wo.block)
                taken += 1
                log.info("work order %s from block %d queued", wo.work_order_id[:16], wo.block)
            self.checkpoint.set_last_block(block.header.number)
        return taken

    def follow(self) -> None:
        """Follow blocks from the checkpoint until stopped, reconnecting after errors."""
        while not self.stop.is_set():
            start = self.checkpoint.last_block() + 1
            try:
                self._events = self.ledger.contract.network.get_block_events(start_block=start)
                for block in self._events:
                    self.handle_block(block)
                    if self.stop.is_set():
                        break
            except Exception as exc:  # a peer restart or a cancelled stream
                if self.stop.is_set():
                    break
                log.warning("block stream from %d ended (%s); reconnecting", start, exc)
                self.stop.wait(1.0)
            finally:
                if self._events is not None:
                    with contextlib.suppress(Exception):
                        self._events.close()

    # --- workers -> ledger ----------------------------------------------------------------

    def _outcome(self, work_order_id: str) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        doc = self.store.get(WORK_ORDER, work_order_id)
        if doc is None or doc.get("status") not in ("completed", "failed"):
            return None
        outcome = {"result": doc["result"]} if doc["status"] == "completed" else {"error": doc["error"]}
        return outcome, doc.get("pendingReceiptUpdate")

    def forward_ready(self) -> int:
        """Write every finished, not yet forwarded work order back to the ledger. Up to
        ``COMPLETIONS_IN_FLIGHT`` completions go at once, each its own transaction (they
        write different keys), so a block carries many rather than one per block interval.
        Returns how many this call completed."""
        ready: list[tuple[str, Any]] = []
        for wo_id in self.checkpoint.queued():
            if self._retry_at.get(wo_id, 0.0) > time.monotonic():
                continue
            outcome = self._outcome(wo_id)
            if outcome is not None:
                ready.append((wo_id, outcome))
        sent = 0
        for start in range(0, len(ready), COMPLETIONS_IN_FLIGHT):
            if self.stop.is_set():
                break
            part = ready[start : start + COMPLETIONS_IN_FLIGHT]
            if len(part) == 1:
                results = [self._send(*part[0])]
            else:
                with ThreadPoolExecutor(len(part), thread_name_prefix="tcf-complete") as pool:
                    results = list(pool.map(lambda item: self._send(*item), part))
            # the checkpoint is written here, on the connector's own thread
            for (wo_id, _), (state, fresh) in zip(part, results, strict=True):
                if state is None:
                    continue
                with self.store.transaction():
                    self.checkpoint.mark(wo_id, state)
                sent += fresh
        return sent

    def _send(self, wo_id: str, ready: Any) -> tuple[str | None, int]:
        """Send one completion: (new inbox state, 1 if this call completed it), or (None, 0)
        to retry later."""
        try:
            self.ledger.complete(wo_id, *ready)
        except RpcError as exc:
            if exc.code == ErrorCode.INVALID_PARAMETER and "already finished" in exc.message:
                log.info("work order %s was already completed on the ledger", wo_id[:16])
                return "forwarded", 0  # completed before a restart: done, exactly once
            if exc.code in (ErrorCode.ACCESS_DENIED, ErrorCode.INVALID_SIGNATURE):
                log.error("the ledger refused the completion of %s: %s", wo_id[:16], exc)
                return "rejected", 0  # retrying cannot help
            log.warning("completion of %s refused (%s); will retry", wo_id[:16], exc)
            self._retry_at[wo_id] = time.monotonic() + 2.0
            return None, 0
        except (GatewayError, CommitError) as exc:
            log.warning("completion of %s not committed (%s); will retry", wo_id[:16], exc)
            self._retry_at[wo_id] = time.monotonic() + 1.0
            return None, 0
        log.info("work order %s completed on the ledger", wo_id[:16])
        return "forwarded", 1

    def run(self, *, poll: float = 0.1) -> None:
        follower = threading.Thread(target=self.follow, name="tcf-connector-blocks", daemon=True)
        follower.start()
        try:
            while not self.stop.is_set():
                try:
                    self.forward_ready()
                except Exception:
                    log.exception("forwarding failed; retrying")
                self.stop.wait(poll)
        finally:
            self.stop.set()
            if self._events is not None:
                with contextlib.suppress(Exception):
                    self._events.close()
            follower.join(5)


def wait_for_workers(store: SqliteStore, timeout: float, stop: threading.Event) -> list[str]:
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        workers = [w for w, _ in store.scan(WORKER)]
        if workers:
            return workers
        if time.monotonic() > deadline:
            raise TimeoutError(f"no worker registered itself in {store.path} within {timeout:.0f} s")
        stop.wait(0.2)
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m heddle.tcf.connector")
    parser.add_argument("--network", required=True, help="the network's data directory (network.json)")
    parser.add_argument("--data", default="tcf-data", help="the worker host's data directory")
    parser.add_argument("--org", type=int, default=1, help="the org whose peer and user to use (1-based)")
    parser.add_argument("--user", default="User1", help="the ledger identity that acts for the workers")
    parser.add_argument("--chaincode", default=CHAINCODE)
    parser.add_argument("--wait-worker", type=float, default=120.0, help="seconds to wait for a worker")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = SqliteStore(args.data)
    ledger = LedgerTransport.connect(
        Path(args.network), org=args.org - 1, user=args.user, chaincode=args.chaincode
    )
    connector = Connector(store, ledger, chaincode=args.chaincode)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: connector.stop.set())
    try:
        wait_for_workers(store, args.wait_worker, connector.stop)
        workers = connector.register_workers()
        print(
            f"TCF connector ready: workers {', '.join(w[:16] for w in workers)} on chaincode "
            f"{args.chaincode!r}, from block {connector.checkpoint.last_block() + 1}",
            flush=True,
        )
        connector.run()
    finally:
        ledger.close()
    return 0


__all__ = [
    "Checkpoint",
    "Connector",
    "LedgerWorkOrder",
    "chain_height",
    "ledger_blocks",
    "work_order_history",
    "work_orders_in_block",
]

if __name__ == "__main__":
    raise SystemExit(main())
