"""``heddle peer lifecycle chaincode ...``: Fabric's chaincode lifecycle commands.

Subcommands and flags follow Fabric's ``peer lifecycle chaincode``. The client identity
comes from CORE_PEER_LOCALMSPID and CORE_PEER_MSPCONFIGPATH (or --mspID/--mspPath); the
target peer from CORE_PEER_ADDRESS and CORE_PEER_TLS_ROOTCERT_FILE unless
--peerAddresses/--tlsRootCertFiles are given (repeatable, paired in order).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from google.protobuf import json_format

from heddle.cli import CliError


def register_lifecycle(peer_subparsers) -> None:
    """Mount ``lifecycle chaincode ...`` under the ``heddle peer`` subparsers."""
    lifecycle = peer_subparsers.add_parser(
        "lifecycle", help="chaincode lifecycle (package, install, approve, commit)"
    )
    lsub = lifecycle.add_subparsers(dest="lifecycle_command", metavar="COMMAND", required=True)
    chaincode = lsub.add_parser("chaincode", help="package, install, approve, commit and query chaincode")
    csub = chaincode.add_subparsers(dest="chaincode_command", metavar="COMMAND", required=True)

    p = csub.add_parser("package", help="package chaincode into Fabric's .tar.gz format")
    p.add_argument("output", help="file to write the package to (e.g. basic.tar.gz)")
    p.add_argument("-p", "--path", help="chaincode source folder (for --lang ccaas: the service address)")
    p.add_argument(
        "-l", "--lang", "--type", dest="lang", default="python", help="python, node, golang, ccaas, ..."
    )
    p.add_argument("--label", required=True, help="package label, e.g. basic_1.0")
    p.add_argument("--address", help="ccaas: host:port the peer dials (default: --path)")
    p.add_argument("--dial-timeout", default="10s", help="ccaas: dial timeout (default 10s)")
    p.add_argument("--tls-required", action="store_true", help="ccaas: the service uses TLS")
    p.set_defaults(func=_package)

    i = csub.add_parser("install", help="install a chaincode package on a peer")
    i.add_argument("package_file", help="the package (.tar.gz)")
    _client_flags(i)
    i.set_defaults(func=_install)

    q = csub.add_parser("queryinstalled", help="list the chaincode packages installed on a peer")
    _client_flags(q)
    q.add_argument("-O", "--output", default="", help="'json' for JSON output")
    q.set_defaults(func=_queryinstalled)

    g = csub.add_parser("getinstalledpackage", help="download an installed package from a peer")
    _client_flags(g)
    g.add_argument("--package-id", required=True)
    g.add_argument("--output-directory", default=".", help="folder to write <package id>.tar.gz to")
    g.set_defaults(func=_getinstalledpackage)

    a = csub.add_parser("approveformyorg", help="approve a chaincode definition for your org")
    _client_flags(a)
    _orderer_flags(a)
    _definition_flags(a)
    a.add_argument("--package-id", default="", help="the installed package this org runs")
    a.set_defaults(func=_approve)

    c = csub.add_parser("checkcommitreadiness", help="which orgs approved a chaincode definition")
    _client_flags(c)
    _definition_flags(c)
    c.add_argument("-O", "--output", default="", help="'json' for JSON output")
    c.set_defaults(func=_checkcommitreadiness)

    m = csub.add_parser("commit", help="commit a chaincode definition on the channel")
    _client_flags(m)
    _orderer_flags(m)
    _definition_flags(m)
    m.set_defaults(func=_commit)

    qc = csub.add_parser("querycommitted", help="query committed chaincode definitions")
    _client_flags(qc)
    qc.add_argument("-C", "--channelID", required=True)
    qc.add_argument("-n", "--name", default="", help="one chaincode (default: all)")
    qc.add_argument("-O", "--output", default="", help="'json' for JSON output")
    qc.set_defaults(func=_querycommitted)

    qa = csub.add_parser("queryapproved", help="query your org's approved chaincode definition")
    _client_flags(qa)
    qa.add_argument("-C", "--channelID", required=True)
    qa.add_argument("-n", "--name", required=True)
    qa.add_argument("--sequence", type=int, default=0, help="default: the latest this org approved")
    qa.add_argument("-O", "--output", default="", help="'json' for JSON output")
    qa.set_defaults(func=_queryapproved)


# ----- flags -----


def _client_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--peerAddresses", action="append", default=None, help="peer host:port (repeatable)")
    p.add_argument("--tlsRootCertFiles", action="append", default=None, help="peer TLS CA file (repeatable)")
    p.add_argument("--mspID", default=None, help="client MSP ID (default $CORE_PEER_LOCALMSPID)")
    p.add_argument("--mspPath", default=None, help="client MSP folder (default $CORE_PEER_MSPCONFIGPATH)")
    p.add_argument("--connectionProfile", default=None, help=argparse.SUPPRESS)


def _orderer_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--orderer", required=True, help="orderer host:port")
    p.add_argument(
        "--ordererTLSHostnameOverride", default="", help="TLS host name to expect from the orderer"
    )
    p.add_argument("--tls", action="store_true", help="use TLS to the orderer")
    p.add_argument("--cafile", default="", help="orderer TLS CA file")
    p.add_argument("--waitForEvent", default="true", help="wait for the transaction to commit (default true)")
    p.add_argument("--waitForEventTimeout", default="30s", help="how long to wait (default 30s)")


def _definition_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-C", "--channelID", required=True)
    p.add_argument("-n", "--name", required=True)
    p.add_argument("-v", "--version", required=True)
    p.add_argument("--sequence", type=int, required=True)
    p.add_argument("-E", "--endorsement-plugin", default="", help="default escc")
    p.add_argument("-V", "--validation-plugin", default="", help="default vscc")
    p.add_argument("--signature-policy", default="", help="e.g. \"AND('Org1MSP.peer','Org2MSP.peer')\"")
    p.add_argument("--channel-config-policy", default="", help="e.g. /Channel/Application/Endorsement")
    p.add_argument("--init-required", action="store_true")
    p.add_argument("--collections-config", default="", help="private data collections (not supported yet)")


# ----- shared helpers -----


def _truthy(value) -> bool:
    return str(value).lower() in ("true", "1", "yes")


def _identity(args):
    from heddle.msp import MspError, load_signing_identity

    mspid = args.mspID or os.environ.get("CORE_PEER_LOCALMSPID")
    msp_path = args.mspPath or os.environ.get("CORE_PEER_MSPCONFIGPATH")
    if not mspid:
        raise CliError("the client MSP ID is required: set CORE_PEER_LOCALMSPID (or --mspID)")
    if not msp_path:
        raise CliError("the client MSP folder is required: set CORE_PEER_MSPCONFIGPATH (or --mspPath)")
    try:
        return load_signing_identity(msp_path, mspid)
    except (MspError, OSError) as exc:
        raise CliError(f"cannot load identity from {msp_path}: {exc}") from exc


def _peers(args):
    from heddle.chaincode.lifecycle.client import Endpoint

    addresses = args.peerAddresses or (
        [os.environ["CORE_PEER_ADDRESS"]] if os.environ.get("CORE_PEER_ADDRESS") else []
    )
    if not addresses:
        raise CliError("no peer: set CORE_PEER_ADDRESS or give --peerAddresses")
    tls = _truthy(os.environ.get("CORE_PEER_TLS_ENABLED", "true"))
    roots = args.tlsRootCertFiles
    env_root = os.environ.get("CORE_PEER_TLS_ROOTCERT_FILE")
    if roots is None:
        roots = [env_root] if env_root and len(addresses) == 1 else []
    if not tls:
        return [Endpoint(a) for a in addresses]
    if len(roots) != len(addresses):
        raise CliError(
            f"TLS is on: give one --tlsRootCertFiles per --peerAddresses ({len(addresses)} peers, "
            f"{len(roots)} TLS root files)"
        )
    try:
        return [Endpoint.of(a, r) for a, r in zip(addresses, roots, strict=True)]
    except OSError as exc:
        raise CliError(f"cannot read TLS root certificate: {exc}") from exc


def _orderer(args):
    from heddle.chaincode.lifecycle.client import Endpoint

    if not args.tls:
        return Endpoint(args.orderer)
    if not args.cafile:
        raise CliError("--tls needs --cafile (the orderer's TLS CA)")
    try:
        return Endpoint.of(args.orderer, args.cafile, args.ordererTLSHostnameOverride or None)
    except OSError as exc:
        raise CliError(f"cannot read {args.cafile}: {exc}") from exc


def _timeout(text: str) -> float:
    from heddle.channelconfig import parse_duration

    try:
        return float(parse_duration(text))
    except ValueError:
        try:
            return float(text)
        except ValueError as exc:
            raise CliError(f"invalid duration {text!r}") from exc


def _validation_parameter(args) -> bytes:
    from heddle.chaincode.lifecycle.client import LifecycleClientError, application_policy

    if args.collections_config:
        raise CliError("private data is not supported yet: --collections-config cannot be used")
    try:
        return application_policy(args.signature_policy, args.channel_config_policy)
    except LifecycleClientError as exc:
        raise CliError(str(exc)) from exc


def _definition(message_type, args):
    return message_type(
        name=args.name,
        version=args.version,
        sequence=args.sequence,
        endorsement_plugin=args.endorsement_plugin,
        validation_plugin=args.validation_plugin,
        validation_parameter=_validation_parameter(args),
        init_required=args.init_required,
    )


def _run(fn, *a, **kw):
    from heddle.chaincode.lifecycle.client import LifecycleClientError

    try:
        return fn(*a, **kw)
    except LifecycleClientError as exc:
        raise CliError(str(exc)) from exc


def _json(message) -> str:
    """JSON as Fabric's CLI prints it: proto field names, zero values omitted, numbers as numbers."""

    def numbers(value):
        if isinstance(value, dict):
            return {k: int(v) if k == "sequence" else numbers(v) for k, v in value.items()}
        if isinstance(value, list):
            return [numbers(v) for v in value]
        return value

    return json.dumps(numbers(json_format.MessageToDict(message, preserving_proto_field_name=True)), indent=2)


