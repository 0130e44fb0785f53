"""Workloads over asset-transfer-basic, as Caliper's fabric benchmarks run them.

- ``create``: blind writes, CreateAsset of a new asset each time (about 105 bytes of JSON);
- ``transfer``: read-modify-write, TransferAsset of preloaded assets; an asset is used by
  one transaction at a time, so no two in flight conflict (MVCC failures would be the
  benchmark's fault, not the ledger's);
- ``read``: queries, ReadAsset through Evaluate (no ordering, no commit).

Trusted-compute work orders will be a fourth workload once the proxy mode lands.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque

WORKLOADS = ("create", "transfer", "read")

_COLORS = ("blue", "red", "green", "yellow", "black", "white")
_OWNERS = (
    "Tomoko Hayashi",
    "Brad Donovan",
    "Jin Soo Park",
    "Max Mustermann",
    "Adriana Silva",
    "Michel Dupont",
)


def asset_args(asset_id: str, i: int) -> list[bytes]:
    """CreateAsset arguments; the stored JSON is about 105 bytes, as in Fabric's reference run."""
    return [
        b"CreateAsset",
        asset_id.encode(),
        _COLORS[i % len(_COLORS)].encode(),
        str(5 + i % 20).encode(),
        _OWNERS[i % len(_OWNERS)].encode(),
        str(1000 + i % 9000).encode(),
    ]


class Workload:
    """One kind of transaction; ``run_one`` does one (raises TxError if it fails)."""

    name = ""
    submits = True  # orders and commits (False: evaluate only)

    def __init__(self, prefix: str | None = None):
        self.prefix = prefix or f"bench-{os.urandom(4).hex()}"
        self.next = 0

    def new_id(self) -> tuple[str, int]:
        i = self.next
        self.next += 1
        return f"{self.prefix}-{i}", i

    async def prepare(self, client, concurrency: int, progress=None) -> None:
        """Set up state the workload needs (preloaded assets), before measuring."""

    async def run_one(self, client, timeout: float) -> None:
        raise NotImplementedError


class CreateAssets(Workload):
    name = "create"

    async def run_one(self, client, timeout: float) -> None:
        asset_id, i = self.new_id()
        await client.submit(asset_args(asset_id, i), timeout)


async def _preload(client, ids: list[str], concurrency: int, progress=None) -> None:
    queue = deque(enumerate(ids))
    done = 0

    async def worker():
        nonlocal done
        while queue:
            i, asset_id = queue.popleft()
            await client.submit(asset_args(asset_id, i), 120.0)
            done += 1
            if progress:
                progress(done, len(ids))

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(ids))))))


class TransferAssets(Workload):
    """TransferAsset over ``assets`` preloaded assets (default: twice the concurrency)."""

    name = "transfer"

    def __init__(self, prefix: str | None = None, assets: int | None = None):
        super().__init__(prefix)
        self.assets = assets
        self.free: deque[str] = deque()
        self._available = asyncio.Condition()

    async def prepare(self, client, concurrency: int, progress=None) -> None:
        n = self.assets or 2 * concurrency
        ids = [f"{self.prefix}-{i}" for i in range(n)]
        await _preload(client, ids, concurrency, progress)
        self.free.extend(ids)

    async def run_one(self, client, timeout: float) -> None:
        async with self._available:
            await self._available.wait_for(lambda: bool(self.free))
            asset_id = self.free.popleft()
        i = self.next
        self.next += 1
        try:
            await client.submit([b"TransferAsset", asset_id.encode(), _OWNERS[i % 6].encode()], timeout)
        finally:
            async with self._available:
                self.free.append(asset_id)
                self._available.notify()


class ReadAssets(Workload):
    """ReadAsset through Evaluate over ``assets`` preloaded assets (default 100)."""

    name = "read"
    submits = False

    def __init__(self, prefix: str | None = None, assets: int | None = None):
        super().__init__(prefix)
        self.assets = assets or 100
        self.ids: list[str] = []

    async def prepare(self, client, concurrency: int, progress=None) -> None:
        self.ids = [f"{self.prefix}-{i}" for i in range(self.assets)]
        await _preload(client, self.ids, concurrency, progress)

    async def run_one(self, client, timeout: float) -> None:
        i = self.next
        self.next += 1
        await client.evaluate([b"ReadAsset", self.ids[i % len(self.ids)].encode()], timeout)


def make_workload(name: str, assets: int | None = None) -> Workload:
    if name == "create":
        return CreateAssets()
    if name == "transfer":
        return TransferAssets(assets=assets)
    if name == "read":
        return ReadAssets(assets=assets)
    raise ValueError(f"unknown workload {name!r}; choose one of {', '.join(WORKLOADS)}")
