"""CPU time of processes, from /proc, to charge each node its CPU per transaction."""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used (Linux /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after the command name: state is field 3, utime 14 and stime 15 (1-based in proc(5))
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS


def children(pid: int) -> list[int]:
    """Direct children of a process (chaincode processes a peer started, for instance)."""
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return out


@dataclass
class CpuMeter:
    """Samples named processes at the start and end of a measurement window."""

    pids: dict[str, int]

    def sample(self) -> dict[str, float]:
        out = {}
        for name, pid in self.pids.items():
            try:
                out[name] = cpu_seconds(pid)
            except OSError:
                out[name] = float("nan")
        return out