# ----- commands -----


def _package(args) -> int:
    from heddle.chaincode.lifecycle import PackageError, ccaas_package, package

    try:
        if args.lang.lower() == "ccaas":
            address = args.address or args.path
            if not address:
                raise CliError("a ccaas package needs --address (or --path) host:port")
            data = ccaas_package(
                args.label, address, dial_timeout=args.dial_timeout, tls_required=args.tls_required
            )
        else:
            if not args.path:
                raise CliError("chaincode path (--path) is required")
            data = package(args.label, args.lang, args.path)
    except PackageError as exc:
        raise CliError(str(exc)) from exc
    try:
        Path(args.output).write_bytes(data)
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    return 0


def _install(args) -> int:
    from heddle.chaincode.lifecycle import client

    try:
        data = Path(args.package_file).read_bytes()
    except OSError as exc:
        raise CliError(
            f"failed to read chaincode package at '{args.package_file}': {exc.strerror or exc}"
        ) from exc
    identity = _identity(args)
    for peer in _peers(args):
        try:
            result = client.install(identity, data, peer)
        except client.LifecycleClientError as exc:
            raise CliError(f"chaincode install failed: {exc}") from exc
        print(f"Installed remotely: {peer.address}")
        print(f"Chaincode code package identifier: {result.package_id}")
    return 0


