"""Direct mode through real processes: listener, enclave worker (singleton and pool), client."""

import base64
import json
import urllib.request

import pytest
from tcf_tampering import EDIT_IDS, EDITS, Tamper

from heddle.tcf import bundle, crypto, requester
from heddle.tcf.client import DirectTransport, TcfClient
from heddle.tcf.codes import ErrorCode, ReceiptStatus, TcfError
from heddle.tcf.hospitals import Hospital, cleveland_csv, split_records
from heddle.tcf.processes import TcfNode
from heddle.tcf.story import EXAMPLES, allowed_measurements, heart_disease_story
from heddle.tee import AttestationError, VerificationPolicy, VirtualPlatform

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    n = TcfNode(tmp_path_factory.mktemp("tcf"))
    n.start_listener()
    n.start_worker()
    yield n
    n.stop()


@pytest.fixture(scope="module")
def verifiers(node):
    return [VirtualPlatform(node.platform).verifier()]


@pytest.fixture(scope="module")
def policy():
    return VerificationPolicy.development(allowed_measurements())


@pytest.fixture(scope="module")
def client(node, policy, verifiers):
    return TcfClient(DirectTransport(node.url), policy=policy, verifiers=verifiers)


def test_heart_disease_examples_end_to_end_with_receipts(client):
    worker = client.select_worker()
    assert worker[1].measurement == bundle.measurement("worker")
    for example, expected in zip(EXAMPLES, ("47%", "71%"), strict=True):
        outcome = client.run("heart-disease-eval", [example.encode()], worker=worker)
        assert outcome.text() == f"You have a {expected} risk of heart disease"
        assert outcome.receipt["receiptCurrentStatus"] == ReceiptStatus.COMPLETED
        assert outcome.receipt_update["updateData"] == crypto.response_hash(outcome.result).hex()


def test_cross_hospital_analytics_releases_keys_only_to_allowed_measurements(client, policy, verifiers):
    worker, attestation = client.select_worker()
    shares = split_records(cleveland_csv(), 2)
    a = Hospital("hospital-a", shares[0], policy, verifiers)
    strict = VerificationPolicy.development([b"\x42" * 32])  # allows some other enclave only
    b_strict = Hospital("hospital-b", shares[1], strict, verifiers)
    with pytest.raises(AttestationError, match="not allowed"):
        b_strict.release_key(worker)
    assert b_strict.released_to == []
    b = Hospital("hospital-b", shares[1], policy, verifiers)
    published = [a.publish(), b.publish()]
    assert all(b"63.0,1.0" not in base64.b64decode(d.data) for d in published)
    outcome = client.run(
        "cross-hospital-analytics",
        [a.release_key(worker), b.release_key(worker)],
        worker=(worker, attestation),
    )
    summary = json.loads(outcome.outputs[0])
    assert summary["rows_per_dataset"] == [151, 146] and summary["test_accuracy"] > 0.7
    assert a.released_to == b.released_to == [worker.worker_id]


def test_client_refuses_a_worker_whose_measurement_is_not_allowed(node, verifiers):
    other = TcfClient(
        DirectTransport(node.url), policy=VerificationPolicy.development([b"\x01" * 32]), verifiers=verifiers
    )
    with pytest.raises(LookupError, match="not allowed"):
        other.select_worker()
    worker_id = other.lookup_workers()[0]
    with pytest.raises(AttestationError, match="not allowed"):
        other.select_worker(worker_id)


@pytest.mark.parametrize("edit", EDITS, ids=EDIT_IDS)
def test_client_rejects_tampered_results_and_bad_worker_signatures(node, policy, verifiers, edit):
    c = TcfClient(Tamper(DirectTransport(node.url), edit), policy=policy, verifiers=verifiers)
    with pytest.raises(TcfError) as exc:
        c.run("echo", [b"hello"])
    assert exc.value.code == ErrorCode.INVALID_SIGNATURE


def _post(url, body: bytes):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
        return json.loads(r.read())


