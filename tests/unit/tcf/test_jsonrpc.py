"""JSON-RPC framing and the TCF error codes, through the sans-I/O service."""

import copy
import json

import pytest

from heddle.tcf import requester
from heddle.tcf.jsonrpc import TcfService


@pytest.fixture
def service(registry, store):
    return TcfService(registry, store.transaction)


def call(service, method, params, raw=None):
    body = (
        raw
        if raw is not None
        else json.dumps({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    )
    return json.loads(service.handle_bytes(body.encode() if isinstance(body, str) else body))


def code(reply):
    return reply["error"]["code"]


def test_transport_errors_use_json_rpc_codes(service):
    assert code(call(service, "", {}, raw=b"{not json")) == -32700
    assert code(call(service, "", {}, raw=b"\xff\xfe")) == -32700
    assert code(call(service, "", {}, raw=b"[1, 2]")) == -32600
    assert code(call(service, "", {}, raw=b'{"method": "WorkerLookUp"}')) == -32600
    reply = call(service, "WorkerFly", {})
    assert code(reply) == -32601 and reply["id"] == 7


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("WorkerRetrieve", {}, 2),  # missing field
        ("WorkOrderSubmit", {"verifyingKey": "x"}, 2),
        ("WorkerRetrieve", {"workerId": 42}, 2),  # ill-typed
        ("WorkerRetrieve", {"workerId": "xyz"}, 2),  # wrong hex
        ("WorkerRetrieve", {"workerId": "abc"}, 2),  # odd-length hex
        ("WorkerRetrieve", {"workerId": "00" * 32}, 2),  # unknown worker
        ("WorkerRetrieve", "not an object", 2),
        ("WorkerSetStatus", {"workerId": "00" * 32, "status": "on"}, 2),
        ("WorkOrderGetResult", {"workOrderId": "00ff"}, 2),
        ("WorkOrderReceiptRetrieve", {"workOrderId": "00ff"}, 2),
        ("EncryptionKeySet", {"workerId": "00" * 32}, 3),
    ],
)
def test_malformed_params_get_tcf_codes(service, method, params, expected):
    reply = call(service, method, params)
    assert code(reply) == expected, reply


def test_submit_answers_pending_then_result_codes(service, worker_info, alice, other_keys):
    pending = requester.build_work_order(worker_info, "echo", [b"hello"], alice)
    reply = call(service, "WorkOrderSubmit", pending.params)
    assert code(reply) == 5 and reply["error"]["data"]["workOrderId"] == pending.work_order_id
    assert code(call(service, "WorkOrderGetResult", {"workOrderId": pending.work_order_id})) == 5
    bad = requester.build_work_order(worker_info, "echo", [b"hello"], alice)
    bad.params["requesterSignature"] = other_keys.sign(bad.request_hash)
    assert code(call(service, "WorkOrderSubmit", bad.params)) == 4
    broken = copy.deepcopy(pending.params)
    broken["workOrderId"] = "11" * 16
    broken["inData"][0]["iv"] = "not hex"
    assert code(call(service, "WorkOrderSubmit", broken)) == 2
    del broken["inData"]
    assert code(call(service, "WorkOrderSubmit", broken)) == 2


def test_an_internal_error_is_code_1_and_the_service_keeps_serving(service, registry, monkeypatch):
    def boom(params):
        raise RuntimeError("bug")

    monkeypatch.setattr(registry, "worker_lookup", boom)
    assert code(call(service, "WorkerLookUp", {})) == 1
    monkeypatch.undo()
    assert "ids" in call(service, "WorkerLookUp", {})["result"]