def _queryinstalled(args) -> int:
    from heddle.chaincode.lifecycle import client

    result = _run(client.query_installed, _identity(args), _peers(args)[0])
    if args.output == "json":
        print(_json(result))
        return 0
    print("Installed chaincodes on peer:")
    for cc in result.installed_chaincodes:
        line = f"Package ID: {cc.package_id}, Label: {cc.label}"
        refs = [
            f"{ch}: " + ", ".join(f"{c.name} {c.version}" for c in cc.references[ch].chaincodes)
            for ch in sorted(cc.references)
        ]
        print(line + (f", References: {'; '.join(refs)}" if refs else ""))
    return 0


def _getinstalledpackage(args) -> int:
    from fabric_protos.peer.lifecycle import lifecycle_pb2 as lb

    from heddle.chaincode.lifecycle import client

    msg = lb.GetInstalledChaincodePackageArgs(package_id=args.package_id)
    result = _run(
        client.query, _identity(args), "", "GetInstalledChaincodePackage", msg, _peers(args)[0],
        lb.GetInstalledChaincodePackageResult,
    )  # fmt: skip
    out = Path(args.output_directory) / f"{args.package_id}.tar.gz"
    out.write_bytes(result.chaincode_install_package)
    print(f"Wrote package {args.package_id} to {out}")
    return 0


