"""Benchmark the state database backends: ``python -m heddle.ledger.bench_statedb``.

Per backend, in a fresh temporary directory: commit ``--blocks`` blocks of ``--puts``
puts each (random keys from a ``--keys`` keyspace, each with a history entry), then
time point gets, get_many batches (as MVCC validation reads a block's read set) and
range scans of ``--scan`` keys. Seeded, so every backend sees the same workload.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable

from heddle.ledger.history import HistoryEntry
from heddle.ledger.statedb import Height, StateDB, UpdateBatch, open_state_db

NS = "basic"


def _key(i: int) -> str:
    return f"asset{i:08d}"


def _open(backend: str, directory: str) -> StateDB:
    if backend == "sqlite":
        return open_state_db(os.path.join(directory, "state.sqlite"), "sqlite")
    from heddle.ledger.statedb.lmdb_backend import LmdbStateDB

    return LmdbStateDB(os.path.join(directory, "state.lmdb"), sync=backend != "lmdb-nosync")


def _timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(backend: str, args: argparse.Namespace) -> dict[str, float]:
    rng = random.Random(args.seed)
    value = os.urandom(args.value_size)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        db = _open(backend, tmp)
        block_times = []
        for b in range(args.blocks):
            batch = UpdateBatch()
            history = []
            for t in range(args.puts):
                k = _key(rng.randrange(args.keys))
                batch.put(NS, k, value, Height(b, t))
                history.append(HistoryEntry(NS, k, b, t))
            t0 = time.perf_counter()
            db.apply_batch(batch, Height(b, args.puts - 1), history)
            block_times.append(time.perf_counter() - t0)
        keys = [_key(rng.randrange(args.keys)) for _ in range(args.gets)]

        def gets() -> None:
            for k in keys:
                db.get(NS, k)

        def many() -> None:
            for i in range(0, len(keys), args.puts):
                db.get_many(NS, keys[i : i + args.puts])

        starts = [_key(rng.randrange(args.keys)) for _ in range(args.scans)]

        def scans() -> None:
            for s in starts:
                for _ in db.range(NS, s, "", limit=args.scan):
                    pass

        t_get, t_many, t_scan = _timed(gets), _timed(many), _timed(scans)
        db.close()
    block_times.sort()
    total = sum(block_times)
    return {
        "block_ms_mean": 1000 * total / len(block_times),
        "block_ms_p99": 1000 * block_times[int(0.99 * (len(block_times) - 1))],
        "puts_per_s": args.blocks * args.puts / total,
        "get_us": 1e6 * t_get / len(keys),
        "get_many_us_per_key": 1e6 * t_many / len(keys),
        "scan_ms": 1000 * t_scan / len(starts),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--backends",
        default="sqlite,lmdb,lmdb-nosync",
        help="lmdb-nosync: no fsync at all (unsafe on power loss; for comparison only)",
    )
    p.add_argument("--blocks", type=int, default=200)
    p.add_argument("--puts", type=int, default=500)
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--value-size", type=int, default=200)
    p.add_argument("--gets", type=int, default=20_000)
    p.add_argument("--scans", type=int, default=500)
    p.add_argument("--scan", type=int, default=100, help="keys per range scan")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dir", default=None, help="where to create the databases")
    args = p.parse_args(argv)
    print(
        f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
        f"{platform.machine()}, {os.cpu_count()} cpus; blocks={args.blocks} "
        f"puts/block={args.puts} keys={args.keys} value={args.value_size}B"
    )
    cols = ["block_ms_mean", "block_ms_p99", "puts_per_s", "get_us", "get_many_us_per_key",
            "scan_ms"]
    print(f"{'backend':<10}" + "".join(f"{c:>21}" for c in cols))
    for backend in args.backends.split(","):
        try:
            r = bench(backend, args)
        except ImportError as exc:
            print(f"{backend:<10} skipped: {exc}")
            continue
        print(f"{backend:<10}" + "".join(f"{r[c]:>21.2f}" for c in cols))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
