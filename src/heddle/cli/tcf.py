"""``heddle tcf``: trusted compute in direct mode (listener, workers, the generic client).

    heddle tcf listener start [--bind localhost:1947] [--data DIR]
    heddle tcf worker start [--data DIR] [--platform DIR] [--pool N]
    heddle tcf worker lookup [--uri URL]
    heddle tcf measurement [--pool]
    heddle tcf workorder submit --workload heart-disease-eval --in "25 10 1 67 ..." [--uri URL]
    heddle tcf receipt retrieve WORK_ORDER_ID [--uri URL]
    heddle tcf story [--uri URL] [--platform DIR]

The client verifies the worker's attestation against the measurements of heddle's own
worker bundles (or the ``--measurement`` values given) on the virtual platform in
``--platform`` before it encrypts anything to the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from heddle.cli import CliError

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

    story = sub.add_parser("story", help="the heart-disease story in direct mode, step by step")
    _client_args(story)
    story.set_defaults(func=_story)


def _client_args(p: argparse.ArgumentParser, *, attest: bool = True) -> None:
    p.add_argument("--uri", "--url", default=DEFAULT_URI, help=f"listener URL (default {DEFAULT_URI})")
    if attest:
        p.add_argument("--platform", default="tcf-platform", help="virtual platform whose evidence to trust")
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


def _client(args):
    from heddle.tcf.client import DirectTransport, TcfClient
    from heddle.tcf.story import allowed_measurements
    from heddle.tee import VerificationPolicy, VirtualPlatform

    try:
        platform = VirtualPlatform(args.platform)
        measurements = [bytes.fromhex(m) for m in args.measurement] or allowed_measurements()
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    return TcfClient(
        DirectTransport(args.uri),
        policy=VerificationPolicy.development(measurements),
        verifiers=[platform.verifier()],
    )


def _worker_lookup(args) -> int:
    from heddle.tcf.client import DirectTransport

    transport = DirectTransport(args.uri)
    try:
        page = transport.call("WorkerLookUp", {})
        for wid in page["ids"]:
            info = transport.call("WorkerRetrieve", {"workerId": wid})
            print(f"{wid}  status={info['status']}  type={info['workerType']}")
    except ConnectionError as exc:
        raise CliError(str(exc)) from None
    return 0


def _submit(args) -> int:
    from heddle.tcf.codes import TcfError
    from heddle.tee import AttestationError

    client = _client(args)
    try:
        outcome = client.run(
            args.workload, [i.encode() for i in args.inputs], worker_id=args.worker_id, timeout=args.timeout
        )
    except (TcfError, AttestationError, LookupError, ConnectionError, TimeoutError) as exc:
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
    from heddle.tcf.client import DirectTransport
    from heddle.tcf.codes import TcfError

    transport = DirectTransport(args.uri)
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
    from heddle.tcf.story import heart_disease_story

    measurements = [bytes.fromhex(m) for m in args.measurement] or None
    heart_disease_story(args.uri, args.platform, measurements=measurements)
    return 0
