"""The generic TCF client: find a worker, attest it, submit, wait, verify, decrypt, receipt.

``TcfClient`` runs the requester's flow over a ``Transport``. ``DirectTransport`` talks
JSON-RPC to a listener (direct mode); a proxy-mode transport (chaincode calls plus
chaincode events) plugs in behind the same ``call(method, params)``.

Every step that trusts the worker is checked here: its proof data must verify under
the client's policy and bind the registered keys before anything is encrypted to it;
its result must carry a valid worker signature (or a KME-endorsed WPE's) and matching
data hashes; its receipt update must be signed by the worker's key.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import count
from typing import Any, Protocol

from heddle.tcf import crypto, requester
from heddle.tcf.codes import ErrorCode, ReceiptStatus, TcfError, WorkerType
from heddle.tcf.registry import LAST_UPDATE
from heddle.tcf.requester import PendingWorkOrder, Requester, SealedItem
from heddle.tcf.signup import WorkerInfo, verify_signup
from heddle.tee import AttestationResult, EvidenceVerifier, VerificationPolicy


class Transport(Protocol):
    def call(self, method: str, params: dict[str, Any]) -> Any:
        """Return the result, or raise ``TcfError`` carrying the error's code and message."""
        ...


class RpcError(TcfError):
    """An error response; ``data`` is the response's error data (e.g. workOrderId)."""

    def __init__(self, code: int, message: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(code, message)
        self.data = dict(data or {})


class DirectTransport:
    """JSON-RPC 2.0 over HTTP to a listener (default http://localhost:1947/)."""

    def __init__(self, url: str = "http://localhost:1947/", *, timeout: float = 30.0) -> None:
        self.url = url if "://" in url else f"http://{url}/"
        self.timeout = timeout
        self._ids = count(1)

    def call(self, method: str, params: dict[str, Any]) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params})
        request = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                reply = json.loads(response.read())
        except (urllib.error.URLError, OSError) as exc:
            raise ConnectionError(f"cannot reach the TCF listener at {self.url}: {exc}") from None
        if "error" in reply:
            err = reply["error"]
            raise RpcError(int(err.get("code", 1)), str(err.get("message", "")), err.get("data"))
        return reply.get("result")


@dataclass
class WorkOrderOutcome:
    """A finished work order as the requester sees it, verified and decrypted."""

    work_order_id: str
    outputs: list[bytes]
    result: dict[str, Any]
    worker: WorkerInfo
    attestation: AttestationResult
    receipt: dict[str, Any] = field(default_factory=dict)
    receipt_update: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        return "\n".join(o.decode("utf-8", errors="replace") for o in self.outputs)


