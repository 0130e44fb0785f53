"""The work order life cycle without processes: requester, processor and registry rules."""

import copy
import json

import pytest

from heddle.tcf import crypto, processor, requester
from heddle.tcf.codes import ErrorCode, ReceiptStatus, TcfError
from heddle.tcf.registry import TcfRegistry


def submit(registry, store, worker_info, alice, workload="heart-disease-eval", inputs=None):
    pending = requester.build_work_order(
        worker_info, workload, inputs or [b"25 10 1 67 102 125 1 95 5 10 1 11 36 1"], alice
    )
    with store.transaction():
        registry.work_order_submit(copy.deepcopy(pending.params))
        registry.work_order_receipt_create(requester.receipt_create(pending, alice))
    return pending


def run(registry, store, keys, pending):
    outcome = {"result": processor.process(keys, copy.deepcopy(pending.params))}
    receipt = processor.completion_receipt(keys, outcome["result"])
    with store.transaction():
        registry.complete_work_order(pending.work_order_id, outcome, receipt)
    return outcome["result"]


def test_full_flow_result_verifies_decrypts_and_completes_the_receipt(
    registry, store, worker_info, worker_keys, alice
):
    pending = submit(registry, store, worker_info, alice)
    with pytest.raises(TcfError) as exc:
        registry.work_order_get_result({"workOrderId": pending.work_order_id})
    assert exc.value.code == ErrorCode.PENDING
    run(registry, store, worker_keys, pending)
    result = registry.work_order_get_result({"workOrderId": pending.work_order_id})
    assert requester.open_result(pending, result) == [b"You have a 47% risk of heart disease"]
    receipt = registry.work_order_receipt_retrieve({"workOrderId": pending.work_order_id})
    assert receipt["receiptCurrentStatus"] == ReceiptStatus.COMPLETED
    update = registry.work_order_receipt_update_retrieve({"workOrderId": pending.work_order_id})
    assert update["updateData"] == crypto.response_hash(result).hex()
    assert registry.work_order_receipt_lookup({"requesterId": alice.requester_id})["ids"] == [
        pending.work_order_id
    ]


def test_client_rejects_a_tampered_result(registry, store, worker_info, worker_keys, alice):
    pending = submit(registry, store, worker_info, alice)
    result = run(registry, store, worker_keys, pending)
    tampered = copy.deepcopy(result)
    cipher = bytearray(crypto.unb64(tampered["outData"][0]["data"]))
    cipher[0] ^= 1
    tampered["outData"][0]["data"] = crypto.b64(bytes(cipher))
    with pytest.raises(TcfError) as exc:
        requester.open_result(pending, tampered)
    assert exc.value.code == ErrorCode.INVALID_SIGNATURE


def test_client_rejects_a_result_signed_by_another_key(
    registry, store, worker_info, worker_keys, other_keys, alice
):
    pending = submit(registry, store, worker_info, alice)
    result = run(registry, store, worker_keys, pending)
    forged = dict(result, workerSignature=other_keys.sign(crypto.response_hash(result)))
    with pytest.raises(TcfError, match="workerSignature") as exc:
        requester.open_result(pending, forged)
    assert exc.value.code == ErrorCode.INVALID_SIGNATURE
    # a forged WPE endorsement does not help either
    endorsed = dict(forged, **processor.endorse(other_keys, other_keys.verification_key))
    with pytest.raises(TcfError, match="endorsement"):
        requester.open_result(pending, endorsed)


