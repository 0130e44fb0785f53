"""The ``tcf`` contract over an in-memory world state: the registry's rules plus ledger identities."""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import json
from pathlib import Path

import pytest

from heddle.tcf import processor, requester, signup
from heddle.tcf.enclave.worker import identity

MAIN = Path(__file__).resolve().parents[3] / "src" / "heddle" / "tcf" / "chaincode" / "main.py"


def _load():
    spec = importlib.util.spec_from_file_location("tcf_chaincode_main", MAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cc = _load()


class KV:
    def __init__(self, key, value):
        self.key, self.value = key, value


class Rows:
    def __init__(self, rows):
        self._rows = iter(rows)

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return next(self._rows)
        except StopIteration:
            raise StopAsyncIteration from None


class FakeStub:
    """Fabric's simulation semantics: reads see the committed state only, never this
    transaction's own writes, which are committed when the transaction succeeds."""

    def __init__(self, state, mspid, cert):
        self.state, self.creator, self.events = state, {"mspid": mspid, "idBytes": cert}, []
        self.writes: dict[str, bytes] = {}

    async def get_state(self, key):
        return self.state.get(key, b"")

    async def put_state(self, key, value):
        self.writes[key] = bytes(value)

    async def get_state_by_range(self, start, end):
        return Rows([KV(k, v) for k, v in sorted(self.state.items()) if start <= k < end])

    def get_creator(self):
        return self.creator

    def set_event(self, name, payload):
        self.events.append((name, json.loads(payload)))


class Ctx:
    def __init__(self, stub):
        self.stub = stub

    def get_stub(self):
        return self.stub


class Ledger:
    """A world state shared by callers with different identities."""

    def __init__(self):
        self.state: dict[str, bytes] = {}
        self.contract = cc.TrustedCompute()

    def call(self, who: str, function: str, *args: str):
        stub = FakeStub(self.state, f"{who}MSP", f"cert of {who}".encode())
        result = asyncio.run(getattr(self.contract, function)(Ctx(stub), *args))
        self.state.update(stub.writes)  # committed: the call succeeded
        return json.loads(result), stub.events


@pytest.fixture
def ledger(worker_keys):
    ledger = Ledger()
    params = signup.register_params(identity(worker_keys), b"{}")
    ledger.call("Org1", "WorkerRegister", json.dumps(params))
    return ledger


@pytest.fixture
def worker(ledger, worker_keys):
    found, _ = ledger.call("Org2", "WorkerRetrieve", json.dumps({"workerId": worker_keys.worker_id}))
    return signup.WorkerInfo.from_retrieve(worker_keys.worker_id, found)


def _refusal(code: int):
    return pytest.raises(ValueError, match=f"^TCF error {code}: ")


def test_the_registering_identity_owns_the_worker(ledger, worker_keys):
    owner, _ = ledger.call("Org2", "WorkerLedgerIdentity", worker_keys.worker_id)
    assert owner["mspid"] == "Org1MSP" and len(owner["certSha256"]) == 64
    status = json.dumps({"workerId": worker_keys.worker_id, "status": 2})
    with _refusal(3):
        ledger.call("Org2", "WorkerSetStatus", status)
    ledger.call("Org1", "WorkerSetStatus", status)
    with _refusal(2):  # the registry's rule: one registration per worker id
        ledger.call(
            "Org1", "WorkerRegister", json.dumps(signup.register_params(identity(worker_keys), b"{}"))
        )
    page, _ = ledger.call("Org2", "WorkerLookUp", "{}")
    assert page["ids"] == [worker_keys.worker_id]


def test_submit_emits_the_event_and_only_the_worker_completes_once(ledger, worker, worker_keys, alice):
    pending = requester.build_work_order(worker, "echo", [b"hi"], alice)
    _, events = ledger.call("Org2", "WorkOrderSubmit", json.dumps(pending.params))
    assert events == [
        ("workOrderSubmitted", {"workOrderId": pending.work_order_id, "workerId": worker.worker_id})
    ]
    ledger.call("Org2", "WorkOrderReceiptCreate", json.dumps(requester.receipt_create(pending, alice)))
    with _refusal(5):
        ledger.call("Org2", "WorkOrderGetResult", json.dumps({"workOrderId": pending.work_order_id}))
    result = processor.process(worker_keys, copy.deepcopy(pending.params))
    outcome = json.dumps({"result": result})
    receipt = json.dumps(processor.completion_receipt(worker_keys, result))
    with _refusal(3):  # a valid worker-signed result, but not from the worker's ledger identity
        ledger.call("Org2", "WorkOrderComplete", pending.work_order_id, outcome, receipt)
    _, events = ledger.call("Org1", "WorkOrderComplete", pending.work_order_id, outcome, receipt)
    assert events == [("workOrderCompleted", {"workOrderId": pending.work_order_id})]
    with _refusal(2):
        ledger.call("Org1", "WorkOrderComplete", pending.work_order_id, outcome, receipt)
    got, _ = ledger.call("Org2", "WorkOrderGetResult", json.dumps({"workOrderId": pending.work_order_id}))
    assert requester.open_result(pending, got) == [b"RESULT: hi"]
    receipt_now, _ = ledger.call(
        "Org2", "WorkOrderReceiptRetrieve", json.dumps({"workOrderId": pending.work_order_id})
    )
    assert receipt_now["receiptCurrentStatus"] == 1


def test_a_receipt_created_after_the_completion_takes_the_workers_pending_update(
    ledger, worker, worker_keys, alice
):
    """The worker may finish before the requester creates the receipt: the completion's
    receipt update waits on the work order and is applied in the creating transaction, which
    cannot read back the receipt it has just written."""
    pending = requester.build_work_order(worker, "echo", [b"hi"], alice)
    ledger.call("Org2", "WorkOrderSubmit", json.dumps(pending.params))
    result = processor.process(worker_keys, copy.deepcopy(pending.params))
    update = processor.completion_receipt(worker_keys, result)
    ledger.call(
        "Org1", "WorkOrderComplete", pending.work_order_id, json.dumps({"result": result}), json.dumps(update)
    )
    ledger.call("Org2", "WorkOrderReceiptCreate", json.dumps(requester.receipt_create(pending, alice)))
    ids = json.dumps({"workOrderId": pending.work_order_id})
    receipt, _ = ledger.call("Org2", "WorkOrderReceiptRetrieve", ids)
    assert receipt["receiptCurrentStatus"] == 1  # completed
    last, _ = ledger.call(
        "Org2",
        "WorkOrderReceiptUpdateRetrieve",
        json.dumps({"workOrderId": pending.work_order_id, "updateIndex": 0xFFFFFFFF}),
    )
    assert last["updateSignature"] == update["updateSignature"]
    assert last["updateData"] == update["updateData"]


def test_datasets_hold_ciphertext_and_belong_to_their_publisher(ledger, worker_keys):
    from heddle.tcf.hospitals import Hospital
    from heddle.tee import VerificationPolicy

    dataset = Hospital("hospital-a", b"age,sex\n63,1\n", VerificationPolicy.development([]), []).publish()
    doc = {k: getattr(dataset, k) for k in ("owner", "data", "iv", "data_hash", "ciphertext_hash")}
    ledger.call("Org2", "DatasetPublish", json.dumps(doc))
    stored, _ = ledger.call("Org1", "DatasetGet", "hospital-a")
    assert stored["ciphertext_hash"] == dataset.ciphertext_hash and stored["publisher"]["mspid"] == "Org2MSP"
    with _refusal(3):
        ledger.call("Org1", "DatasetPublish", json.dumps(doc))
    with _refusal(2):
        ledger.call("Org2", "DatasetPublish", json.dumps({**doc, "ciphertext_hash": "00" * 32}))


def test_the_package_carries_its_rules_and_imports_nothing_else_from_heddle(tmp_path):
    import subprocess
    import sys

    from heddle.tcf.chaincode_package import write_chaincode

    folder = write_chaincode(tmp_path / "tcf")
    assert sorted(p.name for p in folder.iterdir()) == ["heddle_tcf_rules.py", "main.py", "requirements.txt"]
    assert "heddle" not in (folder / "requirements.txt").read_text()
    probe = f"""
import importlib.abc, runpy, sys
class NoHeddle(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "heddle" or name.startswith("heddle."):
            raise ImportError("installed heddle must not be used: " + name)
sys.meta_path.insert(0, NoHeddle())
sys.path.insert(0, {str(folder)!r})
module = runpy.run_path({str(folder / "main.py")!r}, run_name="tcf_package_probe")
print(sys.modules["heddle.tcf.registry"].__file__, sorted(module["TrustedCompute"].__dict__)[:2])
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("<measured>/heddle.tcf.registry")
    assert (
        write_chaincode(tmp_path / "again").joinpath("heddle_tcf_rules.py").read_bytes()
        == (folder / "heddle_tcf_rules.py").read_bytes()
    )