def test_malformed_json_rpc_gets_spec_codes_and_the_listener_keeps_serving(node, client):
    worker, _ = client.select_worker()
    good = requester.build_work_order(worker, "echo", [b"x"], client.requester).params
    wrong_hex = dict(good, workOrderId="zz" * 16)
    bad_sig = dict(good, requesterSignature=crypto.sign_hash(crypto.generate_signing_key(), b"\0" * 32))
    no_field = {k: v for k, v in good.items() if k != "encryptedSessionKey"}
    ill_typed = dict(good, inData="not a list")
    cases = (
        [
            (b"{this is not json", -32700),
            (b'"a string"', -32600),
            (
                json.dumps({"jsonrpc": "2.0", "id": 1, "method": "NoSuchMethod", "params": {}}).encode(),
                -32601,
            ),
        ]
        + [
            (json.dumps({"jsonrpc": "2.0", "id": 2, "method": "WorkOrderSubmit", "params": p}).encode(), c)
            for p, c in ((wrong_hex, 2), (bad_sig, 4), (no_field, 2), (ill_typed, 2))
        ]
        + [
            (
                json.dumps(
                    {"jsonrpc": "2.0", "id": 3, "method": "WorkerRetrieve", "params": {"workerId": 5}}
                ).encode(),
                2,
            ),
            (
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": 4,
                        "method": "EncryptionKeySet",
                        "params": {"workerId": worker.worker_id},
                    }
                ).encode(),
                3,
            ),
        ]
    )
    for body, expected in cases:
        reply = _post(node.url, body)
        assert reply["error"]["code"] == expected, (body[:80], reply)
    assert (
        worker.worker_id
        in _post(
            node.url, json.dumps({"jsonrpc": "2.0", "id": 9, "method": "WorkerLookUp", "params": {}}).encode()
        )["result"]["ids"]
    )
    assert client.run("echo", [b"still serving"], worker=client.select_worker()).outputs == [
        b"RESULT: still serving"
    ]


def test_queued_work_survives_killing_the_worker_and_the_listener(node, client):
    worker = client.select_worker()
    node.worker.kill()  # SIGKILL: the host and its enclave
    pending = client.submit(worker[0], "heart-disease-eval", [EXAMPLES[1].encode()])
    with pytest.raises(TcfError) as exc:
        client.transport.call("WorkOrderGetResult", {"workOrderId": pending.work_order_id})
    assert exc.value.code == ErrorCode.PENDING
    node.listener.kill()
    node.start_listener()
    node.start_worker()  # same sealed keys: same worker id, finishes the queue
    result = client.wait_result(pending, timeout=60)
    assert requester.open_result(pending, result) == [b"You have a 71% risk of heart disease"]
    assert client.receipt(pending)[0]["receiptCurrentStatus"] == ReceiptStatus.COMPLETED


def test_cli_submits_a_work_order_and_shows_the_verified_result(node, capsys):
    import argparse

    from heddle.cli import tcf

    parser = argparse.ArgumentParser()
    tcf.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "tcf",
            "workorder",
            "submit",
            "--workload",
            "heart-disease-eval",
            "--in",
            EXAMPLES[0],
            "--uri",
            node.url,
            "--platform",
            str(node.platform),
        ]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "You have a 47% risk of heart disease" in out and "signature     verified" in out


def test_plaintext_inputs_results_and_records_never_reach_the_hosts_disk_or_logs(node, client):
    outcome = client.run("heart-disease-eval", [b"Patient Zed: 61 1 4 140 207 0 2 138 1 1.9 1 1 7 1"])
    secrets = [b"Patient Zed", b"61 1 4 140 207", outcome.outputs[0], b"63.0,1.0,1.0,145.0,233.0"]
    files = [p for p in node.root.rglob("*") if p.is_file() and "platform" not in p.parts]
    assert any(p.name.startswith("tcf.sqlite") for p in files)
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, (path.name, secret)


def test_the_story_tells_the_heart_disease_demo_in_steps(node):
    lines = []
    summary = heart_disease_story(node.url, str(node.platform), say=lines.append)
    assert summary["risks"] == [
        "You have a 47% risk of heart disease",
        "You have a 71% risk of heart disease",
    ]
    assert summary["analytics"]["test_accuracy"] > 0.7
    assert [line[:2] for line in lines if line[0].isdigit()] == ["1.", "2.", "3.", "4.", "5.", "6."]
