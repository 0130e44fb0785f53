"""Results of a bench run: the numbers, a readable table, JSON and a PNG plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

from heddle.bench.loadgen import LoadResult, TxSample


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values; NaN when empty."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(result: LoadResult) -> dict:
    """tps, latency and failures of the transactions that ended in the measurement window."""
    window = max(result.window_end - result.window_start, 1e-9)
    ok = [s for s in result.in_window() if s.ok]
    latencies = sorted((s.end - s.start) * 1000 for s in ok)
    failed = [s for s in result.samples if not s.ok]
    errors: dict[str, int] = {}
    for s in failed:
        kind = s.error.split(" in block")[0][:300]
        errors[kind] = errors.get(kind, 0) + 1
    return {
        "tps": len(ok) / window,
        "committed": len(ok),
        "window_s": window,
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "mean": sum(latencies) / len(latencies) if latencies else float("nan"),
            "max": latencies[-1] if latencies else float("nan"),
        },
        "failures": len(failed),
        "errors": errors,
        "started": len(result.samples),
    }


def cpu_per_tx(before: dict[str, float], after: dict[str, float], committed: int) -> dict[str, float]:
    """CPU milliseconds per committed transaction for each process, and ``nodes_total``
    (every process except ``client``)."""
    out: dict[str, float] = {}
    n = max(committed, 1)
    for name, start in before.items():
        if name in after:
            out[name] = (after[name] - start) * 1000 / n
    out["nodes_total"] = sum(v for k, v in out.items() if k != "client" and not math.isnan(v))
    return out


def timeline(samples: list[TxSample], t0: float, bucket: float = 1.0) -> list[dict]:
    """Per ``bucket`` seconds (by commit time, from ``t0``): committed tps and latency p50/p99."""
    buckets: dict[int, list[float]] = {}
    failures: dict[int, int] = {}
    for s in samples:
        b = int((s.end - t0) // bucket)
        if s.ok:
            buckets.setdefault(b, []).append((s.end - s.start) * 1000)
        else:
            failures[b] = failures.get(b, 0) + 1
    if not buckets and not failures:
        return []
    last = max([*buckets, *failures])
    out = []
    for b in range(0, last + 1):
        lat = sorted(buckets.get(b, []))
        out.append(
            {
                "t": b * bucket,
                "tps": len(lat) / bucket,
                "p50_ms": percentile(lat, 50),
                "p99_ms": percentile(lat, 99),
                "failures": failures.get(b, 0),
            }
        )
    return out


def _num(value, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


NOT_APPLICABLE = "n/a"


def _units(workload: str) -> tuple[str, str, str]:
    """(what finished in the window, throughput unit, what CPU is charged per)."""
    if workload == "tcf":
        return "work orders verified in window", "work orders/s", "work order"
    if workload == "read":
        return "evaluated in window", "tps", "evaluated tx"
    return "committed in window", "tps", "committed tx"


def table(report: dict) -> str:
    """The run as a few aligned lines a person reads. The crypto limit and the ratio read
    "n/a" when they are not defined for the workload (None: the tcf workload)."""
    lat = report["latency_ms"]
    done, unit, per = _units(report["workload"])
    rows = [
        ("workload", f"{report['workload']} ({report['mode']})"),
        (done, f"{report['committed']:,} in {_num(report['window_s'])} s"),
        ("throughput", f"{_num(report['tps'])} {unit}"),
        (
            "latency p50 / p95 / p99",
            f"{_num(lat['p50'] / 1000, 2)} / {_num(lat['p95'] / 1000, 2)} / {_num(lat['p99'] / 1000, 2)} s",
        ),
        ("failures", f"{report['failures']}"),
    ]
    for kind, n in sorted(report.get("errors", {}).items(), key=lambda kv: -kv[1])[:5]:
        rows.append(("  " + kind, str(n)))
    rows.append((f"CPU ms per {per}", ""))
    for name, v in report["cpu_ms_per_tx"].items():
        if name in ("nodes_total", "client"):
            continue
        rows.append(("  " + name, _num(v, 2)))
    rows.append(("  nodes total", _num(report["cpu_ms_per_tx"]["nodes_total"], 2)))
    if "client" in report["cpu_ms_per_tx"]:
        rows.append(("  load client (not in total)", _num(report["cpu_ms_per_tx"]["client"], 2)))
    e = report.get("ecdsa") or {}
    limit = report.get("crypto_limit_tps")
    rows += [
        ("ECDSA P-256 sign / verify", f"{_num(e.get('sign_us'))} / {_num(e.get('verify_us'))} us (1 core)"),
        (
            "crypto limit",
            f"{_num(limit, 0)} tps on {report['cores']} cores"
            if limit is not None
            else f"{NOT_APPLICABLE} (defined for the asset workloads)",
        ),
        ("ratio tps / crypto limit", _num(report["ratio"], 3) if limit is not None else NOT_APPLICABLE),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def write_json(report: dict, path: str | Path) -> None:
    def clean(v):
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    Path(path).write_text(json.dumps(clean(report), indent=2) + "\n")


def plot(report: dict, path: str | Path) -> None:
    """Throughput and latency (p50, p99) per second over the run, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, unit, per = _units(report["workload"])
    tcf = report["workload"] == "tcf"
    points = report.get("timeline", [])
    t = [p["t"] for p in points]
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
    ax1.plot(
        t,
        [p["tps"] for p in points],
        color="tab:blue",
        label="verified work orders/s" if tcf else "committed tps",
    )
    ax1.axhline(report["tps"], color="tab:blue", linestyle="--", linewidth=0.8, label="window mean")
    ax1.set_ylabel("work orders / s" if tcf else "transactions / s")
    ax1.legend(loc="upper left")
    ws, we = report.get("window_offsets_s", (None, None))
    for ax in (ax1, ax2):
        if ws is not None:
            ax.axvspan(ws, we, color="0.92", zorder=0)
    ax2.plot(t, [_nan(p["p50_ms"]) / 1000 for p in points], color="tab:green", marker=".", label="p50")
    ax2.plot(t, [_nan(p["p99_ms"]) / 1000 for p in points], color="tab:red", marker=".", label="p99")
    ax2.set_ylabel("latency (s)")
    ax2.set_xlabel("seconds since start (shaded: measurement window)")
    ax2.legend(loc="upper left")
    fig.suptitle(
        f"heddle bench: {report['workload']}, {report['mode']}: {report['tps']:.1f} {unit}, "
        f"{report['cpu_ms_per_tx']['nodes_total']:.1f} ms CPU per {per}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _nan(v):
    return float("nan") if v is None else v
