"""The TCF registry rules: workers, work orders and receipts, over any ``Records`` store.

``TcfRegistry`` answers every TCF API method (params in, result out, ``TcfError`` for a
refusal) and holds the rules that matter for safety, so the JSON-RPC listener and a
ledger chaincode enforce the same ones:

* a worker id is the hex SHA-256 of the worker's verification key, and an update may
  not change the worker's keys;
* a work order is accepted only for an active worker, with a valid requester
  signature over the request hash, once per workOrderId;
* only the worker a work order was sent to completes it: ``complete_work_order``
  accepts a result only if it verifies under that worker's registered key (or a WPE
  key the worker endorsed), and a receipt update of type completed/failed/processed
  only if it is signed with that worker's key;
* a receipt is created by the work order's requester (its key signed the request).
"""

from __future__ import annotations

from typing import Any

from heddle.tcf import crypto, processor, schema
from heddle.tcf.codes import ErrorCode, ReceiptStatus, TcfError, WorkerStatus, invalid
from heddle.tcf.store import Records

PAGE_SIZE = 100
LAST_UPDATE = 0xFFFFFFFF
WORKER_ONLY_UPDATES = frozenset({ReceiptStatus.COMPLETED, ReceiptStatus.PROCESSED, ReceiptStatus.FAILED})

WORKER = "worker"
WORK_ORDER = "workorder"
RECEIPT = "receipt"

PENDING_MESSAGE = "Work order is computing. Please query for WorkOrderGetResult to view the result"


def _not_found(what: str) -> TcfError:
    return TcfError(ErrorCode.INVALID_PARAMETER, f"{what} not found")


def _page(ids: list[str], after: str) -> dict[str, Any]:
    rest = [i for i in ids if i > after] if after else ids
    page = rest[:PAGE_SIZE]
    more = len(rest) > PAGE_SIZE
    return {"totalCount": len(ids), "lookupTag": page[-1] if more else "", "ids": page}