def test_only_the_work_orders_worker_may_complete_it(
    registry, store, worker_info, worker_keys, other_keys, alice
):
    pending = submit(registry, store, worker_info, alice)
    result = processor.process(worker_keys, copy.deepcopy(pending.params))
    forged = dict(result, workerSignature=other_keys.sign(crypto.response_hash(result)))
    with pytest.raises(TcfError) as exc, store.transaction():
        registry.complete_work_order(pending.work_order_id, {"result": forged}, None)
    assert exc.value.code == ErrorCode.INVALID_SIGNATURE
    other_receipt = processor.receipt_update(other_keys, pending.work_order_id, ReceiptStatus.COMPLETED, "x")
    with pytest.raises(TcfError) as exc, store.transaction():
        registry.work_order_receipt_update(other_receipt)
    assert exc.value.code == ErrorCode.ACCESS_DENIED
    # the requester may annotate its receipt but not complete it
    mine = {
        "workOrderId": pending.work_order_id,
        "updaterId": alice.requester_id,
        "updateType": 1,
        "updateData": "done",
        "signatureRules": crypto.SIGNATURE_RULES,
        "receiptVerificationKey": alice.verifying_key,
    }
    mine["updateSignature"] = alice.sign(crypto.receipt_update_hash(mine))
    with pytest.raises(TcfError, match="only the work order's worker") as exc, store.transaction():
        registry.work_order_receipt_update(mine)
    assert registry.work_order(pending.work_order_id)["status"] == "pending"


def test_processor_refuses_bad_requester_signature_and_iv_reuse(worker_info, worker_keys, alice, other_keys):
    pending = requester.build_work_order(worker_info, "echo", [b"a", b"b"], alice)
    bad = copy.deepcopy(pending.params)
    bad["requesterSignature"] = other_keys.sign(pending.request_hash)
    with pytest.raises(TcfError, match="requesterSignature") as exc:
        processor.process(worker_keys, bad)
    assert exc.value.code == ErrorCode.INVALID_SIGNATURE
    # a requester that reuses one IV for two items (Avalon's habit) is refused
    reuse = copy.deepcopy(pending.params)
    reuse["inData"][1]["iv"] = reuse["inData"][0]["iv"]
    digest = crypto.request_hash(reuse)
    sealed, iv = crypto.encrypt(pending.session_key, digest)
    reuse.update(
        sessionKeyIv=iv.hex(), encryptedRequestHash=sealed.hex(), requesterSignature=alice.sign(digest)
    )
    with pytest.raises(TcfError, match="reuses an IV"):
        processor.process(worker_keys, reuse)


def test_processor_refuses_a_work_order_for_another_worker(worker_info, other_keys, alice):
    pending = requester.build_work_order(worker_info, "echo", [b"a"], alice)
    with pytest.raises(TcfError, match="different worker"):
        processor.process(other_keys, pending.params)


def test_submit_refuses_duplicates_bad_signatures_and_unknown_workers(
    registry, store, worker_info, alice, other_keys
):
    pending = submit(registry, store, worker_info, alice)
    with pytest.raises(TcfError, match="already in use"), store.transaction():
        registry.work_order_submit(copy.deepcopy(pending.params))
    again = requester.build_work_order(worker_info, "echo", [b"x"], alice)
    again.params["requesterSignature"] = other_keys.sign(again.request_hash)
    with pytest.raises(TcfError) as exc, store.transaction():
        registry.work_order_submit(again.params)
    assert exc.value.code == ErrorCode.INVALID_SIGNATURE
    lost = requester.build_work_order(worker_info, "echo", [b"x"], alice)
    lost.params["workerId"] = "ab" * 32
    with pytest.raises(TcfError, match="not found"), store.transaction():
        registry.work_order_submit(lost.params)


