"""One bench run end to end: network (started here, or an existing one), ECDSA speed, load,
CPU per process, and the report.

``BenchConfig`` says what to run; ``run_bench`` returns the report dict that ``heddle bench``
prints as a table and writes as JSON and PNG.

The ``tcf`` workload also needs the trusted-compute services of proxy mode: on the network
started here, ``start_tcf_services`` deploys the ``tcf`` chaincode (instead of ``basic``) and
starts the listener, a singleton worker and the connector, and they are stopped with the
network; on an existing network (``tcf_data``) they must run already. Their processes are
charged CPU like the nodes (``tcf-listener``, ``tcf-worker``, ``tcf-connector`` and the
worker's enclave, ``enclave@tcf-worker``) and count in ``nodes_total``: they are platform
processes. The crypto limit (``crypto_limit_tps``, ``ratio``, ``signatures_per_tx``) is
defined for the asset workloads only and is None for ``tcf``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from heddle.bench.cpu import children, cpu_seconds
from heddle.bench.cryptolimit import count_signatures, crypto_limit_tps, measure_ecdsa
from heddle.bench.loadgen import GatewayClient, GatewayTarget, LoadGenerator, TxError, open_channel
from heddle.bench.report import cpu_per_tx, summarize, timeline
from heddle.bench.workloads import Workload, make_workload
from heddle.client.identity import identity_from_msp_dir, signer_from_msp_dir


@dataclass
class BenchConfig:
    workload: str = "create"
    concurrency: int = 1000
    rate: float | None = None
    duration: float | None = 10.0
    count: int | None = None
    warmup: float = 0.0
    timeout: float = 120.0
    assets: int | None = None
    # the network: started here (data is None: a temporary folder) or an existing one
    data: Path | None = None
    keep: bool = False
    batch_timeout: str = "2s"
    max_message_count: int = 500
    # an existing network (gateway is set): its endpoint, TLS root, client MSP folder
    gateway: str | None = None
    tls_ca: Path | None = None
    server_name: str | None = None
    msp_dir: Path | None = None
    mspid: str = "Org1MSP"
    channel: str = "mychannel"
    chaincode: str | None = None  # default: the workload's (basic, or tcf for the tcf workload)
    pids: dict[str, int] = field(default_factory=dict)  # node processes to charge CPU to
    # the tcf workload on an existing network: its `heddle up` data folder (DATA/tcf/platform)
    tcf_data: Path | None = None
    chaincode_children: bool = True  # also charge the children of processes named peer*
    # the crypto limit's topology
    endorsers: int = 2
    committing_peers: int = 2
    block_size: float | None = None  # default: max_message_count
    ecdsa_seconds: float = 1.0
    threads: int = 4
    progress: bool = True


class _Bar:
    """``[#####-----] 12s/60s  1,234 committed  190 tps  1000 in flight  0 failed`` on stderr."""

    def __init__(self, config: BenchConfig, enabled: bool, stream=None):
        self.config = config
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last_line = 0.0

    def __call__(self, now: float, gen: LoadGenerator) -> None:
        if not self.enabled:
            return
        if not self.tty and now - self._last_line < 5.0:
            return
        self._last_line = now
        c = self.config
        total = (c.warmup + c.duration) if c.duration is not None else float(c.count or 1)
        done = gen.elapsed if c.duration is not None else float(gen.started)
        frac = min(1.0, done / max(total, 1e-9))
        bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
        tps = gen.committed / max(gen.elapsed, 1e-9)
        where = f"{gen.elapsed:5.1f}s/{total:.0f}s" if c.duration is not None else f"{gen.started}/{c.count}"
        line = (
            f"[{bar}] {where}  {gen.committed:,} done  {tps:6.1f}/s  "
            f"{gen.in_flight} in flight  {gen.failed} failed"
        )
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _say(config: BenchConfig, text: str) -> None:
    if config.progress:
        print(text, file=sys.stderr, flush=True)


CRYPTO_LIMIT_WORKLOADS = ("create", "transfer", "read")
TCF_MANY_IN_FLIGHT = 64  # more work orders in flight than this only lengthen the queue


def uses_tcf(config: BenchConfig) -> bool:
    return config.workload == "tcf"


class _Network:
    """The default topology (`heddle up`'s: one orderer, peer0.org1, peer0.org2, chaincode
    basic, MAJORITY endorsement) on free loopback ports. For the tcf workload: chaincode
    tcf instead of basic, and the trusted-compute services; the load comes from Org2's User1
    through peer0.org2 (a requester, as in `heddle tcf workorder submit --ledger`), while
    the connector acts for the worker as Org1's User1 through peer0.org1."""

    def __init__(self, config: BenchConfig):
        from heddle.common.ports import free_port
        from heddle.network.local import LocalNetwork, NetworkSpec

        self._tmp = None
        if config.data is None:
            self._tmp = tempfile.mkdtemp(prefix="heddle-bench-")
            data = Path(self._tmp)
        else:
            data = Path(config.data)
        spec = NetworkSpec(
            orderer_port=free_port(),
            orderer_admin_port=free_port(),
            peer_ports=[free_port(), free_port()],
            batch_timeout=config.batch_timeout,
            max_message_count=config.max_message_count,
        )
        self.net = LocalNetwork(data, spec)
        self.config = config
        self.tcf = uses_tcf(config)
        self.tcf_pids: dict[str, int] = {}
        self.org = 1 if self.tcf else 0

    def start(self) -> None:
        from heddle.network.up import example_path

        net = self.net
        _say(self.config, f"Starting the default network in {net.data}")
        net.generate()
        net.start()
        net.join()
        if not self.tcf:
            net.deploy_chaincode("basic", str(example_path() / "chaincode"))
            return
        from heddle.common.ports import free_port
        from heddle.network.tcf_services import start_tcf_services

        _say(
            self.config,
            "Starting trusted compute: chaincode tcf, listener, a singleton worker, the connector "
            "(as Org1 User1); work orders will come from Org2 User1",
        )
        services = start_tcf_services(net, net.data, bind=f"127.0.0.1:{free_port()}")
        self.tcf_pids = dict(services.pids)

    @property
    def tcf_platform(self) -> Path:
        from heddle.network.tcf_services import tcf_paths

        return tcf_paths(self.net.data)[1]

    def target(self) -> GatewayTarget:
        net, i = self.net, self.org
        msp = net.user_msp(i)
        return GatewayTarget(
            endpoint=net.peer_address(i),
            tls_ca=net.peer_tls_ca(i).read_bytes(),
            identity=identity_from_msp_dir(msp, f"Org{i + 1}MSP"),
            signer=signer_from_msp_dir(msp),
            channel=net.spec.channel,
            chaincode=self.config.chaincode or ("tcf" if self.tcf else "basic"),
            server_name=net.peer_name(i),
        )

    def pids(self) -> dict[str, int]:
        return {**{name: proc.pid for name, proc in self.net.procs.items()}, **self.tcf_pids}

    def stop(self) -> None:
        """Stop the trusted-compute services (if any were started), then the network."""
        try:
            if self.tcf:
                from heddle.network.tcf_services import stop_tcf_services

                stop_tcf_services(self.net.data)
        finally:
            self.net.stop()
            if self._tmp is not None and not self.config.keep:
                shutil.rmtree(self._tmp, ignore_errors=True)


def _external_target(config: BenchConfig) -> GatewayTarget:
    if not (config.msp_dir and config.gateway):
        raise ValueError("an existing network needs --gateway and --msp-dir")
    return GatewayTarget(
        endpoint=config.gateway,
        tls_ca=config.tls_ca.read_bytes() if config.tls_ca else None,
        identity=identity_from_msp_dir(config.msp_dir, config.mspid),
        signer=signer_from_msp_dir(config.msp_dir),
        channel=config.channel,
        chaincode=config.chaincode or ("tcf" if uses_tcf(config) else "basic"),
        server_name=config.server_name,
    )


def _external_tcf(config: BenchConfig) -> Path:
    """The worker's platform folder of an existing network whose trusted-compute services
    run (the tcf workload needs it to verify the worker's attestation)."""
    from heddle.network.tcf_services import running_services, tcf_paths

    if config.tcf_data is None:
        raise ValueError(
            "--workload tcf on an existing network needs --network DIR (a `heddle up` data folder: "
            "the worker's platform, to verify its attestation)"
        )
    running = running_services(config.tcf_data)
    missing = [n for n in ("tcf-worker", "tcf-connector") if n not in running]
    if missing:
        raise RuntimeError(
            f"{', '.join(missing)} not running from {config.tcf_data}: start the trusted-compute "
            f"services (`heddle tcf services start --data {config.tcf_data}`)"
        )
    return tcf_paths(config.tcf_data)[1]


def _child_names(prefix: str, pid: int) -> dict[str, int]:
    """``prefix`` for the first child of ``pid`` (by pid), ``prefix#2`` for the second, ..."""
    try:
        kids = children(pid)
    except OSError:
        return {}
    return {prefix + (f"#{i + 1}" if i else ""): kid for i, kid in enumerate(sorted(kids))}


def node_processes(pids: dict[str, int], chaincode_children: bool = True) -> dict[str, int]:
    """The processes to charge: the given ones, plus the children of each peer (its chaincode
    processes), named ``chaincode@<peer>`` (``chaincode@<peer>#2`` for a second one), and the
    children of a TCF worker host (its enclaves), named ``enclave@<name>`` likewise."""
    out = dict(pids)
    for name, pid in pids.items():
        if name.startswith("tcf-worker"):
            out.update(_child_names(f"enclave@{name}", pid))
        elif chaincode_children and name.startswith("peer"):
            out.update(_child_names(f"chaincode@{name}", pid))
    return out


async def _warm_up(workload: Workload, client: GatewayClient, config: BenchConfig) -> None:
    """One operation endorsed by every required peer, so chaincode processes are running
    (and can be measured) before the window opens (for tcf: one whole work order)."""
    try:
        await workload.warm_up(client, config.timeout)
    except TxError as exc:
        what = "work order" if uses_tcf(config) else "transaction"
        raise RuntimeError(f"the first {what} failed, nothing to measure: {exc}") from None


async def _drive(
    config: BenchConfig, target: GatewayTarget, pids: dict[str, int], tcf_platform: Path | None = None
) -> dict:
    workload = make_workload(config.workload, config.assets, tcf_platform=tcf_platform)
    pool = ThreadPoolExecutor(max_workers=config.threads, thread_name_prefix="bench-sign")
    channel = open_channel(target)
    try:
        client = GatewayClient(target, channel, pool)
        await _warm_up(workload, client, config)

        def preload_progress(done: int, total: int) -> None:
            if config.progress and (done % 200 == 0 or done == total):
                print(f"\rpreloading assets: {done}/{total}", end="", file=sys.stderr, flush=True)

        await workload.prepare(client, config.concurrency, preload_progress)
        if config.progress and workload.name in ("transfer", "read"):
            print(file=sys.stderr)
        procs = node_processes(pids, config.chaincode_children)
        procs["client"] = os.getpid()
        samples: dict[str, dict[str, float]] = {}

        def on_window(edge: str) -> None:
            snap = {}
            for name, pid in procs.items():
                try:
                    snap[name] = cpu_seconds(pid)
                except OSError:
                    snap[name] = float("nan")
            samples[edge] = snap
            samples[edge + "_wall"] = {"t": time.monotonic()}

        gen = LoadGenerator(
            client,
            workload,
            concurrency=config.concurrency,
            rate=config.rate,
            duration=config.duration,
            count=config.count,
            warmup=config.warmup,
            timeout=config.timeout,
        )
        bar = _Bar(config, config.progress)
        t0 = time.monotonic()
        result = await gen.run(on_window, bar)
        bar.close()
    finally:
        await workload.close()
        await channel.close()
        pool.shutdown(wait=False)
    summary = summarize(result)
    cpu = cpu_per_tx(samples["start"], samples["end"], summary["committed"])
    wall = samples["end_wall"]["t"] - samples["start_wall"]["t"]
    busy = sum(samples["end"][n] - samples["start"][n] for n in procs if n in samples["end"])
    summary.update(
        cpu_ms_per_tx=cpu,
        cpu_busy_fraction={
            n: (samples["end"][n] - samples["start"][n]) / wall for n in procs if n in samples["end"]
        },
        cores_busy=busy / wall,
        timeline=timeline(result.samples, t0),
        window_offsets_s=(result.window_start - t0, result.window_end - t0),
        processes=procs,
    )
    detail = workload.describe()
    if detail is not None:  # the tcf workload: the report's "tcf" section
        summary[workload.name] = detail
    return summary


def run_bench(config: BenchConfig) -> dict:
    """Measure ECDSA, start (or reach) the network, drive the load; the report."""
    cores = os.cpu_count() or 1
    _say(config, "Measuring ECDSA P-256 sign and verify on one core ...")
    speed = measure_ecdsa(config.ecdsa_seconds)
    block_size = config.block_size or config.max_message_count
    count = count_signatures(config.endorsers, config.committing_peers, block_size)
    # the limit counts one asset transaction's P-256 signatures; a work order is two ledger
    # transactions plus evaluates and TCF's own secp256k1 and RSA work: not applicable
    limit = crypto_limit_tps(speed, count, cores) if config.workload in CRYPTO_LIMIT_WORKLOADS else None
    network = None
    tcf_platform = None
    try:
        if config.gateway:
            target, pids = _external_target(config), dict(config.pids)
            if uses_tcf(config):
                tcf_platform = _external_tcf(config)
        else:
            network = _Network(config)
            network.start()
            target, pids = network.target(), network.pids()
            tcf_platform = network.tcf_platform if network.tcf else None
        unit = "work orders/s" if uses_tcf(config) else "tps"
        mode = (
            f"{config.rate:g} {unit} target, at most {config.concurrency} in flight"
            if config.rate
            else f"closed loop, {config.concurrency} in flight"
        )
        _say(config, f"Running {config.workload} ({mode}) against {target.endpoint}")
        if uses_tcf(config) and config.concurrency > TCF_MANY_IN_FLIGHT:
            _say(
                config,
                f"Note: {config.concurrency} work orders in flight queue behind one worker and one "
                "connector (each completion waits for its block); a few, e.g. -k 8, keep them busy",
            )
        summary = asyncio.run(_drive(config, target, pids, tcf_platform))
    finally:
        if network is not None:
            network.stop()
    tps = summary["tps"]
    report = {
        "workload": config.workload,
        "mode": mode,
        **summary,
        "crypto_limit_tps": limit,
        "ratio": (tps / limit if limit else float("nan")) if limit is not None else None,
        "ecdsa": {"sign_us": speed.sign_us, "verify_us": speed.verify_us, "samples": speed.samples},
        "signatures_per_tx": count.as_dict() if limit is not None else None,
        "cores": cores,
        "settings": {
            "concurrency": config.concurrency,
            "rate": config.rate,
            "duration_s": config.duration,
            "count": config.count,
            "warmup_s": config.warmup,
            "network": "external " + config.gateway if config.gateway else _default_network(config),
            "batch_timeout": config.batch_timeout if not config.gateway else None,
            "max_message_count": config.max_message_count if not config.gateway else None,
        },
        "machine": {"cores": cores, "loadavg": os.getloadavg(), "python": sys.version.split()[0]},
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return report


def _default_network(config: BenchConfig) -> str:
    if uses_tcf(config):
        return (
            "default (heddle up topology: 1 orderer, 2 peers, MAJORITY, TLS, chaincode tcf; trusted "
            "compute: listener, singleton worker, connector as Org1 User1; requester Org2 User1)"
        )
    return "default (heddle up topology: 1 orderer, 2 peers, MAJORITY, TLS, chaincode basic)"


def parse_pids(values: list[str]) -> dict[str, int]:
    """NAME=PID pairs (from --pid) as a dict."""
    out = {}
    for v in values:
        name, sep, pid = v.partition("=")
        if not sep or not pid.strip().isdigit():
            raise ValueError(f"--pid wants NAME=PID, got {v!r}")
        out[name.strip()] = int(pid)
    return out