def _submit(args, function: str, message, wait_all: bool) -> None:
    from heddle.chaincode.lifecycle import client

    identity = _identity(args)
    peers = _peers(args)
    timeout = _timeout(args.waitForEventTimeout)
    wait = _truthy(args.waitForEvent)
    orderer = _orderer(args)
    if not wait:
        parsed, responses = _run(
            client.endorse, identity, args.channelID, [function.encode(), message.SerializeToString()], peers
        )
        try:
            envelope = client.create_signed_transaction(parsed, responses, identity.sign)
        except client.ProtocolError as exc:
            raise CliError(f"cannot assemble the transaction: {exc}") from exc
        _run(client.broadcast, envelope, orderer, timeout)
        print(f"txid [{parsed.tx_id}] submitted")
        return
    wait_peers = peers if wait_all else peers[:1]
    txid = _run(
        client.submit, identity, args.channelID, function, message, peers, orderer, wait_peers, timeout
    )
    for peer in wait_peers:
        print(f"txid [{txid}] committed with status (VALID) at {peer.address}")


def _approve(args) -> int:
    from fabric_protos.peer.lifecycle import lifecycle_pb2 as lb

    message = _definition(lb.ApproveChaincodeDefinitionForMyOrgArgs, args)
    if args.package_id:
        message.source.local_package.package_id = args.package_id
    else:
        message.source.unavailable.SetInParent()
    _submit(args, "ApproveChaincodeDefinitionForMyOrg", message, wait_all=False)
    return 0


def _commit(args) -> int:
    from fabric_protos.peer.lifecycle import lifecycle_pb2 as lb

    _submit(
        args, "CommitChaincodeDefinition", _definition(lb.CommitChaincodeDefinitionArgs, args), wait_all=True
    )
    return 0


def _checkcommitreadiness(args) -> int:
    from fabric_protos.peer.lifecycle import lifecycle_pb2 as lb

    from heddle.chaincode.lifecycle import client

    message = _definition(lb.CheckCommitReadinessArgs, args)
    result = _run(client.check_commit_readiness, _identity(args), args.channelID, message, _peers(args)[0])
    if args.output == "json":
        print(json.dumps({"approvals": dict(sorted(result.approvals.items()))}, indent=2))
        return 0
    print(
        f"Chaincode definition for chaincode '{args.name}', version '{args.version}', sequence "
        f"'{args.sequence}' on channel '{args.channelID}' approval status by org:"
    )
    for mspid in sorted(result.approvals):
        print(f"{mspid}: {str(result.approvals[mspid]).lower()}")
    return 0


def _querycommitted(args) -> int:
    from heddle.chaincode.lifecycle import client

    result = _run(client.query_committed, _identity(args), args.channelID, args.name, _peers(args)[0])
    if args.output == "json":
        print(_json(result))
        return 0
    if args.name:
        approvals = ", ".join(f"{m}: {str(ok).lower()}" for m, ok in sorted(result.approvals.items()))
        print(f"Committed chaincode definition for chaincode '{args.name}' on channel '{args.channelID}':")
        print(
            f"Version: {result.version}, Sequence: {result.sequence}, Endorsement Plugin: "
            f"{result.endorsement_plugin}, Validation Plugin: {result.validation_plugin}, "
            f"Approvals: [{approvals}]"
        )
        return 0
    print(f"Committed chaincode definitions on channel '{args.channelID}':")
    for d in result.chaincode_definitions:
        print(
            f"Name: {d.name}, Version: {d.version}, Sequence: {d.sequence}, Endorsement Plugin: "
            f"{d.endorsement_plugin}, Validation Plugin: {d.validation_plugin}"
        )
    return 0


def _queryapproved(args) -> int:
    from heddle.chaincode.lifecycle import client

    result = _run(
        client.query_approved, _identity(args), args.channelID, args.name, args.sequence, _peers(args)[0]
    )
    if args.output == "json":
        print(_json(result))
        return 0
    pkg = result.source.local_package.package_id if result.source.HasField("local_package") else ""
    print(f"Approved chaincode definition for chaincode '{args.name}' on channel '{args.channelID}':")
    print(
        f"sequence: {result.sequence}, version: {result.version}, init-required: "
        f"{str(result.init_required).lower()}, package-id: {pkg}, endorsement plugin: "
        f"{result.endorsement_plugin}, validation plugin: {result.validation_plugin}"
    )
    return 0
