"""``heddle tcf``: trusted compute (listener, workers, connector, the generic client).

    heddle tcf listener start [--bind localhost:1947] [--data DIR]
    heddle tcf worker start [--data DIR] [--platform DIR] [--pool N]
    heddle tcf connector start --network NETDATA [--data DIR] [--org 1] [--user User1]
    heddle tcf services start|stop [--data NETDATA] [--bind localhost:1947]
    heddle tcf chaincode write DIR      # the 'tcf' contract folder, e.g. for heddle deploy
    heddle tcf worker lookup [--uri URL | --ledger NETDATA]
    heddle tcf measurement [--pool]
    heddle tcf workorder submit --workload heart-disease-eval --in "25 10 1 67 ..." [--uri URL | --ledger D]
    heddle tcf receipt retrieve WORK_ORDER_ID [--uri URL | --ledger NETDATA]
    heddle tcf story [--uri URL | --ledger NETDATA] [--platform DIR]

Client commands use direct mode (JSON-RPC to ``--uri``) unless ``--ledger`` names a
network's data directory (``heddle up --data``): then they are proxy mode, transactions
on the ``tcf`` chaincode as ``--org``'s ``--user`` (default Org2's User1). The client
verifies the worker's attestation against the measurements of heddle's own worker
bundles (or the ``--measurement`` values given) on the virtual platform in
``--platform`` (default ``NETDATA/tcf/platform`` with ``--ledger``) before it encrypts
anything to the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from heddle.cli import CliError
from heddle.cli.up import DEFAULT_DATA

DEFAULT_URI = "http://localhost:1947/"


def register(subparsers: argparse._SubParsersAction) -> None:
    tcf = subparsers.add_parser("tcf", help="trusted compute (EEA TCF): listener, workers, client")
    sub = tcf.add_subparsers(dest="tcf_command", metavar="COMMAND")

    listener = sub.add_parser("listener", help="the JSON-RPC listener (direct mode)")
    lsub = listener.add_subparsers(dest="listener_command", metavar="COMMAND")
    start = lsub.add_parser("start", help="serve the TCF JSON-RPC API over HTTP")
    start.add_argument("--bind", default="localhost:1947", help="HOST:PORT (default localhost:1947)")
    start.add_argument("--data", default="tcf-data", help="data directory (queue and registry)")
    start.set_defaults(func=_listener_start)

    worker = sub.add_parser("worker", help="workers in enclaves")
    wsub = worker.add_subparsers(dest="worker_command", metavar="COMMAND")
    wstart = wsub.add_parser("start", help="start a worker (or a KME + WPE pool) and process its queue")
    wstart.add_argument("--data", default="tcf-data", help="the listener's data directory")
    wstart.add_argument("--platform", default="tcf-platform", help="virtual platform directory")
    wstart.add_argument("--pool", type=int, default=0, metavar="N", help="run a KME and N WPEs")
    wstart.add_argument("--debug", action="store_true", help="start debug enclaves")
    wstart.set_defaults(func=_worker_start)
    lookup = wsub.add_parser("lookup", help="list registered workers")
    _client_args(lookup, attest=False)
    lookup.set_defaults(func=_worker_lookup)

    connector = sub.add_parser("connector", help="proxy mode: follow the ledger and feed a worker")
    csub = connector.add_subparsers(dest="connector_command", metavar="COMMAND")
    cstart = csub.add_parser("start", help="run the connector next to a worker host")
    cstart.add_argument("--network", required=True, help="the network's data directory (network.json)")
    cstart.add_argument("--data", default="tcf-data", help="the worker host's data directory")
    cstart.add_argument("--org", type=int, default=1, help="org (1-based) whose peer and user to use")
    cstart.add_argument("--user", default="User1", help="the ledger identity that acts for the worker")
    cstart.add_argument("--chaincode", default="tcf")
    cstart.set_defaults(func=_connector_start)

    chaincode = sub.add_parser("chaincode", help="the 'tcf' contract as a package folder")
    ccsub = chaincode.add_subparsers(dest="chaincode_command", metavar="COMMAND")
    cwrite = ccsub.add_parser("write", help="write the self-contained contract folder (for heddle deploy)")
    cwrite.add_argument("dest", help="folder to write (main.py, requirements.txt, heddle_tcf_rules.py)")
    cwrite.set_defaults(func=_chaincode_write)

    services = sub.add_parser("services", help="the trusted-compute services of a running `heddle up`")
    ssub = services.add_subparsers(dest="services_command", metavar="COMMAND")
    sstart = ssub.add_parser("start", help="deploy 'tcf', start the listener, a worker and the connector")
    sstart.add_argument("--data", default=str(DEFAULT_DATA), help="the network's data directory")
    sstart.add_argument("--bind", default="localhost:1947", help="listener HOST:PORT")
    sstart.set_defaults(func=_services_start)
    sstop = ssub.add_parser("stop", help="stop the trusted-compute services (the network keeps running)")
    sstop.add_argument("--data", default=str(DEFAULT_DATA), help="the network's data directory")
    sstop.set_defaults(func=_services_stop)

    meas = sub.add_parser("measurement", help="print the measurement of heddle's worker enclave")
    meas.add_argument("--pool", action="store_true", help="the pool's KME instead of the singleton worker")
    meas.set_defaults(func=_measurement)

    wo = sub.add_parser("workorder", help="work orders")
    wosub = wo.add_subparsers(dest="workorder_command", metavar="COMMAND")
    submit = wosub.add_parser("submit", help="submit a work order and show the verified result")
    submit.add_argument("--workload", "--workload_id", required=True, help="e.g. echo, heart-disease-eval")
    submit.add_argument(
        "--in", "--in_data", dest="inputs", action="append", required=True, help="an input item"
    )
    submit.add_argument("--worker-id", "--worker_id", help="a specific worker (default: first that verifies)")
    submit.add_argument("--timeout", type=float, default=60.0)
    _client_args(submit)
    submit.set_defaults(func=_submit)

    receipt = sub.add_parser("receipt", help="work order receipts")
    rsub = receipt.add_subparsers(dest="receipt_command", metavar="COMMAND")
    retrieve = rsub.add_parser("retrieve", help="show a receipt and its latest update")
    retrieve.add_argument("work_order_id")
    _client_args(retrieve, attest=False)
    retrieve.set_defaults(func=_receipt)

    story = sub.add_parser("story", help="the heart-disease story (direct, or proxy with --ledger)")
    _client_args(story)
    story.set_defaults(func=_story)


def _client_args(p: argparse.ArgumentParser, *, attest: bool = True) -> None:
    p.add_argument("--uri", "--url", default=DEFAULT_URI, help=f"listener URL (default {DEFAULT_URI})")
    p.add_argument("--ledger", metavar="NETDATA", help="proxy mode: the network's data directory")
    p.add_argument("--org", type=int, default=2, help="with --ledger: the client's org, 1-based (default 2)")
    p.add_argument("--user", default="User1", help="with --ledger: the client's user (default User1)")
    if attest:
        p.add_argument(
            "--platform",
            help="virtual platform whose evidence to trust (default tcf-platform, or NETDATA/tcf/platform)",
        )
        p.add_argument(
            "--measurement", action="append", default=[], help="allowed measurement (hex); repeatable"
        )


def _listener_start(args) -> int:
    from heddle.tcf.listener import parse_bind, serve

    try:
        parse_bind(args.bind)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    asyncio.run(serve(args.bind, args.data))
    return 0


def _worker_start(args) -> int:
    from heddle.tcf.worker_host import serve

    asyncio.run(serve(args.data, args.platform, pool=args.pool, debug=args.debug))
    return 0


def _measurement(args) -> int:
    from heddle.tcf.story import allowed_measurements

    worker, kme = allowed_measurements()
    print((kme if args.pool else worker).hex())
    return 0


def _transport(args):
    """DirectTransport to --uri, or LedgerTransport (proxy mode) with --ledger."""
    from heddle.tcf.client import DirectTransport

    if not args.ledger:
        return DirectTransport(args.uri)
    from pathlib import Path

    from heddle.tcf.proxy import LedgerTransport

    if not (Path(args.ledger) / "network.json").exists():
        raise CliError(f"{args.ledger} has no network.json; start a network with 'heddle up --data DIR'")
    return LedgerTransport.connect(args.ledger, org=args.org - 1, user=args.user)


def _platform(args) -> str:
    if args.platform:
        return args.platform
    if args.ledger:
        from heddle.network.tcf_services import tcf_paths

        return str(tcf_paths(args.ledger)[1])
    return "tcf-platform"


def _connector_start(args) -> int:
    from heddle.tcf.connector import main

    argv = ["--network", args.network, "--data", args.data, "--org", str(args.org), "--user", args.user]
    return main([*argv, "--chaincode", args.chaincode])


def _chaincode_write(args) -> int:
    from heddle.tcf.chaincode_package import write_chaincode

    print(write_chaincode(args.dest))
    return 0


def _services_start(args) -> int:
    import json
    from pathlib import Path

    from heddle.network.local import LocalNetwork
    from heddle.network.tcf_services import start_tcf_services

    data = Path(args.data).absolute()
    if not LocalNetwork.running_pids(data):
        raise CliError(f"no running network in {data}; start one with 'heddle up'")
    net = LocalNetwork.from_description(data, json.loads((data / "network.json").read_text()))
    try:
        services = start_tcf_services(net, data, bind=args.bind)
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    print(json.dumps(services.describe(), indent=2))
    return 0


def _services_stop(args) -> int:
    from heddle.network.tcf_services import stop_tcf_services

    stopped = stop_tcf_services(args.data)
    print("stopped: " + (", ".join(stopped) or "nothing was running"))
    return 0


def _client(args):
    from heddle.tcf.client import TcfClient
    from heddle.tcf.story import allowed_measurements
    from heddle.tee import VerificationPolicy, VirtualPlatform

    try:
        platform = VirtualPlatform(_platform(args))
        measurements = [bytes.fromhex(m) for m in args.measurement] or allowed_measurements()
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    return TcfClient(
        _transport(args),
        policy=VerificationPolicy.development(measurements),
        verifiers=[platform.verifier()],
    )


def _worker_lookup(args) -> int:
    from heddle.tcf.codes import TcfError

    transport = _transport(args)
    try:
        page = transport.call("WorkerLookUp", {})
        for wid in page["ids"]:
            info = transport.call("WorkerRetrieve", {"workerId": wid})
            print(f"{wid}  status={info['status']}  type={info['workerType']}")
    except (ConnectionError, TcfError) as exc:
        raise CliError(str(exc)) from None
    return 0


def _submit(args) -> int:
    from heddle.client import CommitError, GatewayError
    from heddle.tcf.codes import TcfError
    from heddle.tee import AttestationError

    client = _client(args)
    try:
        outcome = client.run(
            args.workload, [i.encode() for i in args.inputs], worker_id=args.worker_id, timeout=args.timeout
        )
    except (
        TcfError,
        AttestationError,
        LookupError,
        ConnectionError,
        TimeoutError,
        GatewayError,
        CommitError,
    ) as exc:
        code = f" (code {exc.code})" if isinstance(exc, TcfError) else ""
        raise CliError(f"{exc}{code}") from None
    print(f"worker        {outcome.worker.worker_id}")
    print(f"measurement   {outcome.attestation.measurement.hex()}  (verified)")
    print(f"work order    {outcome.work_order_id}")
    print("signature     verified")
    print(
        f"receipt       status {outcome.receipt.get('receiptCurrentStatus')}, "
        f"update type {outcome.receipt_update.get('updateType')} signed by the worker"
    )
    print("result:")
    print(outcome.text())
    return 0


def _receipt(args) -> int:
    from heddle.tcf.codes import TcfError

    transport = _transport(args)
    try:
        receipt = transport.call("WorkOrderReceiptRetrieve", {"workOrderId": args.work_order_id})
        try:
            update = transport.call("WorkOrderReceiptUpdateRetrieve", {"workOrderId": args.work_order_id})
        except TcfError:
            update = None
    except (TcfError, ConnectionError) as exc:
        raise CliError(str(exc)) from None
    json.dump({"receipt": receipt, "lastUpdate": update}, sys.stdout, indent=2)
    print()
    return 0


def _story(args) -> int:
    from heddle.tcf.story import heart_disease_story, ledger_story

    measurements = [bytes.fromhex(m) for m in args.measurement] or None
    if args.ledger:
        with _transport(args) as transport:
            summary = ledger_story(transport, _platform(args), measurements=measurements)
        return 1 if summary["leaked"] else 0
    heart_disease_story(args.uri, _platform(args), measurements=measurements)
    return 0
