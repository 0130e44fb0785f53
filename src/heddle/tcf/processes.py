"""Real TCF processes on loopback: a listener and worker hosts sharing a data directory.

Used by the integration tests and usable by demos; each process runs in its own process
group so a test can SIGKILL a worker host together with its enclaves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from heddle.common.ports import free_port


class Proc:
    def __init__(self, args: list[str], log: Path, ready: str, timeout: float = 30.0) -> None:
        self.log = log
        start = log.stat().st_size if log.exists() else 0  # a restart appends to the same log
        self._fh = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, *args], stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while ready not in log.read_bytes()[start:].decode(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{args[1]} did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the whole process group (the worker host and its enclaves)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._fh.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._fh.close()


class TcfNode:
    """A listener and a worker host sharing one data directory."""

    def __init__(self, root: Path, pool: int = 0) -> None:
        self.root = root
        self.data = root / "data"
        self.platform = root / "platform"
        self.pool = pool
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.listener: Proc | None = None
        self.worker: Proc | None = None

    def start_listener(self) -> None:
        self.listener = Proc(
            ["-m", "heddle.tcf.listener", "--bind", f"127.0.0.1:{self.port}", "--data", str(self.data)],
            self.root / "listener.log",
            "TCF listener on",
        )

    def start_worker(self) -> None:
        args = ["-m", "heddle.tcf.worker_host", "--data", str(self.data), "--platform", str(self.platform)]
        if self.pool:
            args += ["--pool", str(self.pool)]
        self.worker = Proc(args, self.root / "worker.log", " ready\n", timeout=60)

    def stop(self) -> None:
        for p in (self.worker, self.listener):
            if p is not None:
                p.stop()
