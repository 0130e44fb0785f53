"""The heart-disease story, told in readable steps (for ``heddle demo heart-disease``).

``heart_disease_story`` (direct mode) assumes a running listener with a registered
worker on a virtual platform. ``ledger_story`` (proxy mode) assumes a network with the
``tcf`` chaincode and a connector feeding a worker; everything goes through ledger
transactions. Both print each step through ``say`` and return a summary dict.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from heddle.tcf import bundle
from heddle.tcf.client import DirectTransport, TcfClient
from heddle.tcf.hospitals import Hospital, cleveland_csv, split_records
from heddle.tee import VerificationPolicy, VirtualPlatform

EXAMPLES = ("25 10 1 67 102 125 1 95 5 10 1 11 36 1", "32 1 1 156 132 125 1 95 1 0 1 1 3 1")


def allowed_measurements() -> list[bytes]:
    """Measurements of heddle's own singleton worker and pool KME bundles."""
    from tempfile import TemporaryDirectory

    from heddle.tcf.worker_host import WorkerPool
    from heddle.tee import expected_measurement

    with TemporaryDirectory() as tmp:
        kme, _ = WorkerPool.applications(tmp)
        return [bundle.measurement("worker"), expected_measurement(kme)]


def _client(transport: Any, platform_dir: str, measurements: list[bytes] | None):
    """A client that trusts only heddle's worker measurements on this virtual platform."""
    verifiers = [VirtualPlatform(platform_dir).verifier()]
    policy = VerificationPolicy.development(measurements or allowed_measurements())
    return TcfClient(transport, policy=policy, verifiers=verifiers), policy, verifiers


def _hospitals(policy, verifiers) -> tuple[list[Hospital], list[bytes]]:
    """Two hospitals holding halves of the Cleveland data, and the halves."""
    shares = split_records(cleveland_csv(), 2)
    names = ("hospital-a", "hospital-b")
    return [Hospital(n, share, policy, verifiers) for n, share in zip(names, shares, strict=True)], shares


def _say_model(summary: dict[str, Any], say: Callable[[str], None]) -> None:
    say(
        f"   held-out accuracy {summary['test_accuracy']:.1%} on {summary['test_rows']} patients "
        f"(training {summary['train_accuracy']:.1%}); rows per hospital {summary['rows_per_dataset']}"
    )
    top = sorted(summary["coefficients"].items(), key=lambda kv: -abs(kv[1]))[:4]
    say("   strongest coefficients: " + ", ".join(f"{k} {v:+.2f}" for k, v in top))