def test_worker_registry_rules(registry, store, worker_keys, other_keys):
    ids = registry.worker_lookup({"workerType": 1})["ids"]
    assert sorted(ids) == sorted([worker_keys.worker_id, other_keys.worker_id])
    doc = registry.worker_retrieve({"workerId": worker_keys.worker_id})
    swapped = copy.deepcopy(doc["details"])
    swapped["workerTypeData"]["verificationKey"] = other_keys.verification_key
    with pytest.raises(TcfError) as exc:
        registry.worker_update({"workerId": worker_keys.worker_id, "details": swapped})
    assert exc.value.code == ErrorCode.ACCESS_DENIED
    registry.worker_set_status({"workerId": worker_keys.worker_id, "status": 3})
    assert registry.worker_retrieve({"workerId": worker_keys.worker_id})["status"] == 3
    with pytest.raises(TcfError):
        registry.worker_set_status({"workerId": worker_keys.worker_id, "status": 9})
    stolen = {"workerId": "cd" * 32, "workerType": 1, "details": doc["details"]}
    with pytest.raises(TcfError, match="SHA-256 of the worker's verification key"):
        registry.worker_register(stolen)
    key = registry.encryption_key_get({"workerId": worker_keys.worker_id})
    assert key["encryptionKey"] == worker_keys.encryption_key
    with pytest.raises(TcfError) as exc:
        registry.encryption_key_set({"workerId": worker_keys.worker_id})
    assert exc.value.code == ErrorCode.ACCESS_DENIED


def test_lookup_pages_with_a_tag(store):
    from heddle.tcf import registry as reg_mod

    reg = TcfRegistry(store)
    for i in range(reg_mod.PAGE_SIZE + 5):
        store.put("worker", f"{i:064x}", {"workerType": 1, "organizationId": "", "applicationTypeId": []})
    first = reg.worker_lookup({})
    assert first["totalCount"] == reg_mod.PAGE_SIZE + 5 and len(first["ids"]) == reg_mod.PAGE_SIZE
    rest = reg.worker_lookup_next({"lookUpTag": first["lookupTag"]})
    assert len(rest["ids"]) == 5 and rest["lookupTag"] == ""


def test_queue_claims_in_order_and_survives_reopening(tmp_path, registry, store, worker_info, alice):
    from heddle.tcf.store import SqliteStore

    a = submit(registry, store, worker_info, alice)
    b = submit(registry, store, worker_info, alice)
    assert store.claim(worker_info.worker_id) == a.work_order_id
    reopened = SqliteStore(store.path.parent)  # another process, or a restart
    assert reopened.release_claims(worker_info.worker_id) == 1
    assert reopened.claim(worker_info.worker_id) == a.work_order_id
    assert reopened.claim(worker_info.worker_id) == b.work_order_id
    assert reopened.claim(worker_info.worker_id) is None
    assert json.loads(json.dumps(reopened.get("workorder", a.work_order_id)))["status"] == "pending"


def test_a_failed_work_order_reports_its_code_and_a_worker_signed_failure_receipt(
    registry, store, worker_info, worker_keys, alice
):
    pending = submit(registry, store, worker_info, alice, inputs=[b"1 2 3"])  # too few values
    with pytest.raises(TcfError) as exc:
        processor.process(worker_keys, copy.deepcopy(pending.params))
    receipt = processor.failure_receipt(worker_keys, pending.work_order_id, exc.value)
    with store.transaction():
        registry.complete_work_order(pending.work_order_id, {"error": exc.value.to_json()}, receipt)
    with pytest.raises(TcfError, match="expected 14 values") as got:
        registry.work_order_get_result({"workOrderId": pending.work_order_id})
    assert got.value.code == ErrorCode.INVALID_PARAMETER
    status = registry.work_order_receipt_retrieve({"workOrderId": pending.work_order_id})[
        "receiptCurrentStatus"
    ]
    assert status == ReceiptStatus.FAILED


def test_a_failure_claimed_without_the_workers_signature_is_refused(
    registry, store, worker_info, alice, other_keys
):
    pending = submit(registry, store, worker_info, alice)
    forged = processor.failure_receipt(other_keys, pending.work_order_id, TcfError(1, "no"))
    with pytest.raises(TcfError) as exc, store.transaction():
        registry.complete_work_order(pending.work_order_id, {"error": {"code": 1, "message": "no"}}, forged)
    assert exc.value.code == ErrorCode.ACCESS_DENIED
