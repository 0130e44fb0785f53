"""``heddle bench``: throughput, latency and CPU per transaction, comparable with Fabric's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from heddle.cli import CliError

FULL_RUN = "heddle bench --duration 60 --concurrency 1000 --output bench.json --plot bench.png"
TCF_RUN = "heddle bench --workload tcf -k 8 --duration 15 --warmup 3"


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="load-test a network (the default topology, started here, or a running Fabric-protocol one)",
        description="Drive a workload through a peer's Gateway (Endorse, Submit, CommitStatus) with K "
        "transactions in flight or at a target rate, and report committed tps, latency, failures, "
        "CPU milliseconds per committed transaction of every node process, and the ratio to the "
        f"machine's ECDSA limit. The documented full run: {FULL_RUN}. "
        "With --workload tcf an operation is one trusted-compute work order in proxy mode, from "
        "WorkOrderSubmit to its verified, decrypted result; the started network then also runs "
        "the trusted-compute services (chaincode tcf, listener, a singleton worker, the connector), "
        "which are charged CPU like the nodes (tcf-listener, tcf-worker, tcf-connector, "
        "enclave@tcf-worker, all in nodes_total) and stopped with it. Try: " + TCF_RUN,
    )
    w = p.add_argument_group("load")
    w.add_argument(
        "--workload",
        choices=["create", "transfer", "read", "tcf"],
        default="create",
        help="create: blind writes (CreateAsset); transfer: read-modify-write (TransferAsset of "
        "preloaded assets); read: queries (ReadAsset through Evaluate); tcf: trusted-compute work "
        "orders in proxy mode (the worker's echo workload, 64 bytes, encrypted; done when the result "
        "is on the ledger, its worker signature and hashes verified and it is decrypted; no "
        "receipts). tcf has no crypto limit (n/a in the table, null in the JSON). Default create",
    )
    w.add_argument(
        "-k",
        "--concurrency",
        type=int,
        default=1000,
        help="transactions (tcf: work orders) in flight (default 1000; for tcf use a few, e.g. -k 8: "
        "one singleton worker runs them one at a time)",
    )
    w.add_argument(
        "--rate", type=float, help="target transactions per second (open loop, at most K in flight)"
    )
    w.add_argument("--duration", type=float, help="measurement window in seconds (default 10)")
    w.add_argument("--count", type=int, help="send this many transactions instead of a timed window")
    w.add_argument("--warmup", type=float, default=0.0, help="seconds of load before the window opens")
    w.add_argument("--assets", type=int, help="preloaded assets for transfer/read (default 2K / 100)")
    w.add_argument("--timeout", type=float, default=120.0, help="per-RPC deadline in seconds (default 120)")
    n = p.add_argument_group("network (default: start heddle up's topology on free ports)")
    n.add_argument("--data", type=Path, help="folder for the started network (default: a temporary one)")
    n.add_argument("--keep", action="store_true", help="keep the started network's files")
    n.add_argument("--batch-timeout", default="2s", help="orderer BatchTimeout (default 2s)")
    n.add_argument("--max-message-count", type=int, default=500, help="orderer MaxMessageCount (default 500)")
    n.add_argument(
        "--network",
        type=Path,
        help="a running `heddle up` network: its data folder (network.json, pids.json; for "
        "--workload tcf also its trusted-compute services, tcf/platform, and the tcf-* pids)",
    )
    n.add_argument("--gateway", help="a running network's gateway peer HOST:PORT (Fabric or heddle)")
    n.add_argument("--tls-ca", type=Path, help="TLS root certificate of the gateway peer")
    n.add_argument("--server-name", help="host name in the gateway peer's TLS certificate")
    n.add_argument("--msp-dir", type=Path, help="client MSP folder (signcerts, keystore)")
    n.add_argument("--mspid", default="Org1MSP")
    n.add_argument("--channel", default="mychannel")
    n.add_argument("--chaincode", help="default basic (tcf for --workload tcf)")
    n.add_argument(
        "--pid",
        action="append",
        default=[],
        metavar="NAME=PID",
        help="a node process on this machine to charge CPU to (repeat); children of names "
        "starting with 'peer' count as their chaincode, children of 'tcf-worker' as its enclaves",
    )
    c = p.add_argument_group("crypto limit")
    c.add_argument("--endorsers", type=int, default=2, help="endorsements per transaction (default 2)")
    c.add_argument("--committing-peers", type=int, default=2, help="peers that validate (default 2)")
    c.add_argument("--ecdsa-seconds", type=float, default=1.0)
    o = p.add_argument_group("output")
    o.add_argument("--output", type=Path, help="write the results as JSON")
    o.add_argument("--plot", type=Path, help="write a PNG of throughput and latency over time")
    o.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_bench)


def _bench(args) -> int:
    from heddle.bench.report import plot, table, write_json
    from heddle.bench.runner import BenchConfig, parse_pids, run_bench

    try:
        pids = parse_pids(args.pid)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    config = BenchConfig(
        workload=args.workload,
        concurrency=args.concurrency,
        rate=args.rate,
        duration=None if args.count and not args.duration else (args.duration or 10.0),
        count=args.count,
        warmup=args.warmup,
        timeout=args.timeout,
        assets=args.assets,
        data=args.data,
        keep=args.keep,
        batch_timeout=args.batch_timeout,
        max_message_count=args.max_message_count,
        gateway=args.gateway,
        tls_ca=args.tls_ca,
        server_name=args.server_name,
        msp_dir=args.msp_dir,
        mspid=args.mspid,
        channel=args.channel,
        chaincode=args.chaincode,
        pids=pids,
        endorsers=args.endorsers,
        committing_peers=args.committing_peers,
        ecdsa_seconds=args.ecdsa_seconds,
        progress=not args.quiet,
    )
    if args.network:
        _from_heddle_network(config, args.network)
    try:
        report = run_bench(config)
    except (RuntimeError, ValueError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(table(report))
    if args.output:
        write_json(report, args.output)
        print(f"JSON: {args.output}", file=sys.stderr)
    if args.plot:
        plot(report, args.plot)
        print(f"Plot: {args.plot}", file=sys.stderr)
    return 0 if report["failures"] == 0 else 1


def _from_heddle_network(config, data: Path) -> None:
    """Fill the target from a `heddle up` data folder: Org1's peer, User1, the node pids (and
    the tcf-* services'). For --workload tcf: Org2's peer and User1 when there is an Org2 (a
    requester other than the connector's Org1 identity), and the folder for the worker's
    platform."""
    doc_path = data / "network.json"
    if not doc_path.exists():
        raise CliError(f"{doc_path} not found: is {data} a `heddle up` data folder?")
    doc = json.loads(doc_path.read_text())
    tcf = config.workload == "tcf"
    if tcf:
        config.tcf_data = data
    peer = doc["peers"][1 if tcf and len(doc["peers"]) > 1 else 0]
    config.gateway = config.gateway or peer["address"]
    config.tls_ca = config.tls_ca or Path(peer["tlsCA"])
    config.server_name = config.server_name or peer["name"]
    config.msp_dir = config.msp_dir or Path(peer["userMSP"])
    config.mspid = peer["mspid"]
    config.channel = doc["channel"]
    if not config.pids:
        from heddle.network import pidfile

        config.pids = pidfile.running(data)