def heart_disease_story(
    url: str,
    platform_dir: str,
    *,
    measurements: list[bytes] | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    client, policy, verifiers = _client(DirectTransport(url), platform_dir, measurements)

    say("1. Look up a worker and verify its attestation against our policy")
    worker, attestation = client.select_worker()
    say(f"   worker {worker.worker_id[:16]}..., measurement {attestation.measurement.hex()[:16]}... verified")

    say("2. Evaluate two patients with heart-disease-eval (inputs encrypted under a fresh session key)")
    risks = []
    for example in EXAMPLES:
        outcome = client.run("heart-disease-eval", [example.encode()], worker=(worker, attestation))
        risks.append(outcome.text())
        say(
            f"   {example} -> {outcome.text()} (signature verified, receipt status "
            f"{outcome.receipt.get('receiptCurrentStatus')})"
        )

    say(
        "3. Two hospitals encrypt their halves of the Cleveland data; "
        "only ciphertexts and hashes are published"
    )
    hospitals, _ = _hospitals(policy, verifiers)
    for h in hospitals:
        d = h.publish()
        say(f"   {h.name}: {len(h.records)} bytes of records -> ciphertext hash {d.ciphertext_hash[:16]}...")

    say("4. Each hospital verifies the worker's attestation under its own policy, then wraps its key to it")
    items = [h.release_key(worker) for h in hospitals]

    say("5. The enclave trains logistic regression over both hospitals' records; only aggregates come back")
    outcome = client.run("cross-hospital-analytics", list(items), worker=(worker, attestation), timeout=120)
    summary = json.loads(outcome.outputs[0])
    _say_model(summary, say)
    say(
        f"6. Receipt for {outcome.work_order_id[:16]}...: "
        f"status {outcome.receipt.get('receiptCurrentStatus')} "
        f"(completed), signed by the worker"
    )
    return {"risks": risks, "analytics": summary, "work_order_id": outcome.work_order_id}


def _short(value: str, n: int = 16) -> str:
    return f"{value[:n]}..."


def ledger_story(
    transport: Any,
    platform_dir: str,
    *,
    measurements: list[bytes] | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The story in proxy mode over ``transport`` (a ``heddle.tcf.proxy.LedgerTransport``)."""
    from heddle.tcf.connector import ledger_blocks, work_order_history
    from heddle.tee import AttestationError

    client, policy, verifiers = _client(transport, platform_dir, measurements)
    me = transport.contract.network.gateway.identity.mspid

    say("1. Find a worker on the ledger and check its attestation before trusting it")
    worker, attestation = client.select_worker()
    owner = transport.worker_ledger_identity(worker.worker_id)
    say(f"   worker {_short(worker.worker_id)} registered on the ledger by {owner['mspid']} (its connector)")
    say(
        f"   enclave measurement {attestation.measurement.hex()} is in our policy; the evidence binds the "
        f"worker's keys and verifies against the platform root of {platform_dir}"
    )

    say(f"2. A clinic ({me}) asks for two patients' risk: inputs are encrypted before they leave it")
    risks = []
    for example in EXAMPLES:
        outcome = client.run("heart-disease-eval", [example.encode()], worker=(worker, attestation))
        risks.append(outcome.text())
        blocks = [tx.block_number for tx in transport.transactions[-2:]]
        say(
            f"   patient '{example[:14]}...' -> {outcome.text()}; submitted in block {blocks[0]}, "
            f"receipt created in block {blocks[1]}"
        )

    say("3. Two hospitals encrypt their halves of the Cleveland data and put only ciphertext on the ledger")
    hospitals, shares = _hospitals(policy, verifiers)
    for h in hospitals:
        d = h.publish()
        transport.publish_dataset(d)
        rows = len(h.records.splitlines()) - 1
        say(
            f"   {h.name}: {rows} patient records -> {len(d.data)} bytes of AES-GCM ciphertext in block "
            f"{transport.transactions[-1].block_number}, ciphertext hash {_short(d.ciphertext_hash)}"
        )

    say("4. Each hospital checks the worker's attestation under its own policy before releasing its key")
    strict = Hospital("hospital-b", shares[1], VerificationPolicy.development([b"\x42" * 32]), verifiers)
    try:
        strict.release_key(worker)
    except AttestationError as exc:
        say(f"   (a hospital whose policy does not allow this measurement releases nothing: {exc})")
    items = [h.release_key(worker) for h in hospitals]
    say("   both policies allow it: each data key is wrapped to the enclave's own encryption key")

    say("5. The enclave trains logistic regression over both hospitals' records; only aggregates leave it")
    outcome = client.run("cross-hospital-analytics", list(items), worker=(worker, attestation), timeout=120)
    summary = json.loads(outcome.outputs[0])
    _say_model(summary, say)

    say("6. Signatures and receipts")
    history = work_order_history(transport)
    done = history[outcome.work_order_id][-1]
    say(
        f"   result signed by worker {_short(worker.worker_id)} (secp256k1), verified; every output's "
        "data hash matches"
    )
    say(
        f"   completed on the ledger in block {done.block} (tx {_short(done.transaction_id)}) by "
        f"{owner['mspid']}, the only identity the contract lets complete this worker's work orders"
    )
    say(
        f"   receipt {_short(outcome.work_order_id)}: status {outcome.receipt.get('receiptCurrentStatus')} "
        f"(completed), update signed by the worker and recording this result's hash"
    )

    say("7. What the ledger holds")
    plain = [line.encode() for h in hospitals for line in h.records.decode().splitlines()[1:4]]
    plain += [e.encode() for e in EXAMPLES]
    leaked = blocks = 0
    for block in ledger_blocks(transport):
        blocks += 1
        raw = block.SerializeToString()
        leaked += sum(1 for p in plain if p in raw)
    completions = sum(1 for writes in history.values() for w in writes if w.status == "completed")
    say(
        f"   {blocks} blocks; {len(history)} work orders, {completions} completions (one each); "
        f"plaintext patient records or inputs found in blocks: {leaked}"
    )
    return {
        "risks": risks,
        "analytics": summary,
        "work_order_id": outcome.work_order_id,
        "leaked": leaked,
        "worker_id": worker.worker_id,
    }


__all__ = ["EXAMPLES", "allowed_measurements", "heart_disease_story", "ledger_story"]
