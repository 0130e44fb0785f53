"""The trusted-compute services of ``heddle up``: listener, singleton worker, connector.

``start_tcf_services(net, data_dir)`` deploys the ``tcf`` chaincode (once), then starts
three processes sharing ``DATA/tcf/store`` (the direct-mode registry and work queue):

* ``tcf-listener``: the JSON-RPC listener (direct mode), localhost:1947 by default;
* ``tcf-worker``: a singleton worker in a virtual enclave on the platform ``DATA/tcf/platform``;
* ``tcf-connector``: proxy mode; follows the ledger as Org1's User1, feeds the worker,
  writes results back.

Their pids join the network's in ``DATA/pids.json`` (``heddle.network.pidfile``), so
``heddle down`` stops them too; ``stop_tcf_services`` stops only them.
Logs: ``DATA/logs/tcf-*.log``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from heddle.network import pidfile
from heddle.network.local import LocalNetwork

CHAINCODE = "tcf"
DEFAULT_BIND = "localhost:1947"
SERVICES = ("tcf-listener", "tcf-worker", "tcf-connector")


@dataclass
class TcfServices:
    """What ``start_tcf_services`` started: where to reach it and the processes."""

    data: Path
    url: str
    store: Path
    platform: Path
    chaincode: str = CHAINCODE
    pids: dict[str, int] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        return {
            "listener": self.url,
            "chaincode": self.chaincode,
            "store": str(self.store),
            "platform": str(self.platform),
            "pids": dict(self.pids),
        }


def tcf_paths(data_dir: str | Path) -> tuple[Path, Path]:
    """(store, platform) directories of an installation's trusted-compute services."""
    root = Path(data_dir).absolute() / "tcf"
    return root / "store", root / "platform"


def running_services(data_dir: str | Path) -> dict[str, int]:
    """The trusted-compute processes of ``data_dir`` that still run."""
    return {k: v for k, v in pidfile.running(data_dir).items() if k in SERVICES}


def _spawn(data: Path, name: str, args: list[str], ready: str, timeout: float) -> subprocess.Popen:
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    start = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while ready not in log_path.read_bytes()[start:].decode(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            tail = log_path.read_bytes()[start:].decode(errors="replace")[-2000:]
            raise RuntimeError(f"{name} did not start (log {log_path}):\n{tail}")
        time.sleep(0.05)
    return proc


def _committed(net: LocalNetwork, name: str) -> bool:
    try:
        return net.committed_sequence(name) > 0
    except Exception:
        return False


def _plan(data: Path, name: str, bind: str, org: int, user: str) -> tuple[list[str], str]:
    store, platform = tcf_paths(data)
    if name == "tcf-listener":
        return ["heddle.tcf.listener", "--bind", bind, "--data", str(store)], "TCF listener on"
    if name == "tcf-worker":
        return ["heddle.tcf.worker_host", "--data", str(store), "--platform", str(platform)], " ready\n"
    if name == "tcf-connector":
        args = ["heddle.tcf.connector", "--network", str(data), "--data", str(store)]
        return [*args, "--org", str(org), "--user", user, "--chaincode", CHAINCODE], "TCF connector ready"
    raise ValueError(f"unknown trusted-compute service {name!r} (one of {', '.join(SERVICES)})")


def start_service(
    data_dir: str | Path,
    name: str,
    *,
    bind: str = DEFAULT_BIND,
    org: int = 1,
    user: str = "User1",
    timeout: float = 90.0,
) -> int:
    """Start one service (e.g. restart ``tcf-connector`` after a crash); returns its pid,
    recorded in pids.json. It resumes from the state in ``DATA/tcf/store``."""
    data = Path(data_dir).absolute()
    if name in running_services(data):
        raise RuntimeError(f"{name} already runs from {data}")
    tcf_paths(data)[0].mkdir(parents=True, exist_ok=True)
    args, ready = _plan(data, name, bind, org, user)
    proc = _spawn(data, name, args, ready, timeout)
    pidfile.record(data, {name: proc.pid})
    return proc.pid


def start_tcf_services(
    net: LocalNetwork,
    data_dir: str | Path,
    *,
    bind: str = DEFAULT_BIND,
    org: int = 1,
    user: str = "User1",
    timeout: float = 90.0,
) -> TcfServices:
    """Deploy ``tcf`` if needed and start the listener, a singleton worker and the connector."""
    data = Path(data_dir).absolute()
    running = running_services(data)
    if running:
        raise RuntimeError(f"trusted-compute services already run from {data} ({', '.join(sorted(running))})")
    store, platform = tcf_paths(data)
    if not _committed(net, CHAINCODE):
        from heddle.tcf.chaincode_package import write_chaincode

        net.deploy_chaincode(CHAINCODE, str(write_chaincode(data / "tcf" / "chaincode")))
    host, _, port = bind.rpartition(":")
    services = TcfServices(data, f"http://{host}:{port}/", store, platform)
    try:
        for name in SERVICES:
            services.pids[name] = start_service(data, name, bind=bind, org=org, user=user, timeout=timeout)
    except BaseException:
        stop_tcf_services(data)
        raise
    return services


def stop_tcf_services(data_dir: str | Path, timeout: float = 15.0) -> list[str]:
    """Stop the trusted-compute processes of ``data_dir`` (SIGTERM, then SIGKILL); the
    network keeps running. Returns the names stopped. (The worker host stops its enclaves.)"""
    return pidfile.stop(Path(data_dir).absolute(), names=SERVICES, timeout=timeout)


__all__ = [
    "CHAINCODE",
    "DEFAULT_BIND",
    "SERVICES",
    "TcfServices",
    "running_services",
    "start_service",
    "start_tcf_services",
    "stop_tcf_services",
    "tcf_paths",
]
