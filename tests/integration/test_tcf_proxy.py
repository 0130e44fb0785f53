"""Proxy mode through real processes: a network with the ``tcf`` chaincode, a worker host and
the connector as started by ``heddle up`` (start_tcf_services), and clients on the ledger."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from network_helpers import make_network
from tcf_tampering import EDIT_IDS, EDITS, Tamper

from heddle.common.ports import free_port
from heddle.network.local import LocalNetwork
from heddle.network.tcf_services import (
    running_services,
    start_service,
    start_tcf_services,
    stop_tcf_services,
    tcf_paths,
)
from heddle.tcf import crypto, requester
from heddle.tcf.client import DirectTransport, RpcError, TcfClient
from heddle.tcf.codes import ErrorCode, ReceiptStatus, TcfError
from heddle.tcf.connector import Checkpoint, work_order_history
from heddle.tcf.hospitals import Hospital, cleveland_csv, split_records
from heddle.tcf.proxy import LedgerTransport
from heddle.tcf.store import SqliteStore
from heddle.tcf.story import EXAMPLES, allowed_measurements, ledger_story
from heddle.tee import AttestationError, VerificationPolicy, VirtualPlatform

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    network = make_network(tmp_path_factory, "tcfproxy", batch_timeout="250ms", max_message_count=50)
    network.generate()
    try:
        network.start()
        network.join()
        services = start_tcf_services(network, network.data, bind=f"127.0.0.1:{free_port()}")
    except Exception:
        network.stop()
        raise
    network.tcf = services
    yield network
    stopped = stop_tcf_services(network.data)
    network.stop()
    assert "tcf-worker" in stopped and not running_services(network.data)


@pytest.fixture(scope="module")
def verifiers(net):
    return [VirtualPlatform(tcf_paths(net.data)[1]).verifier()]


@pytest.fixture(scope="module")
def policy():
    return VerificationPolicy.development(allowed_measurements())


@pytest.fixture(scope="module")
def ledger(net):
    with LedgerTransport.connect(net.data, org=1) as transport:  # Org2's User1: a requester
        yield transport


@pytest.fixture(scope="module")
def client(ledger, policy, verifiers):
    return TcfClient(ledger, policy=policy, verifiers=verifiers)


def test_services_are_recorded_for_heddle_down_and_serve_direct_mode_too(net, policy, verifiers):
    pids = LocalNetwork.running_pids(net.data)
    assert {"tcf-listener", "tcf-worker", "tcf-connector"} <= set(pids)
    direct = TcfClient(DirectTransport(net.tcf.url), policy=policy, verifiers=verifiers)
    outcome = direct.run("heart-disease-eval", [EXAMPLES[1].encode()])
    assert outcome.text() == "You have a 71% risk of heart disease"


def test_ledger_story_end_to_end_with_receipts_and_ciphertext_only(net, ledger):
    lines: list[str] = []
    summary = ledger_story(ledger, str(tcf_paths(net.data)[1]), say=lines.append)
    assert summary["risks"] == [
        "You have a 47% risk of heart disease",
        "You have a 71% risk of heart disease",
    ]
    assert summary["analytics"]["rows_per_dataset"] == [151, 146]
    assert summary["analytics"]["test_accuracy"] > 0.7
    assert summary["leaked"] == 0
    assert any("Org1MSP" in line for line in lines)
    receipt = ledger.call("WorkOrderReceiptRetrieve", {"workOrderId": summary["work_order_id"]})
    assert receipt["receiptCurrentStatus"] == ReceiptStatus.COMPLETED
    # the datasets on the ledger are ciphertext whose hash the record carries
    doc = ledger.dataset("hospital-a")
    assert crypto.data_hash(base64.b64decode(doc["data"])) == doc["ciphertext_hash"]
    assert b"63.0,1.0" not in base64.b64decode(doc["data"])
    assert set(doc) == {"owner", "data", "iv", "data_hash", "ciphertext_hash", "publisher"}


def test_only_the_workers_ledger_identity_may_complete_or_update_it(net, client, ledger):
    worker, attestation = client.select_worker()
    outcome = client.run("echo", [b"hello"], worker=(worker, attestation))
    assert outcome.outputs == [b"RESULT: hello"]
    assert ledger.worker_ledger_identity(worker.worker_id)["mspid"] == "Org1MSP"
    forged = {"result": outcome.result}
    with pytest.raises(RpcError) as info:  # Org2 replays the worker's own valid result
        ledger.complete(outcome.work_order_id, forged, outcome.receipt_update)
    assert info.value.code == ErrorCode.ACCESS_DENIED
    with pytest.raises(RpcError) as info:
        ledger.call("WorkerSetStatus", {"workerId": worker.worker_id, "status": 4})
    assert info.value.code == ErrorCode.ACCESS_DENIED
    with LedgerTransport.connect(net.data, org=0) as worker_side:  # the connector's identity
        assert ledger.worker_ledger_identity(worker.worker_id) == worker_side.identity()
        with pytest.raises(RpcError, match="already finished") as info:
            worker_side.complete(outcome.work_order_id, forged, outcome.receipt_update)
    assert info.value.code == ErrorCode.INVALID_PARAMETER


@pytest.mark.parametrize("edit", EDITS, ids=EDIT_IDS)
def test_proxy_client_rejects_tampered_results_and_bad_worker_signatures(ledger, policy, verifiers, edit):
    c = TcfClient(Tamper(ledger, edit), policy=policy, verifiers=verifiers)
    with pytest.raises(TcfError) as exc:
        c.run("echo", [b"hello"])
    assert exc.value.code == ErrorCode.INVALID_SIGNATURE


def test_disallowed_measurement_gets_no_work_and_no_hospital_key(client, ledger, verifiers):
    other = TcfClient(ledger, policy=VerificationPolicy.development([b"\x01" * 32]), verifiers=verifiers)
    with pytest.raises(LookupError, match="not allowed"):
        other.select_worker()
    worker, _ = client.select_worker()
    strict = Hospital(
        "hospital-strict",
        split_records(cleveland_csv(), 2)[0],
        VerificationPolicy.development([b"\x42" * 32]),
        verifiers,
    )
    with pytest.raises(AttestationError, match="not allowed"):
        strict.release_key(worker)
    assert strict.released_to == []


def test_connector_killed_with_work_orders_in_flight_completes_each_exactly_once(net, client, ledger):
    store_dir, _ = tcf_paths(net.data)
    checkpoint = Checkpoint(SqliteStore(store_dir))
    before = checkpoint.counts()
    worker = client.select_worker()[0]

    def submit(i: int):
        return client.submit(worker, "heart-disease-eval", [EXAMPLES[i % 2].encode()], create_receipt=False)

    with ThreadPoolExecutor(5) as pool:
        first = list(pool.map(submit, range(5)))
        deadline = time.monotonic() + 30
        while checkpoint.counts().get("queued", 0) == before.get("queued", 0):  # the connector took one
            assert time.monotonic() < deadline, "the connector took no work order"
            time.sleep(0.01)
        os.killpg(net.tcf.pids["tcf-connector"], signal.SIGKILL)
        at_kill = checkpoint.counts()
        second = list(pool.map(submit, range(5, 8)))  # submitted while the connector is down
    completed_at_kill = at_kill.get("forwarded", 0) - before.get("forwarded", 0)
    assert completed_at_kill < len(first)  # some work orders were in flight when it died
    resume_from = checkpoint.last_block() + 1
    log = net.data / "logs" / "tcf-connector.log"
    start = log.stat().st_size
    net.tcf.pids["tcf-connector"] = start_service(net.data, "tcf-connector")
    assert f"from block {resume_from}" in log.read_bytes()[start:].decode()  # resumed at its checkpoint
    for pending in first + second:
        result = client.wait_result(pending, timeout=60)
        assert requester.open_result(pending, result) in (
            [b"You have a 47% risk of heart disease"],
            [b"You have a 71% risk of heart disease"],
        )
    history = work_order_history(ledger)
    for pending in first + second:
        completions = [w for w in history[pending.work_order_id] if w.status == "completed"]
        assert len(completions) == 1, (pending.work_order_id, completions)
    deadline = time.monotonic() + 20
    while checkpoint.counts().get("queued"):
        assert time.monotonic() < deadline, checkpoint.counts()
        time.sleep(0.1)


def test_cli_submits_and_retrieves_receipts_in_proxy_mode(net, capsys):
    import argparse

    from heddle.cli import tcf

    parser = argparse.ArgumentParser()
    tcf.register(parser.add_subparsers())
    submit = ["tcf", "workorder", "submit", "--workload", "heart-disease-eval", "--in", EXAMPLES[0]]
    args = parser.parse_args([*submit, "--ledger", str(net.data)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "You have a 47% risk of heart disease" in out and "signature     verified" in out
    wo_id = next(line.split()[-1] for line in out.splitlines() if line.startswith("work order"))
    args = parser.parse_args(["tcf", "receipt", "retrieve", wo_id, "--ledger", str(net.data)])
    assert args.func(args) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["receipt"]["receiptCurrentStatus"] == ReceiptStatus.COMPLETED
    assert shown["lastUpdate"]["updateType"] == ReceiptStatus.COMPLETED


def test_heart_disease_demo_tells_the_story_on_the_running_services(net, capsys):
    from heddle.network.demo_tcf import run_heart_disease_demo

    assert run_heart_disease_demo(net.data) == 0
    out = capsys.readouterr().out
    assert "Using the trusted-compute services running from" in out
    for step in ("1. Find a worker on the ledger", "5. The enclave trains", "7. What the ledger holds"):
        assert step in out
    assert "plaintext patient records or inputs found in blocks: 0" in out