class TcfClient:
    """A requester: its key, its verification policy, and a transport."""

    def __init__(
        self,
        transport: Transport,
        *,
        policy: VerificationPolicy,
        verifiers: Iterable[EvidenceVerifier] | Mapping[str, EvidenceVerifier],
        identity: Requester | None = None,
    ) -> None:
        self.transport = transport
        self.policy = policy
        self.verifiers = verifiers if isinstance(verifiers, Mapping) else list(verifiers)
        self.requester = identity or Requester()

    # --- workers ---------------------------------------------------------------------

    def lookup_workers(self, worker_type: int = int(WorkerType.TEE_SGX)) -> list[str]:
        page = self.transport.call("WorkerLookUp", {"workerType": worker_type})
        ids = list(page["ids"])
        while page.get("lookupTag"):
            page = self.transport.call(
                "WorkerLookUpNext", {"workerType": worker_type, "lookUpTag": page["lookupTag"]}
            )
            ids.extend(page["ids"])
        return ids

    def retrieve_worker(self, worker_id: str) -> WorkerInfo:
        return WorkerInfo.from_retrieve(
            worker_id, self.transport.call("WorkerRetrieve", {"workerId": worker_id})
        )

    def attest(self, worker: WorkerInfo) -> AttestationResult:
        """Verify the worker's proof data under this client's policy (raises AttestationError)."""
        return verify_signup(worker, policy=self.policy, verifiers=self.verifiers)

    def select_worker(self, worker_id: str | None = None) -> tuple[WorkerInfo, AttestationResult]:
        """The given worker, or the first registered worker whose attestation verifies."""
        from heddle.tee import AttestationError

        candidates = [worker_id] if worker_id else self.lookup_workers()
        if not candidates:
            raise LookupError("no workers are registered")
        last: Exception | None = None
        for wid in candidates:
            worker = self.retrieve_worker(wid)
            try:
                return worker, self.attest(worker)
            except AttestationError as exc:
                last = exc
                if worker_id:
                    raise
        raise LookupError(f"no registered worker satisfies the policy ({last})")

    # --- work orders -------------------------------------------------------------------

    def submit(
        self,
        worker: WorkerInfo,
        workload: str,
        inputs: list[bytes | SealedItem],
        *,
        create_receipt: bool = True,
    ) -> PendingWorkOrder:
        pending = requester.build_work_order(worker, workload, inputs, self.requester)
        try:
            self.transport.call("WorkOrderSubmit", pending.params)
        except TcfError as exc:
            if exc.code != ErrorCode.PENDING:  # 5: accepted and queued (asynchronous submit)
                raise
        if create_receipt:
            self.transport.call("WorkOrderReceiptCreate", requester.receipt_create(pending, self.requester))
        return pending

    def wait_result(
        self, pending: PendingWorkOrder, *, timeout: float = 60.0, poll: float = 0.1
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.transport.call("WorkOrderGetResult", {"workOrderId": pending.work_order_id})
            except TcfError as exc:
                if exc.code not in (ErrorCode.PENDING, ErrorCode.SCHEDULED, ErrorCode.PROCESSING):
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError(f"work order {pending.work_order_id} did not finish within {timeout} s")
            time.sleep(poll)

    def receipt(self, pending: PendingWorkOrder) -> tuple[dict[str, Any], dict[str, Any]]:
        """The receipt and its latest update, whose signature must be the worker's."""
        receipt = self.transport.call("WorkOrderReceiptRetrieve", {"workOrderId": pending.work_order_id})
        try:
            update = self.transport.call(
                "WorkOrderReceiptUpdateRetrieve",
                {"workOrderId": pending.work_order_id, "updateIndex": LAST_UPDATE},
            )
        except TcfError:
            return receipt, {}
        if update.get("receiptVerificationKey") != pending.worker.verification_key:
            raise TcfError(ErrorCode.INVALID_SIGNATURE, "the receipt update is not signed by the worker")
        try:
            crypto.verify_hash(
                update["receiptVerificationKey"],
                crypto.receipt_update_hash(update),
                update["updateSignature"],
            )
        except crypto.CryptoError:
            raise TcfError(
                ErrorCode.INVALID_SIGNATURE, "the receipt update signature does not verify"
            ) from None
        return receipt, update

    def run(
        self,
        workload: str,
        inputs: list[bytes | SealedItem],
        *,
        worker_id: str | None = None,
        worker: tuple[WorkerInfo, AttestationResult] | None = None,
        timeout: float = 60.0,
    ) -> WorkOrderOutcome:
        """The whole flow: select and attest, submit, receipt, wait, verify, decrypt."""
        info, attestation = worker or self.select_worker(worker_id)
        pending = self.submit(info, workload, inputs)
        result = self.wait_result(pending, timeout=timeout)
        outputs = requester.open_result(pending, result)
        receipt, update = self.receipt(pending)
        if update and update.get("updateType") == ReceiptStatus.COMPLETED:
            if update.get("updateData") != crypto.response_hash(result).hex():
                raise TcfError(ErrorCode.INVALID_SIGNATURE, "the receipt does not record this result")
        return WorkOrderOutcome(pending.work_order_id, outputs, result, info, attestation, receipt, update)


__all__ = ["DirectTransport", "RpcError", "TcfClient", "Transport", "WorkOrderOutcome"]
