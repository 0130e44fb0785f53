"""The connector's rules without a network: blocks in, local queue and checkpoint out."""

from __future__ import annotations

import grpc
import pytest
from fabric_protos.peer import transaction_pb2
from tcf_blocks import creator, tcf_block, tcf_tx

from heddle.client import CommitError, ErrorDetail, GatewayError
from heddle.tcf import requester
from heddle.tcf.client import RpcError
from heddle.tcf.codes import ErrorCode
from heddle.tcf.connector import Checkpoint, Connector, work_orders_in_block
from heddle.tcf.proxy import tcf_error
from heddle.tcf.registry import WORK_ORDER

CREATOR = creator("Org2MSP")


def _tx(namespace: str, writes: dict[str, dict]) -> bytes:
    return tcf_tx(namespace, writes, b'WorkOrderSubmit', CREATOR)


_block = tcf_block


def _pending(params: dict) -> dict:
    return {"params": params, "status": "pending", "workerId": params["workerId"], "requestHash": "00"}


def test_work_orders_come_only_from_valid_transactions_of_the_chaincode():
    valid = _tx("tcf", {f"{WORK_ORDER}/aa": {"status": "pending"}, "receipt/aa": {}})
    invalid = _tx("tcf", {f"{WORK_ORDER}/bb": {"status": "pending"}})
    other = _tx("basic", {f"{WORK_ORDER}/cc": {"status": "pending"}})
    block = _block(
        7, [(valid, transaction_pb2.VALID), (invalid, transaction_pb2.MVCC_READ_CONFLICT), (other, 0)]
    )
    found = list(work_orders_in_block(block, "tcf"))
    assert [(w.work_order_id, w.block, w.status) for w in found] == [("aa", 7, "pending")]
    assert len(found[0].transaction_id) == 64


class FakeLedger:
    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.completed: list[str] = []

    def complete(self, work_order_id, outcome, receipt):
        result = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(result, Exception):
            raise result
        self.completed.append(work_order_id)
        return b"{}"


@pytest.fixture
def work_order(worker_info, alice):
    return requester.build_work_order(worker_info, "echo", [b"hi"], alice)


def test_handle_block_queues_once_and_advances_the_checkpoint_atomically(store, registry, work_order):
    connector = Connector(store, FakeLedger())
    wo_id = work_order.work_order_id
    block = _block(3, [(_tx("tcf", {f"{WORK_ORDER}/{wo_id}": _pending(work_order.params)}), 0)])
    assert connector.handle_block(block) == 1
    assert connector.handle_block(block) == 0  # a replay after a restart queues nothing twice
    assert connector.checkpoint.last_block() == 3
    assert connector.checkpoint.queued() == [wo_id]
    assert store.queue_state(wo_id) == "pending"  # handed to the worker host's queue
    # a work order for a worker this connector does not host is not taken
    foreign = dict(work_order.params, workerId="ff" * 32, workOrderId="ee" * 16)
    connector.handle_block(_block(4, [(_tx("tcf", {f"{WORK_ORDER}/{'ee' * 16}": _pending(foreign)}), 0)]))
    assert connector.checkpoint.state("ee" * 16) is None and connector.checkpoint.last_block() == 4
    # seeing its completion committed (e.g. before a crash was noted) marks it forwarded
    done = {**_pending(work_order.params), "status": "completed"}
    connector.handle_block(_block(5, [(_tx("tcf", {f"{WORK_ORDER}/{wo_id}": done}), 0)]))
    assert connector.checkpoint.state(wo_id) == "forwarded"


def _finish_locally(store, wo_id: str) -> None:
    doc = store.get(WORK_ORDER, wo_id)
    doc.update(status="completed", result={"workOrderId": wo_id}, pendingReceiptUpdate={"updateType": 1})
    with store.transaction():
        store.put(WORK_ORDER, wo_id, doc)


@pytest.mark.parametrize(
    ("refusal", "state"),
    [
        (None, "forwarded"),
        (RpcError(ErrorCode.INVALID_PARAMETER, "work order is already finished"), "forwarded"),
        (RpcError(ErrorCode.ACCESS_DENIED, "only the ledger identity that registered"), "rejected"),
        (CommitError("tx", transaction_pb2.MVCC_READ_CONFLICT, 9), "queued"),
        (RpcError(ErrorCode.INVALID_PARAMETER, "work order not found"), "queued"),
    ],
    ids=["completed", "already-completed-before-restart", "not-the-worker", "mvcc-retry", "peer-lagging"],
)
def test_forwarding_result_decides_the_inbox_state(store, registry, work_order, refusal, state):
    ledger = FakeLedger(refusal)
    connector = Connector(store, ledger)
    wo_id = work_order.work_order_id
    connector.handle_block(
        _block(1, [(_tx("tcf", {f"{WORK_ORDER}/{wo_id}": _pending(work_order.params)}), 0)])
    )
    assert connector.forward_ready() == 0  # not finished by the worker yet
    _finish_locally(store, wo_id)
    connector.forward_ready()
    assert connector.checkpoint.state(wo_id) == state


def test_checkpoint_survives_reopening_the_store(store, tmp_path):
    from heddle.tcf.store import SqliteStore

    cp = Checkpoint(store)
    with store.transaction():
        cp.set_last_block(41)
        cp.add("aa", "bb", 41)
    again = Checkpoint(SqliteStore(tmp_path))
    assert again.last_block() == 41 and again.queued() == ["aa"]


def test_chaincode_refusals_become_tcf_errors():
    exc = GatewayError(
        "evaluate call to endorser returned error: TCF error 3: only the worker may complete",
        grpc.StatusCode.ABORTED,
        [ErrorDetail("127.0.0.1:7051", "Org1MSP", "chaincode response 500, TCF error 3: only the worker")],
    )
    err = tcf_error(exc)
    assert err is not None and err.code == ErrorCode.ACCESS_DENIED and err.message == "only the worker"
    assert tcf_error(GatewayError("unavailable", grpc.StatusCode.UNAVAILABLE)) is None


class FakeSubmitted:
    def __init__(self, code: int):
        self.code, self.result = code, b'{"ok": true}'

    def get_status(self):
        from heddle.client import Status

        return Status("tx", self.code, 5)


class FakeContract:
    def __init__(self, *steps):
        self.steps, self.calls = list(steps), 0

    def submit_async(self, function, *args):
        self.calls += 1
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return FakeSubmitted(step)


def test_ledger_transport_retries_mvcc_conflicts_and_a_lagging_endorser():
    from heddle.tcf.proxy import LedgerTransport

    lagging = GatewayError(
        "endorse failed",
        grpc.StatusCode.ABORTED,
        [ErrorDetail("p", "Org1MSP", "TCF error 2: work order not found")],
    )
    contract = FakeContract(transaction_pb2.MVCC_READ_CONFLICT, lagging, transaction_pb2.VALID)
    transport = LedgerTransport(contract)
    assert transport.call("WorkOrderReceiptCreate", {}) == {"ok": True}
    assert contract.calls == 3 and transport.transactions[-1].block_number == 5
    refused = GatewayError("x", grpc.StatusCode.ABORTED, [ErrorDetail("p", "Org1MSP", "TCF error 3: denied")])
    with pytest.raises(RpcError) as info:
        LedgerTransport(FakeContract(refused)).call("WorkerSetStatus", {})
    assert info.value.code == ErrorCode.ACCESS_DENIED
    with pytest.raises(CommitError):
        LedgerTransport(FakeContract(transaction_pb2.ENDORSEMENT_POLICY_FAILURE)).call("WorkOrderSubmit", {})
