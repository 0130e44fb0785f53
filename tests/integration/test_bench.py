"""A short `heddle bench` run on the default topology: every JSON key there, no failures.

Smoke only: a few seconds and a small K, so no timing is asserted."""

from __future__ import annotations

import json

import pytest

from heddle.bench.__main__ import main

pytestmark = pytest.mark.integration

NODES = (
    "orderer.example.com",
    "peer0.org1.example.com",
    "peer0.org2.example.com",
    "chaincode@peer0.org1.example.com",
    "chaincode@peer0.org2.example.com",
)
KEYS = ("tps", "latency_ms", "failures", "cpu_ms_per_tx", "crypto_limit_tps", "ratio")


def run(out, data, *args: str) -> tuple[int, dict]:
    """`heddle bench` on a fresh default network with fast blocks; its exit code and JSON."""
    code = main(
        [*args, "--batch-timeout", "200ms", "--ecdsa-seconds", "0.2", "--output", str(out),
         "--data", str(data), "--quiet"]
    )  # fmt: skip
    return code, json.loads(out.read_text())


def assert_total_is_the_nodes_sum(cpu: dict) -> None:
    assert cpu["nodes_total"] == pytest.approx(
        sum(v for k, v in cpu.items() if k not in ("nodes_total", "client"))
    )


def test_short_blind_write_run_reports_every_key_and_no_failures(tmp_path):
    png = tmp_path / "bench.png"
    args = ("--duration", "4", "--concurrency", "20", "--plot", str(png))
    code, report = run(tmp_path / "bench.json", tmp_path / "net", *args)
    assert code == 0
    for key in KEYS:
        assert key in report
    assert set(report["latency_ms"]) >= {"p50", "p95", "p99"}
    assert report["failures"] == 0
    assert report["committed"] > 0
    cpu = report["cpu_ms_per_tx"]
    for name in (*NODES, "nodes_total", "client"):
        assert name in cpu
    assert_total_is_the_nodes_sum(cpu)
    assert png.stat().st_size > 0


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_short_tcf_run_verifies_every_work_order_charges_the_tcf_processes_and_stops_them(tmp_path):
    from heddle.bench.report import table
    from heddle.network import pidfile

    data = tmp_path / "net"
    code, report = run(tmp_path / "tcf.json", data, "--workload", "tcf", "--count", "12", "-k", "4")
    assert code == 0
    assert report["failures"] == 0 and report["errors"] == {}
    assert report["committed"] == 12  # every work order of --count, verified and decrypted
    for key in (*KEYS, "tcf"):
        assert key in report
    assert report["tps"] > 0 and report["latency_ms"]["p50"] > 0
    assert report["crypto_limit_tps"] is None and report["ratio"] is None  # not applicable
    assert report["tcf"]["worker_workload"] == "echo" and len(report["tcf"]["worker_id"]) == 64
    cpu = report["cpu_ms_per_tx"]
    for name in (*NODES, "tcf-listener", "tcf-worker", "tcf-connector", "enclave@tcf-worker"):
        assert name in cpu
    assert cpu["tcf-connector"] > 0  # it submitted twelve completions: some CPU ticks at least
    assert cpu["tcf-worker"] + cpu["enclave@tcf-worker"] > 0
    assert_total_is_the_nodes_sum(cpu)
    assert "n/a" in table(report)
    # everything the bench started is stopped: the nodes, the services, the enclave, the chaincode
    assert set(report["processes"]) >= {"tcf-worker", "enclave@tcf-worker", "tcf-connector"}
    still = {name: pid for name, pid in report["processes"].items() if name != "client" and _alive(pid)}
    assert still == {}
    assert pidfile.running(data) == {}


def test_a_failing_tcf_run_still_stops_the_network_and_the_tcf_services(tmp_path, monkeypatch):
    from heddle.bench.loadgen import TxError
    from heddle.bench.runner import BenchConfig, node_processes, run_bench
    from heddle.bench.workloads import TcfWorkOrders
    from heddle.network import pidfile

    data = tmp_path / "net"
    seen: dict[str, int] = {}

    async def broken_warm_up(self, client, timeout):
        seen.update(node_processes(pidfile.running(data)))
        raise TxError("verify: TCF error 4: a broken worker")

    monkeypatch.setattr(TcfWorkOrders, "warm_up", broken_warm_up)
    config = BenchConfig(
        workload="tcf",
        concurrency=2,
        count=2,
        duration=None,
        data=data,
        batch_timeout="200ms",
        ecdsa_seconds=0.1,
        progress=False,
    )
    with pytest.raises(RuntimeError, match="the first work order failed.*a broken worker"):
        run_bench(config)
    assert {"tcf-worker", "tcf-connector", "enclave@tcf-worker", "peer0.org1.example.com"} <= set(seen)
    assert {name: pid for name, pid in seen.items() if _alive(pid)} == {}
    assert pidfile.running(data) == {}
