"""The tcf workload without processes: the chaincode's rules over SQLite, a worker in-process.

``FakeTcfLedger`` plays the Gateway client of the bench: WorkOrderSubmit is the registry's
work_order_submit; a moment later the "connector" processes the work order with the real
enclave logic (``processor.process``) and completes it, and a committed block carrying the
completion goes to ``blocks()`` subscribers; Evaluate answers lookups and
WorkOrderGetResult, refusing as the contract does (``TCF error <code>: <message>``)."""

from __future__ import annotations

import asyncio
import copy
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from fabric_protos.peer import transaction_pb2
from tcf_blocks import creator, tcf_block, tcf_tx

from heddle.bench.loadgen import LoadGenerator, TxError
from heddle.bench.workloads import (
    TcfWorkOrders,
    finished_work_orders,
    make_workload,
    tcf_payload,
    tcf_refusal,
)
from heddle.tcf import crypto, processor, requester, signup
from heddle.tcf.client import TcfClient
from heddle.tcf.codes import ErrorCode, ReceiptStatus, TcfError
from heddle.tcf.enclave.worker import identity
from heddle.tcf.registry import WORK_ORDER, TcfRegistry
from heddle.tcf.store import SqliteStore
from heddle.tee import VirtualPlatform

CREATOR = creator("Org1MSP")


@pytest.fixture(scope="module")
def worker_keys():
    return processor.WorkerKeys.generate()