class TcfRegistry:
    """Every TCF API method over ``records``; callers supply the transaction."""

    def __init__(self, records: Records) -> None:
        self.records = records

    # --- workers (TCF 5) -----------------------------------------------------------

    def _worker(self, worker_id: str) -> dict[str, Any]:
        doc = self.records.get(WORKER, worker_id.lower())
        if doc is None:
            raise _not_found(f"worker {worker_id[:64]}")
        return doc

    @staticmethod
    def _check_details(details: object) -> dict[str, Any]:
        if not isinstance(details, dict):
            raise invalid("field 'details' must be an object")
        data = details.get("workerTypeData")
        if not isinstance(data, dict):
            raise invalid("details.workerTypeData must be an object")
        for name in ("verificationKey", "encryptionKey"):
            schema.text(data, name)
        try:
            crypto.load_verifying_key(data["verificationKey"])
            crypto.load_encryption_key(data["encryptionKey"])
        except crypto.CryptoError as exc:
            raise invalid(f"details.workerTypeData: {exc}") from None
        return details

    def worker_register(self, params: object) -> dict[str, Any]:
        p = schema.params_object(params)
        worker_id = schema.hex_field(p, "workerId", size=32).lower()
        worker_type = schema.integer(p, "workerType")
        org = schema.hex_field(p, "organizationId", optional=True)
        apps = p.get("applicationTypeId", [])
        if not isinstance(apps, list) or not all(isinstance(a, str) for a in apps):
            raise invalid("field 'applicationTypeId' must be an array of strings")
        details = self._check_details(p.get("details"))
        vk = details["workerTypeData"]["verificationKey"]
        if crypto.sha256(crypto.pem_to_der(vk)).hex() != worker_id:
            raise invalid("workerId must be the hex SHA-256 of the worker's verification key (DER)")
        if self.records.get(WORKER, worker_id) is not None:
            raise invalid("worker is already registered; use WorkerUpdate")
        doc = {
            "workerType": worker_type,
            "organizationId": org,
            "applicationTypeId": apps,
            "details": details,
            "status": int(WorkerStatus.ACTIVE),
        }
        self.records.put(WORKER, worker_id, doc)
        return {}

    def worker_update(self, params: object) -> dict[str, Any]:
        p = schema.params_object(params)
        worker_id = schema.hex_field(p, "workerId").lower()
        doc = self._worker(worker_id)
        details = self._check_details(p.get("details"))
        old = doc["details"]["workerTypeData"]
        new = details["workerTypeData"]
        if (old["verificationKey"], old["encryptionKey"]) != (new["verificationKey"], new["encryptionKey"]):
            raise TcfError(ErrorCode.ACCESS_DENIED, "a worker's keys cannot change; register a new worker")
        doc["details"] = details
        self.records.put(WORKER, worker_id, doc)
        return {}

    def worker_set_status(self, params: object) -> dict[str, Any]:
        p = schema.params_object(params)
        worker_id = schema.hex_field(p, "workerId").lower()
        status = schema.integer(p, "status")
        if status not in {int(s) for s in WorkerStatus}:
            raise invalid("status must be 1 (active), 2 (off-line), 3 (decommissioned) or 4 (compromised)")
        doc = self._worker(worker_id)
        doc["status"] = status
        self.records.put(WORKER, worker_id, doc)
        return {}

    def _worker_ids(self, p: dict[str, Any]) -> list[str]:
        worker_type = schema.integer(p, "workerType", optional=True, default=0)
        org = schema.text(p, "organizationId", optional=True).lower()
        app = p.get("applicationTypeId")
        if app is not None and not isinstance(app, str | list):
            raise invalid("field 'applicationTypeId' must be a string or an array")
        wanted_apps = {app} if isinstance(app, str) else set(app or [])
        ids = []
        for worker_id, doc in self.records.scan(WORKER):
            if worker_type and doc.get("workerType") != worker_type:
                continue
            if org and doc.get("organizationId", "").lower() != org:
                continue
            if wanted_apps and not wanted_apps & set(doc.get("applicationTypeId", [])):
                continue
            ids.append(worker_id)
        return ids

    def worker_lookup(self, params: object) -> dict[str, Any]:
        return _page(self._worker_ids(schema.params_object(params)), "")

    def worker_lookup_next(self, params: object) -> dict[str, Any]:
        p = schema.params_object(params)
        return _page(self._worker_ids(p), schema.text(p, "lookUpTag"))

    def worker_retrieve(self, params: object) -> dict[str, Any]:
        worker_id = schema.hex_field(schema.params_object(params), "workerId").lower()
        doc = self._worker(worker_id)
        return {
            "workerType": doc["workerType"],
            "organizationId": doc["organizationId"],
            "applicationTypeId": doc["applicationTypeId"],
            "details": doc["details"],
            "status": doc["status"],
        }

    # --- work orders (TCF 6) -----------------------------------------------------------

    def work_order_submit(self, params: object) -> str:
        """Queue a work order; returns its id (the caller answers with PENDING)."""
        p = schema.work_order_submit(params)
        wo_id = p["workOrderId"].lower()
        worker = self._worker(p["workerId"])
        if worker["status"] != WorkerStatus.ACTIVE:
            raise TcfError(ErrorCode.INVALID_PARAMETER, "worker is not active")
        try:
            crypto.load_verifying_key(p["verifyingKey"])
        except crypto.CryptoError as exc:
            raise invalid(f"verifyingKey: {exc}") from None
        try:
            digest = crypto.request_hash(p)
            crypto.verify_hash(p["verifyingKey"], digest, p["requesterSignature"])
        except crypto.CryptoError as exc:
            raise TcfError(ErrorCode.INVALID_SIGNATURE, f"requesterSignature: {exc}") from None
        if self.records.get(WORK_ORDER, wo_id) is not None:
            raise invalid("workOrderId is already in use")
        self.records.put(
            WORK_ORDER,
            wo_id,
            {
                "params": p,
                "status": "pending",
                "requestHash": digest.hex(),
                "workerId": p["workerId"].lower(),
            },
        )
        self.records.enqueue(wo_id, p["workerId"].lower())
        return wo_id

    def work_order(self, work_order_id: str) -> dict[str, Any]:
        doc = self.records.get(WORK_ORDER, work_order_id.lower())
        if doc is None:
            raise _not_found("work order")
        return doc

    def work_order_get_result(self, params: object) -> dict[str, Any]:
        wo_id = schema.work_order_id(params)
        doc = self.work_order(wo_id)
        status = doc["status"]
        if status == "pending":
            raise TcfError(ErrorCode.PENDING, PENDING_MESSAGE)
        if status == "processing":
            raise TcfError(ErrorCode.PROCESSING, "Work order is being processed")
        if status == "failed":
            err = doc["error"]
            raise TcfError(int(err["code"]), str(err["message"]))
        return doc["result"]

    def mark_processing(self, work_order_id: str) -> None:
        doc = self.work_order(work_order_id)
        if doc["status"] == "pending":
            doc["status"] = "processing"
            self.records.put(WORK_ORDER, work_order_id.lower(), doc)

    def complete_work_order(
        self,
        work_order_id: str,
        outcome: dict[str, Any],
        receipt_update: dict[str, Any] | None,
    ) -> None:
        """Store a worker's result or error; only that worker's signature is accepted."""
        wo_id = work_order_id.lower()
        doc = self.work_order(wo_id)
        if doc["status"] in ("completed", "failed"):
            raise invalid("work order is already finished")
        worker = self._worker(doc["workerId"])
        vk = worker["details"]["workerTypeData"]["verificationKey"]
        if "result" in outcome:
            result = outcome["result"]
            if not isinstance(result, dict) or str(result.get("workOrderId", "")).lower() != wo_id:
                raise invalid("result is for another work order")
            processor.verify_result(vk, result)
            doc.update(status="completed", result=result)
        else:
            err = outcome.get("error")
            if not isinstance(err, dict):
                raise invalid("outcome needs a result or an error")
            # a failure must come with the worker's signed receipt update
            if receipt_update is None or receipt_update.get("receiptVerificationKey") != vk:
                raise TcfError(ErrorCode.ACCESS_DENIED, "a failure must be signed by the worker")
            self._verify_update_signature(receipt_update)
            doc.update(
                status="failed", error={"code": int(err["code"]), "message": str(err["message"])[:500]}
            )
        has_receipt = self.records.get(RECEIPT, wo_id) is not None
        if receipt_update is not None and not has_receipt:
            doc["pendingReceiptUpdate"] = receipt_update  # applied when the requester creates it
        self.records.put(WORK_ORDER, wo_id, doc)
        if receipt_update is not None and has_receipt:
            self.work_order_receipt_update(receipt_update)

    # --- receipts (TCF 7) ----------------------------------------------------------------

    def _receipt(self, work_order_id: str) -> dict[str, Any]:
        doc = self.records.get(RECEIPT, work_order_id.lower())
        if doc is None:
            raise _not_found("receipt")
        return doc

    def work_order_receipt_create(self, params: object) -> dict[str, Any]:
        p = schema.params_object(params)
        wo_id = schema.hex_field(p, "workOrderId").lower()
        for name in ("workerServiceId", "workerId", "requesterId", "requesterGeneratedNonce"):
            schema.hex_field(p, name)
        schema.hex_field(p, "workOrderRequestHash", size=32)
        status = schema.integer(p, "receiptCreateStatus")
        schema.b64_field(p, "requesterSignature")
        schema.text(p, "receiptVerificationKey")
        schema.text(p, "signatureRules", optional=True)
        if status != ReceiptStatus.PENDING:
            raise invalid("receiptCreateStatus must be 0 (pending)")
        order = self.work_order(wo_id)
        if self.records.get(RECEIPT, wo_id) is not None:
            raise invalid("a receipt for this work order exists")
        wo = order["params"]
        if (
            p["workerId"].lower() != order["workerId"]
            or p["requesterId"].lower() != wo["requesterId"].lower()
        ):
            raise invalid("workerId and requesterId must be the work order's")
        if p["workOrderRequestHash"].lower() != order["requestHash"]:
            raise invalid("workOrderRequestHash is not the work order's request hash")
        if p["receiptVerificationKey"] != wo["verifyingKey"]:
            raise TcfError(ErrorCode.ACCESS_DENIED, "only the work order's requester may create its receipt")
        try:
            crypto.verify_hash(
                p["receiptVerificationKey"], crypto.receipt_create_hash(p), p["requesterSignature"]
            )
        except crypto.CryptoError as exc:
            raise TcfError(ErrorCode.INVALID_SIGNATURE, f"requesterSignature: {exc}") from None
        self.records.put(RECEIPT, wo_id, {"create": p, "status": int(ReceiptStatus.PENDING), "updates": []})
        if order["status"] in ("completed", "failed") and order.get("pendingReceiptUpdate"):
            self.work_order_receipt_update(order["pendingReceiptUpdate"])
        return {}

    @staticmethod
    def _verify_update_signature(p: dict[str, Any]) -> None:
        try:
            crypto.verify_hash(
                p["receiptVerificationKey"], crypto.receipt_update_hash(p), p["updateSignature"]
            )
        except crypto.CryptoError as exc:
            raise TcfError(ErrorCode.INVALID_SIGNATURE, f"updateSignature: {exc}") from None

    def work_order_receipt_update(self, params: object) -> dict[str, Any]:
        p = schema.params_object(params)
        wo_id = schema.hex_field(p, "workOrderId").lower()
        schema.hex_field(p, "updaterId")
        update_type = schema.integer(p, "updateType")
        schema.text(p, "updateData")
        schema.b64_field(p, "updateSignature")
        key = schema.text(p, "receiptVerificationKey")
        if not 0 <= update_type <= 255:
            raise invalid("updateType must be 0..255")
        receipt = self._receipt(wo_id)
        order = self.work_order(wo_id)
        worker_key = self._worker(order["workerId"])["details"]["workerTypeData"]["verificationKey"]
        requester_key = receipt["create"]["receiptVerificationKey"]
        if key not in (worker_key, requester_key):
            raise TcfError(
                ErrorCode.ACCESS_DENIED, "only the worker or the requester may update this receipt"
            )
        if update_type in WORKER_ONLY_UPDATES and key != worker_key:
            raise TcfError(ErrorCode.ACCESS_DENIED, "only the work order's worker may complete its receipt")
        self._verify_update_signature(p)
        if receipt["status"] in (ReceiptStatus.COMPLETED, ReceiptStatus.FAILED) and update_type < 5:
            raise invalid("the receipt is final")
        receipt["updates"].append(p)
        if update_type <= ReceiptStatus.REJECTED:
            receipt["status"] = update_type
        self.records.put(RECEIPT, wo_id, receipt)
        return {}

    def work_order_receipt_retrieve(self, params: object) -> dict[str, Any]:
        wo_id = schema.work_order_id(params)
        receipt = self._receipt(wo_id)
        create = receipt["create"]
        return {
            "workOrderId": create["workOrderId"],
            "workerServiceId": create["workerServiceId"],
            "workerId": create["workerId"],
            "requesterId": create["requesterId"],
            "receiptCurrentStatus": receipt["status"],
            "workOrderRequestHash": create["workOrderRequestHash"],
            "requesterGeneratedNonce": create["requesterGeneratedNonce"],
            "requesterSignature": create["requesterSignature"],
            "signatureRules": create.get("signatureRules", crypto.SIGNATURE_RULES),
            "receiptVerificationKey": create["receiptVerificationKey"],
        }

    def work_order_receipt_update_retrieve(self, params: object) -> dict[str, Any]:
        p = schema.params_object(params)
        wo_id = schema.hex_field(p, "workOrderId").lower()
        updater = schema.text(p, "updaterId", optional=True).lower()
        index = schema.integer(p, "updateIndex", optional=True, default=LAST_UPDATE)
        updates = [
            u for u in self._receipt(wo_id)["updates"] if not updater or u["updaterId"].lower() == updater
        ]
        if not updates:
            raise _not_found("receipt update")
        if index == LAST_UPDATE:
            index = len(updates) - 1
        if not 0 <= index < len(updates):
            raise invalid("updateIndex is out of range")
        return {**updates[index], "updateCount": len(updates)}

    def _receipt_ids(self, p: dict[str, Any]) -> list[str]:
        filters = {
            name: schema.text(p, name, optional=True).lower()
            for name in ("workerServiceId", "workerId", "requesterId")
        }
        status = p.get("requestStatus")
        if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
            raise invalid("field 'requestStatus' must be an integer")
        ids = []
        for wo_id, receipt in self.records.scan(RECEIPT):
            create = receipt["create"]
            if any(v and create.get(k, "").lower() != v for k, v in filters.items()):
                continue
            if status is not None and receipt["status"] != status:
                continue
            ids.append(wo_id)
        return ids

    def work_order_receipt_lookup(self, params: object) -> dict[str, Any]:
        return _page(self._receipt_ids(schema.params_object(params)), "")

    def work_order_receipt_lookup_next(self, params: object) -> dict[str, Any]:
        p = schema.params_object(params)
        return _page(self._receipt_ids(p), schema.text(p, "lastLookUpTag"))

    # --- encryption keys (TCF 6.2) ----------------------------------------------------------

    def encryption_key_get(self, params: object) -> dict[str, Any]:
        p = schema.params_object(params)
        worker_id = schema.hex_field(p, "workerId").lower()
        data = self._worker(worker_id)["details"]["workerTypeData"]
        return {
            "workerId": worker_id,
            "encryptionKey": data["encryptionKey"],
            "encryptionKeyNonce": data.get("encryptionKeyNonce", ""),
            "tag": "",
            "signature": data.get("encryptionKeySignature", ""),
        }

    def encryption_key_set(self, params: object) -> dict[str, Any]:
        schema.hex_field(schema.params_object(params), "workerId")
        raise TcfError(
            ErrorCode.ACCESS_DENIED,
            "encryption keys are generated inside the worker's enclave and bound in its attestation; "
            "they cannot be set over the API",
        )


# JSON-RPC method name -> TcfRegistry method
METHODS = {
    "WorkerLookUp": "worker_lookup",
    "WorkerLookUpNext": "worker_lookup_next",
    "WorkerRetrieve": "worker_retrieve",
    "WorkerRegister": "worker_register",
    "WorkerUpdate": "worker_update",
    "WorkerSetStatus": "worker_set_status",
    "WorkOrderSubmit": "work_order_submit",
    "WorkOrderGetResult": "work_order_get_result",
    "WorkOrderReceiptCreate": "work_order_receipt_create",
    "WorkOrderReceiptUpdate": "work_order_receipt_update",
    "WorkOrderReceiptRetrieve": "work_order_receipt_retrieve",
    "WorkOrderReceiptUpdateRetrieve": "work_order_receipt_update_retrieve",
    "WorkOrderReceiptLookUp": "work_order_receipt_lookup",
    "WorkOrderReceiptLookUpNext": "work_order_receipt_lookup_next",
    "EncryptionKeyGet": "encryption_key_get",
    "EncryptionKeySet": "encryption_key_set",
}

__all__ = ["METHODS", "PENDING_MESSAGE", "TcfRegistry"]
