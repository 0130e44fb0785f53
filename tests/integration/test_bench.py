"""A short `heddle bench` run on the default topology: every JSON key there, no failures.

Smoke only: a few seconds and a small K, so no timing is asserted."""

from __future__ import annotations

import json

import pytest

from heddle.bench.__main__ import main

pytestmark = pytest.mark.integration


def test_short_blind_write_run_reports_every_key_and_no_failures(tmp_path):
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    code = main(
        [
            "--duration", "4",
            "--concurrency", "20",
            "--batch-timeout", "200ms",
            "--ecdsa-seconds", "0.2",
            "--output", str(out),
            "--plot", str(png),
            "--data", str(tmp_path / "net"),
            "--quiet",
        ]
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert code == 0
    for key in ("tps", "latency_ms", "failures", "cpu_ms_per_tx", "crypto_limit_tps", "ratio"):
        assert key in report
    assert set(report["latency_ms"]) >= {"p50", "p95", "p99"}
    assert report["failures"] == 0
    assert report["committed"] > 0
    cpu = report["cpu_ms_per_tx"]
    for name in (
        "orderer.example.com",
        "peer0.org1.example.com",
        "peer0.org2.example.com",
        "chaincode@peer0.org1.example.com",
        "chaincode@peer0.org2.example.com",
        "nodes_total",
        "client",
    ):
        assert name in cpu
    assert cpu["nodes_total"] == pytest.approx(
        sum(v for k, v in cpu.items() if k not in ("nodes_total", "client"))
    )
    assert png.stat().st_size > 0
