"""The heart-disease story in direct mode, told in readable steps (for ``heddle demo``).

``heart_disease_story`` assumes a running listener with a registered worker on a
virtual platform; it prints each step through ``say`` and returns a summary dict.
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


def heart_disease_story(
    url: str,
    platform_dir: str,
    *,
    measurements: list[bytes] | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    platform = VirtualPlatform(platform_dir)
    verifiers = [platform.verifier()]
    policy = VerificationPolicy.development(measurements or allowed_measurements())
    client = TcfClient(DirectTransport(url), policy=policy, verifiers=verifiers)

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
    shares = split_records(cleveland_csv(), 2)
    hospitals = [
        Hospital(name, share, policy, verifiers)
        for name, share in zip(("hospital-a", "hospital-b"), shares, strict=True)
    ]
    for h in hospitals:
        d = h.publish()
        say(f"   {h.name}: {len(h.records)} bytes of records -> ciphertext hash {d.ciphertext_hash[:16]}...")

    say("4. Each hospital verifies the worker's attestation under its own policy, then wraps its key to it")
    items = [h.release_key(worker) for h in hospitals]

    say("5. The enclave trains logistic regression over both hospitals' records; only aggregates come back")
    outcome = client.run("cross-hospital-analytics", list(items), worker=(worker, attestation), timeout=120)
    summary = json.loads(outcome.outputs[0])
    say(
        f"   held-out accuracy {summary['test_accuracy']:.2%} on {summary['test_rows']} patients; "
        f"rows per hospital {summary['rows_per_dataset']}"
    )
    top = sorted(summary["coefficients"].items(), key=lambda kv: -abs(kv[1]))[:4]
    say("   strongest coefficients: " + ", ".join(f"{k} {v:+.2f}" for k, v in top))
    say(
        f"6. Receipt for {outcome.work_order_id[:16]}...: "
        f"status {outcome.receipt.get('receiptCurrentStatus')} "
        f"(completed), signed by the worker"
    )
    return {"risks": risks, "analytics": summary, "work_order_id": outcome.work_order_id}


__all__ = ["EXAMPLES", "allowed_measurements", "heart_disease_story"]
