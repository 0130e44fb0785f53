"""DATA/pids.json: the processes of a local network, shared by every command that starts or
stops some of them (`heddle up`, the trusted-compute services, `heddle down`).

Each owner records and forgets only its own names, so one never drops another's entries.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path


def _path(data_dir: str | Path) -> Path:
    return Path(data_dir) / "pids.json"


def _read(data_dir: str | Path) -> dict[str, int]:
    path = _path(data_dir)
    return json.loads(path.read_text()) if path.exists() else {}


def _write(data_dir: str | Path, pids: dict[str, int]) -> None:
    path = _path(data_dir)
    if not pids:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(pids, indent=2))
    os.replace(tmp, path)


def record(data_dir: str | Path, pids: dict[str, int]) -> None:
    _write(data_dir, {**_read(data_dir), **pids})


def forget(data_dir: str | Path, names: Iterable[str]) -> None:
    names = set(names)
    _write(data_dir, {k: v for k, v in _read(data_dir).items() if k not in names})


def exited(pid: int) -> bool:
    """True once ``pid`` is gone (reaping it when it is our own child)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return True
    return False


def running(data_dir: str | Path) -> dict[str, int]:
    """Recorded processes that still run."""
    return {name: pid for name, pid in _read(data_dir).items() if not exited(pid)}


def stop(data_dir: str | Path, names: Iterable[str] | None = None, timeout: float = 15.0) -> list[str]:
    """Stop recorded processes (all, or only ``names``): SIGTERM, then SIGKILL to the process
    group after ``timeout``. Returns the names that were running."""
    alive = running(data_dir)
    if names is not None:
        wanted = set(names)
        alive = {k: v for k, v in alive.items() if k in wanted}
    for pid in alive.values():
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    for pid in alive.values():
        while not exited(pid):
            if time.monotonic() > deadline:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
                break
            time.sleep(0.05)
    forget(data_dir, _read(data_dir) if names is None else names)
    return sorted(alive)
