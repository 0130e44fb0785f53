"""The client side of the lifecycle: endorse on peers, order, and wait for the commit.

Used by ``heddle peer lifecycle chaincode ...`` and by ``heddle up``. Every call is
blocking gRPC over TLS (when a TLS root is given); errors are LifecycleClientError with
a message naming the peer or orderer and what it said.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import events_pb2, proposal_response_pb2, transaction_pb2
from fabric_protos.peer.lifecycle import lifecycle_pb2 as lb

from heddle.common.deliver import seek_info, seek_payload
from heddle.common.tls import GRPC_OPTIONS, client_credentials
from heddle.peer.admin import PeerCallError, process_proposal
from heddle.protocol import (
    ParsedProposal,
    ProtocolError,
    create_proposal,
    create_signed_transaction,
    parse_signed_proposal,
    sign_proposal,
)

LIFECYCLE = "_lifecycle"


class LifecycleClientError(Exception):
    """A peer or the orderer refused, could not be reached, or the transaction was invalid."""


class TransactionInvalid(LifecycleClientError):
    """The transaction was committed with a validation code other than VALID."""

    def __init__(self, txid: str, code: int):
        self.txid = txid
        self.code = code
        self.code_name = transaction_pb2.TxValidationCode.Name(code)
        super().__init__(f"transaction {txid} committed with status ({self.code_name})")


@dataclass(frozen=True)
class Endpoint:
    """A peer or orderer address and the PEM of its TLS root CA (None: plaintext)."""

    address: str
    tls_root: bytes | None = None
    server_name: str | None = None  # TLS host name override

    @classmethod
    def of(
        cls, address: str, tls_root: str | Path | bytes | None, server_name: str | None = None
    ) -> Endpoint:
        pem = tls_root if isinstance(tls_root, bytes) or tls_root is None else Path(tls_root).read_bytes()
        return cls(address, pem, server_name)

    def channel(self) -> grpc.Channel:
        if self.tls_root is None:
            return grpc.insecure_channel(self.address, options=GRPC_OPTIONS)
        options = list(GRPC_OPTIONS)
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        return grpc.secure_channel(self.address, client_credentials([self.tls_root]), options=options)


# ----- endorsement -----


def _process(peer: Endpoint, signed, timeout: float) -> proposal_response_pb2.ProposalResponse:
    try:
        return process_proposal(peer.address, peer.tls_root, signed, timeout)
    except PeerCallError as exc:
        raise LifecycleClientError(str(exc)) from exc


def endorse(
    identity,
    channel: str,
    args: list[bytes],
    peers: Sequence[Endpoint],
    chaincode: str = LIFECYCLE,
    timeout: float = 60.0,
) -> tuple[ParsedProposal, list[proposal_response_pb2.ProposalResponse]]:
    """Send one signed proposal to every peer; all must answer with status 200."""
    if not peers:
        raise LifecycleClientError("no peer to send the proposal to")
    proposal, _ = create_proposal(identity.serialized, channel, chaincode, args)
    signed = sign_proposal(proposal, identity.sign)
    responses = []
    for peer in peers:
        resp = _process(peer, signed, timeout)
        if resp.response.status >= 400 or resp.response.status < 200:
            raise LifecycleClientError(
                f"proposal failed on peer {peer.address} with status: {resp.response.status} - "
                f"{resp.response.message}"
            )
        responses.append(resp)
    return parse_signed_proposal(signed), responses


def query(identity, channel: str, function: str, message, peer: Endpoint, result_type, timeout=60.0):
    """Evaluate a ``_lifecycle`` function on one peer and decode its result message."""
    _, responses = endorse(
        identity, channel, [function.encode(), message.SerializeToString()], [peer], timeout=timeout
    )
    return result_type.FromString(responses[0].response.payload)


# ----- ordering -----


def broadcast(envelope: common_pb2.Envelope, orderer: Endpoint, timeout: float = 60.0) -> None:
    """Send one envelope to orderer.AtomicBroadcast/Broadcast; raise unless SUCCESS."""
    with orderer.channel() as chan:
        call = chan.stream_stream(
            "/orderer.AtomicBroadcast/Broadcast",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=ab_pb2.BroadcastResponse.FromString,
        )
        try:
            responses = list(call(iter([envelope]), timeout=timeout))
        except grpc.RpcError as exc:
            raise LifecycleClientError(
                f"cannot broadcast to orderer {orderer.address}: {exc.details()}"
            ) from exc
    if not responses:
        raise LifecycleClientError(f"orderer {orderer.address} closed the stream without an answer")
    status = responses[0].status
    if status != common_pb2.SUCCESS:
        raise LifecycleClientError(
            f"orderer {orderer.address} refused the transaction: {common_pb2.Status.Name(status)} "
            f"{responses[0].info}"
        )


# ----- commit status -----


def _seek_newest(identity, channel: str) -> common_pb2.Envelope:
    newest = seek_info(ab_pb2.SeekPosition(newest=ab_pb2.SeekNewest()))
    payload = seek_payload(channel, identity.serialized, newest)
    return common_pb2.Envelope(payload=payload, signature=identity.sign(payload))


class CommitWatcher:
    """Follows DeliverFiltered on one peer from its newest block; start it before ordering."""

    def __init__(self, identity, channel: str, peer: Endpoint, timeout: float = 120.0):
        self.peer = peer
        self.channel_id = channel
        self._chan = peer.channel()
        stub = self._chan.stream_stream(
            "/protos.Deliver/DeliverFiltered",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=events_pb2.DeliverResponse.FromString,
        )
        self._call = stub(iter([_seek_newest(identity, channel)]), timeout=timeout)
        self._codes: dict[str, int] = {}
        self._updates: queue.Queue = queue.Queue()
        try:
            self._absorb(next(self._call))  # the newest block: the seek is in place
        except grpc.RpcError as exc:
            self.close()
            raise LifecycleClientError(
                f"cannot follow commits on peer {peer.address}: {exc.details()}"
            ) from exc
        except StopIteration as exc:
            self.close()
            raise LifecycleClientError(f"peer {peer.address} ended the deliver stream") from exc
        except LifecycleClientError:
            self.close()
            raise
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _absorb(self, resp: events_pb2.DeliverResponse) -> None:
        kind = resp.WhichOneof("Type")
        if kind == "status":
            raise LifecycleClientError(
                f"peer {self.peer.address} deliver: {common_pb2.Status.Name(resp.status)} on channel "
                f"{self.channel_id}"
            )
        if kind == "filtered_block":
            for ft in resp.filtered_block.filtered_transactions:
                self._codes.setdefault(ft.txid, ft.tx_validation_code)

    def _run(self) -> None:
        try:
            for resp in self._call:
                self._absorb(resp)
                self._updates.put(None)
        except (grpc.RpcError, LifecycleClientError) as exc:
            self._updates.put(exc)

    def wait(self, txid: str, timeout: float = 120.0) -> int:
        """The validation code of ``txid``; TransactionInvalid if it is not VALID."""
        deadline = time.monotonic() + timeout
        while txid not in self._codes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LifecycleClientError(
                    f"timed out after {timeout:.0f}s waiting for txid {txid} to commit "
                    f"on peer {self.peer.address}"
                )
            try:
                item = self._updates.get(timeout=left)
            except queue.Empty:
                continue
            if isinstance(item, grpc.RpcError):
                if txid in self._codes:
                    break
                raise LifecycleClientError(f"deliver from peer {self.peer.address} failed: {item.details()}")
            if isinstance(item, LifecycleClientError):
                raise item
        code = self._codes[txid]
        if code != transaction_pb2.VALID:
            raise TransactionInvalid(txid, code)
        return code

    def close(self) -> None:
        call = getattr(self, "_call", None)
        if call is not None:
            call.cancel()
        self._chan.close()

    def __enter__(self) -> CommitWatcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def submit(
    identity,
    channel: str,
    function: str,
    message,
    peers: Sequence[Endpoint],
    orderer: Endpoint,
    wait_peers: Sequence[Endpoint] | None = None,
    timeout: float = 120.0,
) -> str:
    """Endorse ``_lifecycle`` ``function`` on ``peers``, order it, and wait for it to commit
    VALID on each of ``wait_peers`` (default: the first peer). Returns the txid."""
    parsed, responses = endorse(identity, channel, [function.encode(), message.SerializeToString()], peers)
    try:
        envelope = create_signed_transaction(parsed, responses, identity.sign)
    except ProtocolError as exc:
        raise LifecycleClientError(f"cannot assemble the transaction: {exc}") from exc
    watchers: list[CommitWatcher] = []
    try:
        for peer in wait_peers if wait_peers is not None else peers[:1]:
            watchers.append(CommitWatcher(identity, channel, peer, timeout))
        broadcast(envelope, orderer, timeout)
        for watcher in watchers:
            watcher.wait(parsed.tx_id, timeout)
    finally:
        for watcher in watchers:
            watcher.close()
    return parsed.tx_id


# ----- the lifecycle steps, for `heddle up` and tests -----


def install(
    identity, package_bytes: bytes, peer: Endpoint, timeout: float = 300.0
) -> lb.InstallChaincodeResult:
    args = lb.InstallChaincodeArgs(chaincode_install_package=package_bytes)
    return query(identity, "", "InstallChaincode", args, peer, lb.InstallChaincodeResult, timeout)


def query_installed(identity, peer: Endpoint) -> lb.QueryInstalledChaincodesResult:
    return query(
        identity, "", "QueryInstalledChaincodes", lb.QueryInstalledChaincodesArgs(), peer,
        lb.QueryInstalledChaincodesResult,
    )  # fmt: skip


def approve(
    identity,
    channel: str,
    args: lb.ApproveChaincodeDefinitionForMyOrgArgs,
    peers,
    orderer,
    timeout=120.0,
    wait_peers=None,
) -> str:
    """Approve for the identity's org; ``peers`` must be peers of that org. Waits until the
    approval is committed on ``wait_peers`` (default: the first peer); pass the peers that
    will endorse the commit, as each peer sees approvals only once it has the block."""
    return submit(
        identity, channel, "ApproveChaincodeDefinitionForMyOrg", args, peers, orderer, wait_peers, timeout
    )


def check_commit_readiness(identity, channel: str, args: lb.CheckCommitReadinessArgs, peer: Endpoint):
    return query(identity, channel, "CheckCommitReadiness", args, peer, lb.CheckCommitReadinessResult)


def commit(
    identity, channel: str, args: lb.CommitChaincodeDefinitionArgs, peers, orderer, timeout=120.0
) -> str:
    return submit(identity, channel, "CommitChaincodeDefinition", args, peers, orderer, timeout=timeout)


def query_committed(identity, channel: str, name: str, peer: Endpoint):
    """One definition (QueryChaincodeDefinitionResult) when ``name`` is given, else all of them."""
    if name:
        return query(
            identity, channel, "QueryChaincodeDefinition", lb.QueryChaincodeDefinitionArgs(name=name), peer,
            lb.QueryChaincodeDefinitionResult,
        )  # fmt: skip
    return query(
        identity, channel, "QueryChaincodeDefinitions", lb.QueryChaincodeDefinitionsArgs(), peer,
        lb.QueryChaincodeDefinitionsResult,
    )  # fmt: skip


def committed_sequence(identity, channel: str, name: str, peer: Endpoint) -> int:
    """The committed sequence of ``name`` on ``peer`` (0 when it is not defined)."""
    try:
        return query_committed(identity, channel, name, peer).sequence
    except LifecycleClientError as exc:
        if f"namespace {name} is not defined" in str(exc):
            return 0
        raise


def query_approved(identity, channel: str, name: str, sequence: int, peer: Endpoint):
    return query(
        identity, channel, "QueryApprovedChaincodeDefinition",
        lb.QueryApprovedChaincodeDefinitionArgs(name=name, sequence=sequence), peer,
        lb.QueryApprovedChaincodeDefinitionResult,
    )  # fmt: skip


def application_policy(signature_policy: str = "", channel_config_policy: str = "") -> bytes:
    """ApplicationPolicy bytes for a definition; empty (the channel default) when neither is given."""
    from fabric_protos.peer import policy_pb2

    from heddle.policy import PolicyError, parse_signature_policy

    if signature_policy and channel_config_policy:
        raise LifecycleClientError('cannot specify both "--signature-policy" and "--channel-config-policy"')
    if signature_policy:
        try:
            envelope = parse_signature_policy(signature_policy)
        except PolicyError as exc:
            raise LifecycleClientError(f"invalid signature policy: {signature_policy}: {exc}") from exc
        return policy_pb2.ApplicationPolicy(signature_policy=envelope).SerializeToString()
    if channel_config_policy:
        return policy_pb2.ApplicationPolicy(
            channel_config_policy_reference=channel_config_policy
        ).SerializeToString()
    return b""


@dataclass(frozen=True)
class OrgAdmin:
    """An org's admin identity and the peer(s) of that org it installs on and approves through."""

    identity: object
    peers: tuple[Endpoint, ...]


