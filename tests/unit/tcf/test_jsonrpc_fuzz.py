"""Property: whatever JSON arrives, every method answers with a defined code, never a crash."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heddle.tcf import requester, signup
from heddle.tcf.enclave.worker import identity
from heddle.tcf.jsonrpc import TcfService
from heddle.tcf.registry import METHODS, TcfRegistry
from heddle.tcf.store import SqliteStore

KEYS: dict[str, str] = {}
FIELDS = [
    "workerId", "workOrderId", "workloadId", "requesterId", "requesterNonce", "inData", "outData",
    "encryptedSessionKey", "sessionKeyIv", "encryptedRequestHash", "requesterSignature", "verifyingKey",
    "details", "status", "workerType", "updateType", "updateData", "updateIndex", "lookUpTag",
    "receiptCreateStatus", "workOrderRequestHash", "index", "data", "iv", "dataHash", "workerTypeData",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.sampled_from(["00" * 32, "ab", "null", "-", "zz", "", "00" * 12]),
    st.sampled_from(["WORKER", "ORDER"]).map(lambda k: KEYS.get(k, k)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4)
    ),
    max_leaves=12,
)
params = st.one_of(values, st.dictionaries(st.sampled_from(FIELDS), values, max_size=8))


@pytest.fixture(scope="module")
def service(tmp_path_factory, worker_keys):
    store = SqliteStore(tmp_path_factory.mktemp("fuzz"))
    registry = TcfRegistry(store)
    with store.transaction():
        registry.worker_register(signup.register_params(identity(worker_keys), b"{}"))
    retrieved = registry.worker_retrieve({"workerId": worker_keys.worker_id})
    info = signup.WorkerInfo.from_retrieve(worker_keys.worker_id, retrieved)
    pending = requester.build_work_order(info, "echo", [b"x"], requester.Requester())
    with store.transaction():
        registry.work_order_submit(pending.params)
    KEYS.update(WORKER=worker_keys.worker_id, ORDER=pending.work_order_id)
    yield TcfService(registry, store.transaction)
    store.close()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(sorted(METHODS)), p=params)
def test_every_method_answers_arbitrary_params_with_a_defined_code(service, method, p):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": p}).encode()
    reply = json.loads(service.handle_bytes(body))
    if "error" in reply:
        assert reply["error"]["code"] in {2, 3, 4, 5, 7, 9}, reply
    else:
        assert "result" in reply