@pytest.fixture
def store(tmp_path):
    s = SqliteStore(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture
def registry(store, worker_keys):
    reg = TcfRegistry(store)
    with store.transaction():
        reg.worker_register(signup.register_params(identity(worker_keys), b"{}"))
    return reg


def _tx(namespace: str, writes: dict[str, dict]) -> bytes:
    return tcf_tx(namespace, writes, b'WorkOrderComplete', CREATOR)


_block = tcf_block


class FakeTcfLedger:
    """The bench's GatewayClient for the ``tcf`` chaincode, over a real TcfRegistry."""

    def __init__(self, registry, store, keys, *, blocks: bool = True, tamper: bool = False, delay=0.01):
        self.registry = registry
        self.store = store
        self.keys = keys
        self.pool = ThreadPoolExecutor(2)
        self.with_blocks = blocks
        self.tamper = tamper
        self.delay = delay
        self.height = 1
        self.subscribers: list[asyncio.Queue] = []
        self.calls: list[str] = []
        self.in_flight = 0
        self.peak = 0

    async def evaluate(self, args, timeout):
        method, params = args[0].decode(), json.loads(args[1])
        self.calls.append(method)
        handlers = {
            "WorkerLookUp": self.registry.worker_lookup,
            "WorkerRetrieve": self.registry.worker_retrieve,
            "WorkOrderGetResult": self.registry.work_order_get_result,
        }
        try:
            result = handlers[method](params)
        except TcfError as exc:  # the shape of the gateway's error text, as _rpc_error builds it
            raise TxError(
                f"evaluate: UNKNOWN: chaincode response 500, TCF error {int(exc.code)}: {exc.message} "
                f"[127.0.0.1:7051 (Org2MSP): chaincode response 500, TCF error {int(exc.code)}: "
                f"{exc.message}]"
            ) from None
        if method == "WorkOrderGetResult" and self.tamper:
            result = copy.deepcopy(result)
            result["workerSignature"] = self.keys.sign(b"\x01" * 32)
        return json.dumps(result).encode()

    async def submit(self, args, timeout):
        method, params = args[0].decode(), json.loads(args[1])
        self.calls.append(method)
        assert method == "WorkOrderSubmit"
        with self.store.transaction():
            wo_id = self.registry.work_order_submit(params)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        asyncio.get_running_loop().call_later(self.delay, self._complete, wo_id, params)
        return "tx", self.height

    def _complete(self, wo_id: str, params: dict) -> None:
        self.in_flight -= 1
        outcome = {"result": processor.process(self.keys, copy.deepcopy(params))}
        with self.store.transaction():
            self.registry.complete_work_order(
                wo_id, outcome, processor.completion_receipt(self.keys, outcome["result"])
            )
        doc = self.registry.work_order(wo_id)
        block = _block(self.height, [(_tx("tcf", {f"{WORK_ORDER}/{wo_id}": doc}), transaction_pb2.VALID)])
        self.height += 1
        for queue in self.subscribers:
            queue.put_nowait(block)

    async def blocks(self, start=None):
        queue: asyncio.Queue = asyncio.Queue()
        self.subscribers.append(queue)
        yield _block(0, [])  # the newest block
        if not self.with_blocks:
            await asyncio.Event().wait()  # a stream that never delivers: only the polls are left
        while True:
            yield await queue.get()


@pytest.fixture
def allow_any_worker(monkeypatch):
    """The registered worker's evidence is a placeholder here; attestation is integration-tested."""
    monkeypatch.setattr(TcfClient, "attest", lambda self, worker: type("A", (), {"measurement": b"\0" * 32}))


@pytest.fixture
def platform(tmp_path):
    return VirtualPlatform.ensure(tmp_path / "platform").directory


def _workload(platform, poll):
    return TcfWorkOrders(platform, measurements=[b"\0" * 32], poll=poll)


def _run(workload, ledger, *, count, concurrency=3, timeout=10.0, warm_timeout=None, then=None):
    """Warm the workload up, call ``then()`` (to break something), run ``count`` operations."""

    async def go():
        await workload.warm_up(ledger, timeout if warm_timeout is None else warm_timeout)
        if then is not None:
            then()
        gen = LoadGenerator(
            ledger, workload, concurrency=concurrency, duration=None, count=count, timeout=timeout
        )
        try:
            await gen.run()
        finally:
            await workload.close()
        return gen

    return asyncio.run(go())


def test_refusals_are_read_from_the_gateway_error_text():
    text = (
        "evaluate: UNKNOWN: chaincode response 500, TCF error 5: Work order is computing. Please query"
        " [127.0.0.1:7051 (Org1MSP): chaincode response 500, TCF error 5: Work order is computing]"
    )
    assert tcf_refusal(text) == (5, "Work order is computing. Please query")
    assert tcf_refusal("endorse: ABORTED: TCF error 4: requesterSignature: bad; 127.0.0.1:1 (x)") == (
        4,
        "requesterSignature: bad",
    )
    assert tcf_refusal("TCF error -32601: no such method") == (-32601, "no such method")
    assert tcf_refusal("commit: MVCC_READ_CONFLICT in block 3") is None


def test_payloads_are_unique_and_of_the_asked_size():
    assert len(tcf_payload(7)) == 64 and len(tcf_payload(123456, 32)) >= 32
    assert len({tcf_payload(i) for i in range(100)}) == 100


def test_finished_work_orders_come_from_valid_completions_only():
    done = _tx("tcf", {f"{WORK_ORDER}/aa": {"status": "completed"}})
    failed = _tx("tcf", {f"{WORK_ORDER}/bb": {"status": "failed"}})
    pending = _tx("tcf", {f"{WORK_ORDER}/cc": {"status": "pending"}})
    conflict = _tx("tcf", {f"{WORK_ORDER}/dd": {"status": "completed"}})
    other = _tx("basic", {f"{WORK_ORDER}/ee": {"status": "completed"}})
    block = _block(
        3,
        [
            (done, transaction_pb2.VALID),
            (failed, transaction_pb2.VALID),
            (pending, transaction_pb2.VALID),
            (conflict, transaction_pb2.MVCC_READ_CONFLICT),
            (other, transaction_pb2.VALID),
        ],
    )
    assert finished_work_orders(block, "tcf") == [("aa", "completed"), ("bb", "failed")]


def test_make_workload_needs_the_platform_for_tcf(tmp_path):
    with pytest.raises(ValueError, match="platform"):
        make_workload("tcf")
    workload = make_workload("tcf", tcf_platform=tmp_path)
    assert isinstance(workload, TcfWorkOrders) and workload.chaincode == "tcf"


def test_work_orders_complete_verified_through_the_block_stream(
    registry, store, worker_keys, allow_any_worker, platform
):
    ledger = FakeTcfLedger(registry, store, worker_keys)
    workload = _workload(platform, 30.0)  # a poll would take 30 s: only blocks can wake them
    gen = _run(workload, ledger, count=9, concurrency=3)
    assert (gen.committed, gen.failed) == (9, 0), gen.errors
    assert ledger.peak == 3
    assert ledger.calls.count("WorkOrderSubmit") == 10  # the warm-up's and nine
    assert ledger.calls.count("WorkOrderGetResult") == 10  # one each: woken by its block
    detail = workload.describe()
    assert detail["worker_id"] == worker_keys.worker_id and detail["pending_polls"] == 0
    assert workload._waiting == {}


def test_without_blocks_the_polls_still_finish_each_work_order(
    registry, store, worker_keys, allow_any_worker, platform
):
    ledger = FakeTcfLedger(registry, store, worker_keys, blocks=False, delay=0.05)
    workload = _workload(platform, 0.02)
    gen = _run(workload, ledger, count=4, concurrency=2)
    assert (gen.committed, gen.failed) == (4, 0), gen.errors
    assert workload.describe()["pending_polls"] > 0


def test_a_result_with_a_bad_worker_signature_is_a_failure_with_its_reason(
    registry, store, worker_keys, allow_any_worker, platform
):
    ledger = FakeTcfLedger(registry, store, worker_keys)
    workload = _workload(platform, 30.0)

    gen = _run(
        workload, ledger, count=3, concurrency=2,
        then=lambda: setattr(ledger, "tamper", True),
    )
    assert (gen.committed, gen.failed) == (0, 3)
    [(reason, n)] = gen.errors.items()
    assert n == 3 and reason.startswith(f"verify: TCF error {int(ErrorCode.INVALID_SIGNATURE)}:")


def test_a_work_order_the_worker_fails_is_a_failure_with_the_workers_error(
    registry, store, worker_keys, allow_any_worker, platform, monkeypatch
):
    ledger = FakeTcfLedger(registry, store, worker_keys)
    workload = _workload(platform, 30.0)

    def refuse(self, wo_id, params):  # the worker answers with a signed error instead of a result
        self.in_flight -= 1
        signed = processor.receipt_update(self.keys, wo_id, ReceiptStatus.FAILED, "")
        with self.store.transaction():
            self.registry.complete_work_order(
                wo_id, {"error": {"code": 9, "message": "no such workload"}}, signed
            )
        doc = self.registry.work_order(wo_id)
        block = _block(self.height, [(_tx("tcf", {f"{WORK_ORDER}/{wo_id}": doc}), transaction_pb2.VALID)])
        self.height += 1
        for queue in self.subscribers:
            queue.put_nowait(block)

    gen = _run(
        workload, ledger, count=2, concurrency=1,
        then=lambda: monkeypatch.setattr(FakeTcfLedger, "_complete", refuse),
    )
    assert gen.failed == 2 and gen.errors == {"result: TCF error 9: no such workload": 2}


def test_no_result_within_the_timeout_is_a_failure(registry, store, worker_keys, allow_any_worker, platform):
    ledger = FakeTcfLedger(registry, store, worker_keys)
    workload = _workload(platform, 0.05)

    gen = _run(
        workload, ledger, count=1, concurrency=1, timeout=0.3, warm_timeout=10.0,
        then=lambda: setattr(ledger, "delay", 60.0),  # the worker never gets to it within the run
    )
    assert gen.errors == {"result: no result within 0.3 s": 1}


def test_data_hashes_match_what_the_worker_echoed(registry, worker_keys):
    """The check behind 'verified': the decrypted echo's hash is the one the worker signed."""
    alice = requester.Requester()
    info = signup.WorkerInfo.from_retrieve(
        worker_keys.worker_id, registry.worker_retrieve({"workerId": worker_keys.worker_id})
    )
    pending = requester.build_work_order(info, "echo", [tcf_payload(1)], alice)
    result = processor.process(worker_keys, copy.deepcopy(pending.params))
    [out] = requester.open_result(pending, result)
    assert out == b"RESULT: " + tcf_payload(1)
    assert result["outData"][0]["dataHash"] == crypto.data_hash(out)


def _tcf_report(**over):
    report = {
        "workload": "tcf",
        "mode": "closed loop, 8 in flight",
        "tps": 3.5,
        "committed": 35,
        "window_s": 10.0,
        "latency_ms": {"p50": 900.0, "p95": 1200.0, "p99": 1300.0, "mean": 950.0, "max": 1400.0},
        "failures": 0,
        "errors": {},
        "cpu_ms_per_tx": {"tcf-worker": 5.0, "enclave@tcf-worker": 4.0, "client": 9.0, "nodes_total": 9.0},
        "crypto_limit_tps": None,
        "ratio": None,
        "ecdsa": {"sign_us": 40.0, "verify_us": 100.0},
        "cores": 2,
    }
    return {**report, **over}


def test_table_says_work_orders_and_not_applicable_for_the_crypto_limit(tmp_path):
    from heddle.bench.report import table, write_json

    text = table(_tcf_report())
    assert "3.5 work orders/s" in text and "CPU ms per work order" in text
    assert "enclave@tcf-worker" in text
    assert [line.split()[-1] for line in text.splitlines() if line.startswith("ratio")] == ["n/a"]
    assert "n/a (defined for the asset workloads)" in text
    write_json(_tcf_report(), tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["crypto_limit_tps"] is None and doc["ratio"] is None
    assert "n/a" not in table(_tcf_report(workload="create", crypto_limit_tps=2000.0, ratio=0.01))


def test_worker_enclaves_are_charged_as_enclave_at_worker(monkeypatch):
    from heddle.bench.runner import node_processes

    kids = {11: [110], 20: [202, 201]}
    monkeypatch.setattr("heddle.bench.runner.children", lambda pid: kids.get(pid, []))
    procs = node_processes({"peer0.org1": 11, "tcf-worker": 20, "tcf-connector": 21})
    assert procs == {
        "peer0.org1": 11,
        "tcf-worker": 20,
        "tcf-connector": 21,
        "chaincode@peer0.org1": 110,
        "enclave@tcf-worker": 201,
        "enclave@tcf-worker#2": 202,
    }


def _heddle_up_folder(tmp_path, pids):
    import os

    peers = [
        {
            "name": f"peer0.org{i}.example.com",
            "mspid": f"Org{i}MSP",
            "address": f"127.0.0.1:{7050 + i}",
            "tlsCA": str(tmp_path / f"ca{i}.pem"),
            "userMSP": str(tmp_path / f"org{i}" / "users" / f"User1@org{i}.example.com" / "msp"),
        }
        for i in (1, 2)
    ]
    (tmp_path / "network.json").write_text(json.dumps({"channel": "mychannel", "peers": peers}))
    me = os.getpid()  # a process that surely runs
    (tmp_path / "pids.json").write_text(json.dumps({name: me for name in pids}))
    return tmp_path


def test_an_existing_network_gives_the_tcf_workload_org2_its_platform_and_the_tcf_pids(tmp_path):
    from heddle.bench.runner import BenchConfig, _external_tcf
    from heddle.cli.bench import _from_heddle_network

    data = _heddle_up_folder(tmp_path, ["orderer.example.com", "tcf-worker", "tcf-connector"])
    config = BenchConfig(workload="tcf")
    _from_heddle_network(config, data)
    assert (config.gateway, config.mspid, config.tcf_data) == ("127.0.0.1:7052", "Org2MSP", data)
    assert {"tcf-worker", "tcf-connector", "orderer.example.com"} <= set(config.pids)
    assert _external_tcf(config) == data.absolute() / "tcf" / "platform"
    asset = BenchConfig(workload="create")
    _from_heddle_network(asset, data)
    assert (asset.gateway, asset.mspid, asset.tcf_data) == ("127.0.0.1:7051", "Org1MSP", None)


def test_an_existing_network_without_the_services_or_its_folder_is_refused(tmp_path):
    from heddle.bench.runner import BenchConfig, _external_tcf
    from heddle.cli.bench import _from_heddle_network

    config = BenchConfig(workload="tcf")
    _from_heddle_network(config, _heddle_up_folder(tmp_path, ["orderer.example.com", "tcf-worker"]))
    with pytest.raises(RuntimeError, match="tcf-connector not running"):
        _external_tcf(config)
    with pytest.raises(ValueError, match="--network"):
        _external_tcf(BenchConfig(workload="tcf", gateway="127.0.0.1:7051"))