def deploy(
    admins: Sequence[OrgAdmin],
    orderer: Endpoint,
    channel: str,
    name: str,
    package_bytes: bytes,
    *,
    version: str = "1.0",
    sequence: int = 1,
    validation_parameter: bytes = b"",
    init_required: bool = False,
    timeout: float = 120.0,
) -> str:
    """The whole flow for ``heddle up``/``heddle deploy``: install on every org's peers,
    approve for every org, commit endorsed by every org's first peer. Returns the package id.
    A package already installed is fine, and so is a definition already committed at
    ``sequence`` or later (nothing is approved or committed then)."""
    from heddle.chaincode.lifecycle.packages import package_id, parse_package

    pkg_id = package_id(parse_package(package_bytes).label, package_bytes)
    commit_peers = [admin.peers[0] for admin in admins]
    for admin in admins:
        for peer in admin.peers:
            try:
                install(admin.identity, package_bytes, peer)
            except LifecycleClientError as exc:
                if "already successfully installed" not in str(exc):
                    raise
    fields = {
        "name": name,
        "version": version,
        "sequence": sequence,
        "validation_parameter": validation_parameter,
        "init_required": init_required,
    }
    if committed_sequence(admins[0].identity, channel, name, commit_peers[0]) >= sequence:
        return pkg_id  # already defined at this sequence (e.g. `heddle up` run again)
    for admin in admins:
        args = lb.ApproveChaincodeDefinitionForMyOrgArgs(**fields)
        args.source.local_package.package_id = pkg_id
        approve(admin.identity, channel, args, list(admin.peers[:1]), orderer, timeout, commit_peers)
    commit(
        admins[0].identity,
        channel,
        lb.CommitChaincodeDefinitionArgs(**fields),
        commit_peers,
        orderer,
        timeout,
    )
    return pkg_id
