"""The load generator keeps K in flight, stops on count or duration, and records failures."""

import asyncio

import pytest

from heddle.bench.loadgen import LoadGenerator, TxError
from heddle.bench.workloads import CreateAssets, TransferAssets, asset_args, make_workload


class FakeClient:
    """Commits after ``delay`` seconds; fails every ``fail_every``-th transaction."""

    def __init__(self, delay=0.01, fail_every=0):
        self.delay = delay
        self.fail_every = fail_every
        self.in_flight = 0
        self.peak = 0
        self.calls = []

    async def submit(self, args, timeout):
        self.calls.append(args)
        fail = self.fail_every and len(self.calls) % self.fail_every == 0
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if fail:
            raise TxError("commit: MVCC_READ_CONFLICT in block 3")
        return "tx", 1

    async def evaluate(self, args, timeout):
        return b"{}"


def test_closed_loop_keeps_k_in_flight_and_stops_at_count():
    client = FakeClient()
    gen = LoadGenerator(client, CreateAssets("t"), concurrency=8, duration=None, count=40)
    result = asyncio.run(gen.run())
    assert len(result.samples) == 40
    assert client.peak == 8
    assert gen.committed == 40 and gen.failed == 0
    assert len({c[1] for c in client.calls}) == 40  # every asset id is new


def test_failures_are_counted_with_their_reason():
    client = FakeClient(fail_every=5)
    gen = LoadGenerator(client, CreateAssets("t"), concurrency=4, duration=None, count=20)
    asyncio.run(gen.run())
    assert gen.failed == 4
    assert gen.errors == {"commit: MVCC_READ_CONFLICT": 4}


def test_timed_run_calls_the_window_edges_once():
    edges = []
    gen = LoadGenerator(FakeClient(), CreateAssets("t"), concurrency=4, duration=0.2)
    result = asyncio.run(gen.run(edges.append))
    assert edges == ["start", "end"]
    assert result.window_end - result.window_start == pytest.approx(0.2, abs=0.1)
    assert gen.committed > 0


def test_target_rate_paces_the_load():
    gen = LoadGenerator(FakeClient(), CreateAssets("t"), concurrency=100, rate=50, duration=None, count=10)
    start = asyncio.run(_timed(gen))
    assert start >= 0.15  # 10 transactions at 50/s take about 0.2 s


async def _timed(gen):
    loop = asyncio.get_running_loop()
    t = loop.time()
    await gen.run()
    return loop.time() - t


def test_transfer_never_has_one_asset_in_flight_twice():
    client = FakeClient(delay=0.005)
    workload = TransferAssets("t", assets=4)

    async def go():
        await workload.prepare(client, concurrency=4)
        seen_in_flight = set()

        real = client.submit

        async def submit(args, timeout):
            if args[0] == b"TransferAsset":
                assert args[1] not in seen_in_flight
                seen_in_flight.add(args[1])
                try:
                    return await real(args, timeout)
                finally:
                    seen_in_flight.discard(args[1])
            return await real(args, timeout)

        client.submit = submit
        gen = LoadGenerator(client, workload, concurrency=8, duration=None, count=30)
        await gen.run()
        return gen

    gen = asyncio.run(go())
    assert gen.committed == 30


def test_asset_is_about_105_bytes_of_json():
    import json

    args = asset_args("bench-1a2b3c4d-123456", 7)
    doc = {
        "ID": args[1].decode(),
        "Color": args[2].decode(),
        "Size": int(args[3]),
        "Owner": args[4].decode(),
        "AppraisedValue": int(args[5]),
    }
    size = len(json.dumps(doc, sort_keys=True, separators=(",", ":")))
    assert 95 <= size <= 115


def test_unknown_workload_is_refused():
    assert make_workload("read").name == "read"
    with pytest.raises(ValueError):
        make_workload("mint")
