"""A one-line progress bar for multi-step commands (no dependency needed for this)."""

from __future__ import annotations

import sys
import time


class Steps:
    """Prints ``[####------] 3/7 Joining peers`` as steps start, and how long each took."""

    def __init__(self, total: int, stream=None, width: int = 24):
        self.total = total
        self.done = 0
        self.stream = stream or sys.stdout
        self.width = width
        self._started = time.monotonic()
        self._step_started = self._started
        self._label = ""

    def _bar(self) -> str:
        filled = int(self.width * self.done / max(self.total, 1))
        return "[" + "#" * filled + "-" * (self.width - filled) + "]"

    def start(self, label: str) -> None:
        self._label = label
        self._step_started = time.monotonic()
        self.stream.write(f"{self._bar()} {self.done + 1}/{self.total} {label} ...")
        self.stream.flush()

    def finish(self) -> None:
        self.done += 1
        took = time.monotonic() - self._step_started
        self.stream.write(f" done ({took:.1f}s)\n")
        self.stream.flush()

    def step(self, label: str, fn, *args, **kwargs):
        self.start(label)
        result = fn(*args, **kwargs)
        self.finish()
        return result

    def close(self) -> None:
        total = time.monotonic() - self._started
        self.stream.write(f"{self._bar()} {self.total}/{self.total} ready in {total:.1f}s\n")
        self.stream.flush()
