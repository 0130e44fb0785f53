"""Bench results: percentiles, the window, CPU per transaction, the table and the JSON."""

import json
import math

import pytest

from heddle.bench.loadgen import LoadResult, TxSample
from heddle.bench.report import cpu_per_tx, percentile, summarize, table, timeline, write_json
from heddle.bench.runner import node_processes, parse_pids


def test_percentile_is_nearest_rank():
    values = sorted(float(v) for v in range(1, 101))
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert math.isnan(percentile([], 50))


def test_only_transactions_committed_in_the_window_count():
    r = LoadResult(window_start=10.0, window_end=20.0)
    r.samples = [
        TxSample(8.0, 9.5, True),  # before the window
        TxSample(9.0, 11.0, True),  # started before, committed inside: counts
        TxSample(15.0, 16.0, True),
        TxSample(19.0, 21.0, True),  # committed after the window
        TxSample(12.0, 13.0, False, "endorse: ABORTED: boom"),
    ]
    s = summarize(r)
    assert s["committed"] == 2
    assert s["tps"] == pytest.approx(0.2)
    assert s["latency_ms"]["p50"] == pytest.approx(1000.0)
    assert s["latency_ms"]["p99"] == pytest.approx(2000.0)
    assert s["failures"] == 1
    assert s["errors"] == {"endorse: ABORTED: boom": 1}


def test_cpu_per_tx_charges_each_process_and_totals_without_the_client():
    before = {"orderer": 1.0, "peer0": 2.0, "client": 5.0}
    after = {"orderer": 1.5, "peer0": 4.0, "client": 6.0}
    cpu = cpu_per_tx(before, after, committed=500)
    assert cpu["orderer"] == pytest.approx(1.0)
    assert cpu["peer0"] == pytest.approx(4.0)
    assert cpu["client"] == pytest.approx(2.0)
    assert cpu["nodes_total"] == pytest.approx(5.0)


def test_timeline_buckets_commits_per_second():
    samples = [TxSample(0.0, 0.5, True), TxSample(0.0, 1.5, True), TxSample(0.2, 1.7, True)]
    points = timeline(samples, t0=0.0)
    assert [p["tps"] for p in points] == [1.0, 2.0]
    assert points[1]["p50_ms"] == pytest.approx(1500.0)


def _report() -> dict:
    return {
        "workload": "create",
        "mode": "closed loop, 10 in flight",
        "tps": 100.0,
        "committed": 1000,
        "window_s": 10.0,
        "latency_ms": {"p50": 1000.0, "p95": 1500.0, "p99": float("nan"), "mean": 1.0, "max": 2.0},
        "failures": 0,
        "errors": {},
        "cpu_ms_per_tx": {"orderer": 0.5, "peer0": 2.0, "client": 1.0, "nodes_total": 2.5},
        "crypto_limit_tps": 2000.0,
        "ratio": 0.05,
        "ecdsa": {"sign_us": 30.0, "verify_us": 90.0},
        "cores": 2,
    }


def test_table_names_every_process_and_the_ratio():
    text = table(_report())
    assert "peer0" in text and "nodes total" in text and "0.050" in text
    assert "load client (not in total)" in text


def test_json_has_no_nan(tmp_path):
    path = tmp_path / "r.json"
    write_json(_report(), path)
    doc = json.loads(path.read_text())
    assert doc["latency_ms"]["p99"] is None
    assert doc["cpu_ms_per_tx"]["nodes_total"] == 2.5


def test_pid_arguments_and_peer_children_become_processes(monkeypatch):
    assert parse_pids(["orderer=10", "peer0.org1=11"]) == {"orderer": 10, "peer0.org1": 11}
    with pytest.raises(ValueError):
        parse_pids(["orderer"])
    monkeypatch.setattr("heddle.bench.runner.children", lambda pid: [pid * 10] if pid == 11 else [])
    procs = node_processes({"orderer": 10, "peer0.org1": 11})
    assert procs == {"orderer": 10, "peer0.org1": 11, "chaincode@peer0.org1": 110}
