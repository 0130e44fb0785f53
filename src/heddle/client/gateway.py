"""A synchronous Fabric Gateway client: connect, networks, contracts, transactions, events.

Shaped like fabric-gateway (Go/Node/Java) and speaking only Fabric's protocol
(gateway.Gateway and protos.Deliver), so it works with heddle peers and Fabric 2.4+ peers.

    gateway = connect(identity, signer, grpc_channel)
    contract = gateway.get_network("mychannel").get_contract("basic")
    contract.submit_transaction("CreateAsset", "asset1", "blue", "5", "Tom", "300")

Offline signing: pass no signer, build ``contract.new_proposal(...)``, sign ``digest()``
elsewhere, then ``gateway.new_signed_proposal(proposal.bytes(), signature)``; likewise for the
transaction (``proposal.endorse()``) and its commit (``transaction.submit()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import grpc
from fabric_protos.common import common_pb2
from fabric_protos.gateway import gateway_pb2
from fabric_protos.orderer import ab_pb2
from fabric_protos.peer import events_pb2, proposal_pb2, transaction_pb2

from heddle.client.errors import (
    CommitError,
    CommitStatusError,
    EndorseError,
    GatewayError,
    SubmitError,
)
from heddle.client.identity import Hash, Identity, Signer, sha256
from heddle.common.deliver import seek_info, seek_payload
from heddle.protocol import (
    create_proposal,
    parse_endorser_transaction,
    parse_envelope,
)

_SERVICE = "/gateway.Gateway/"


def gateway_stubs(channel):
    """Evaluate, Endorse, Submit and CommitStatus callables on a grpc (or grpc.aio) channel."""
    g = gateway_pb2
    return (
        channel.unary_unary(
            _SERVICE + "Evaluate", g.EvaluateRequest.SerializeToString, g.EvaluateResponse.FromString
        ),
        channel.unary_unary(
            _SERVICE + "Endorse", g.EndorseRequest.SerializeToString, g.EndorseResponse.FromString
        ),
        channel.unary_unary(
            _SERVICE + "Submit", g.SubmitRequest.SerializeToString, g.SubmitResponse.FromString
        ),
        channel.unary_unary(
            _SERVICE + "CommitStatus",
            g.SignedCommitStatusRequest.SerializeToString,
            g.CommitStatusResponse.FromString,
        ),
    )


def _arg(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _no_signer(_digest: bytes) -> bytes:
    raise GatewayError(
        "no signer: sign the digest offline and use gateway.new_signed_*()",
        grpc.StatusCode.FAILED_PRECONDITION,
    )


@dataclass(frozen=True)
class Status:
    """A transaction's commit status."""

    transaction_id: str
    code: int
    block_number: int

    @property
    def code_name(self) -> str:
        return transaction_pb2.TxValidationCode.Name(self.code)

    @property
    def successful(self) -> bool:
        return self.code == transaction_pb2.VALID


@dataclass(frozen=True)
class ChaincodeEvent:
    block_number: int
    transaction_id: str
    chaincode_name: str
    event_name: str
    payload: bytes


@dataclass(frozen=True)
class CallOptions:
    """Per-call deadlines in seconds (None: no deadline)."""

    evaluate: float | None = 30.0
    endorse: float | None = 30.0
    submit: float | None = 30.0
    commit_status: float | None = 60.0


class Gateway:
    """A connection to one gateway peer, acting as one client identity."""

    def __init__(
        self,
        identity: Identity,
        signer: Signer | None,
        channel: grpc.Channel,
        hash: Hash = sha256,
        options: CallOptions | None = None,
    ):
        self.identity = identity
        self._signer = signer or _no_signer
        self.hash = hash
        self.grpc_channel = channel
        self.options = options or CallOptions()
        self._evaluate, self._endorse, self._submit, self._commit_status = gateway_stubs(channel)
        g = gateway_pb2
        self._chaincode_events = channel.unary_stream(
            _SERVICE + "ChaincodeEvents",
            g.SignedChaincodeEventsRequest.SerializeToString,
            g.ChaincodeEventsResponse.FromString,
        )

    def sign(self, message: bytes) -> bytes:
        return self._signer(self.hash(message))

    def get_network(self, name: str) -> Network:
        return Network(self, name)

    # offline signing: rebuild objects from their bytes plus an externally made signature
    def new_signed_proposal(self, proposal_bytes: bytes, signature: bytes) -> Proposal:
        """A Proposal from ``Proposal.bytes()`` (a ProposedTransaction) and a signature of its digest."""
        proposed = gateway_pb2.ProposedTransaction.FromString(proposal_bytes)
        raw = proposed.proposal.proposal_bytes
        header = common_pb2.Header.FromString(proposal_pb2.Proposal.FromString(raw).header)
        chdr = common_pb2.ChannelHeader.FromString(header.channel_header)
        orgs = tuple(proposed.endorsing_organizations)
        return Proposal(self, chdr.channel_id, proposed.transaction_id, raw, orgs, signature)

    def new_signed_transaction(self, transaction_bytes: bytes, signature: bytes) -> Transaction:
        prepared = gateway_pb2.PreparedTransaction.FromString(transaction_bytes)
        prepared.envelope.signature = signature
        channel_id = parse_envelope(prepared.envelope).channel_id
        return Transaction(self, channel_id, prepared.transaction_id, prepared.envelope)

    def new_signed_commit(self, commit_bytes: bytes, signature: bytes) -> Commit:
        request = gateway_pb2.CommitStatusRequest.FromString(commit_bytes)
        return Commit(self, request.channel_id, request.transaction_id, commit_bytes, signature)

    def close(self) -> None:
        """Release the gateway; the gRPC channel belongs to the caller and stays open."""

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(
    identity: Identity,
    signer: Signer | None,
    channel: grpc.Channel,
    *,
    hash: Hash = sha256,
    options: CallOptions | None = None,
) -> Gateway:
    """A Gateway for ``identity`` over an open gRPC channel to a gateway peer."""
    return Gateway(identity, signer, channel, hash, options)


class Network:
    """One channel seen through the gateway."""

    def __init__(self, gateway: Gateway, name: str):
        self.gateway = gateway
        self.name = name

    def get_contract(self, chaincode: str, contract_name: str | None = None) -> Contract:
        return Contract(self, chaincode, contract_name)

    def get_chaincode_events(
        self, chaincode: str, start_block: int | None = None, after_transaction_id: str | None = None
    ) -> ChaincodeEvents:
        """Events of ``chaincode`` from ``start_block`` (default: the next block committed)."""
        gw = self.gateway
        start = (
            ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=start_block))
            if start_block is not None
            else ab_pb2.SeekPosition(next_commit=ab_pb2.SeekNextCommit())
        )
        request = gateway_pb2.ChaincodeEventsRequest(
            channel_id=self.name,
            chaincode_id=chaincode,
            identity=gw.identity.serialized(),
            start_position=start,
            after_transaction_id=after_transaction_id or "",
        ).SerializeToString()
        signed = gateway_pb2.SignedChaincodeEventsRequest(request=request, signature=gw.sign(request))
        return ChaincodeEvents(gw._chaincode_events(signed))

    def get_block_events(self, start_block: int | None = None, filtered: bool = False) -> BlockEvents:
        """Blocks (common.Block, or peer.FilteredBlock if ``filtered``) from protos.Deliver,
        from ``start_block`` (default: the next block committed)."""
        gw = self.gateway
        start = (
            ab_pb2.SeekPosition(specified=ab_pb2.SeekSpecified(number=start_block))
            if start_block is not None
            else ab_pb2.SeekPosition(next_commit=ab_pb2.SeekNextCommit())
        )
        payload = seek_payload(self.name, gw.identity.serialized(), seek_info(start))
        envelope = common_pb2.Envelope(payload=payload, signature=gw.sign(payload))
        method = "/protos.Deliver/DeliverFiltered" if filtered else "/protos.Deliver/Deliver"
        stub = gw.grpc_channel.stream_stream(
            method, common_pb2.Envelope.SerializeToString, events_pb2.DeliverResponse.FromString
        )
        return BlockEvents(stub(iter([envelope])), filtered)


class Contract:
    """A chaincode (and optionally one contract inside it) on a network."""

    def __init__(self, network: Network, chaincode: str, contract_name: str | None = None):
        self.network = network
        self.chaincode = chaincode
        self.contract_name = contract_name

    def _function(self, name: str) -> str:
        return f"{self.contract_name}:{name}" if self.contract_name else name

    def new_proposal(
        self,
        name: str,
        *args: str | bytes,
        transient: dict[str, bytes] | None = None,
        endorsing_organizations: Iterable[str] | None = None,
    ) -> Proposal:
        """A proposal for ``name(args)``; signed now if the gateway has a signer, else
        ready for offline signing (``digest()``, then ``gateway.new_signed_proposal``)."""
        gw = self.network.gateway
        proposal, txid = create_proposal(
            gw.identity.serialized(),
            self.network.name,
            self.chaincode,
            [self._function(name).encode(), *(_arg(a) for a in args)],
            transient={k: _arg(v) for k, v in (transient or {}).items()},
        )
        data = proposal.SerializeToString()
        signature = b"" if gw._signer is _no_signer else gw.sign(data)
        return Proposal(gw, self.network.name, txid, data, tuple(endorsing_organizations or ()), signature)

    def evaluate_transaction(
        self,
        name: str,
        *args: str | bytes,
        transient: dict[str, bytes] | None = None,
        target_organizations: Iterable[str] | None = None,
    ) -> bytes:
        """Run ``name`` on a peer without ordering it; the chaincode's response payload."""
        return self.new_proposal(name, *args, transient=transient).evaluate(target_organizations)

    def submit_async(
        self,
        name: str,
        *args: str | bytes,
        transient: dict[str, bytes] | None = None,
        endorsing_organizations: Iterable[str] | None = None,
    ) -> SubmittedTransaction:
        """Endorse and send to ordering; returns before the commit."""
        proposal = self.new_proposal(
            name, *args, transient=transient, endorsing_organizations=endorsing_organizations
        )
        return proposal.endorse().submit()

    def submit_transaction(
        self,
        name: str,
        *args: str | bytes,
        transient: dict[str, bytes] | None = None,
        endorsing_organizations: Iterable[str] | None = None,
    ) -> bytes:
        """Endorse, order and wait for the commit; the chaincode's response payload.
        Raises EndorseError, SubmitError, CommitStatusError or CommitError."""
        submitted = self.submit_async(
            name, *args, transient=transient, endorsing_organizations=endorsing_organizations
        )
        status = submitted.get_status()
        if not status.successful:
            raise CommitError(status.transaction_id, status.code, status.block_number)
        return submitted.result


class Proposal:
    """A signed (or to-be-signed) transaction proposal."""

    def __init__(
        self,
        gateway: Gateway,
        channel_id: str,
        transaction_id: str,
        proposal_bytes: bytes,
        endorsing_organizations: tuple[str, ...],
        signature: bytes,
    ):
        self._gateway = gateway
        self.channel_id = channel_id
        self.transaction_id = transaction_id
        self._bytes = proposal_bytes
        self.endorsing_organizations = endorsing_organizations
        self.signature = signature

    def bytes(self) -> bytes:
        """A serialized gateway.ProposedTransaction (unsigned), for gateway.new_signed_proposal."""
        return gateway_pb2.ProposedTransaction(
            transaction_id=self.transaction_id,
            proposal=proposal_pb2.SignedProposal(proposal_bytes=self._bytes),
            endorsing_organizations=list(self.endorsing_organizations),
        ).SerializeToString()

    def proposal_bytes(self) -> bytes:
        """The serialized protos.Proposal the signature covers."""
        return self._bytes

    def digest(self) -> bytes:
        """The hash of the proposal to sign offline."""
        return self._gateway.hash(self._bytes)

    def _signed(self) -> proposal_pb2.SignedProposal:
        if not self.signature:
            raise GatewayError("proposal is not signed", grpc.StatusCode.FAILED_PRECONDITION)
        return proposal_pb2.SignedProposal(proposal_bytes=self._bytes, signature=self.signature)

    def evaluate(self, target_organizations: Iterable[str] | None = None) -> bytes:
        gw = self._gateway
        request = gateway_pb2.EvaluateRequest(
            transaction_id=self.transaction_id,
            channel_id=self.channel_id,
            proposed_transaction=self._signed(),
            target_organizations=list(target_organizations or ()),
        )
        try:
            response = gw._evaluate(request, timeout=gw.options.evaluate)
        except grpc.RpcError as exc:
            raise GatewayError.from_rpc(exc) from exc
        return response.result.payload

    def endorse(self) -> Transaction:
        gw = self._gateway
        request = gateway_pb2.EndorseRequest(
            transaction_id=self.transaction_id,
            channel_id=self.channel_id,
            proposed_transaction=self._signed(),
            endorsing_organizations=list(self.endorsing_organizations),
        )
        try:
            response = gw._endorse(request, timeout=gw.options.endorse)
        except grpc.RpcError as exc:
            raise EndorseError.from_rpc(exc, transaction_id=self.transaction_id) from exc
        envelope = response.prepared_transaction
        if gw._signer is not _no_signer:
            envelope.signature = gw.sign(envelope.payload)
        return Transaction(gw, self.channel_id, self.transaction_id, envelope)


class Transaction:
    """An endorsed transaction, ready to sign and submit to ordering."""

    def __init__(self, gateway: Gateway, channel_id: str, transaction_id: str, envelope: common_pb2.Envelope):
        self._gateway = gateway
        self.channel_id = channel_id
        self.transaction_id = transaction_id
        self.envelope = envelope
        actions = parse_endorser_transaction(parse_envelope(envelope).payload.data)
        self.result: bytes = actions[0].chaincode_action.response.payload

    def bytes(self) -> bytes:
        """Serialized PreparedTransaction, for offline signing and new_signed_transaction."""
        unsigned = common_pb2.Envelope(payload=self.envelope.payload)
        return gateway_pb2.PreparedTransaction(
            transaction_id=self.transaction_id, envelope=unsigned
        ).SerializeToString()

    def digest(self) -> bytes:
        return self._gateway.hash(self.envelope.payload)

    def submit(self) -> SubmittedTransaction:
        gw = self._gateway
        if not self.envelope.signature:
            raise SubmitError(
                "transaction is not signed",
                grpc.StatusCode.FAILED_PRECONDITION,
                transaction_id=self.transaction_id,
            )
        request = gateway_pb2.SubmitRequest(
            transaction_id=self.transaction_id, channel_id=self.channel_id, prepared_transaction=self.envelope
        )
        try:
            gw._submit(request, timeout=gw.options.submit)
        except grpc.RpcError as exc:
            raise SubmitError.from_rpc(exc, transaction_id=self.transaction_id) from exc
        commit_bytes = gateway_pb2.CommitStatusRequest(
            transaction_id=self.transaction_id, channel_id=self.channel_id, identity=gw.identity.serialized()
        ).SerializeToString()
        signature = b"" if gw._signer is _no_signer else gw.sign(commit_bytes)
        return SubmittedTransaction(
            gw, self.channel_id, self.transaction_id, commit_bytes, signature, self.result
        )


class Commit:
    """A submitted transaction whose commit status can be asked for."""

    def __init__(
        self, gateway: Gateway, channel_id: str, transaction_id: str, request: bytes, signature: bytes
    ):
        self._gateway = gateway
        self.channel_id = channel_id
        self.transaction_id = transaction_id
        self._request = request
        self.signature = signature

    def bytes(self) -> bytes:
        return self._request

    def digest(self) -> bytes:
        return self._gateway.hash(self._request)

    def get_status(self, timeout: float | None = None) -> Status:
        """Wait until the transaction commits on the gateway peer; its status."""
        gw = self._gateway
        if not self.signature:
            raise CommitStatusError(
                "commit status request is not signed",
                grpc.StatusCode.FAILED_PRECONDITION,
                transaction_id=self.transaction_id,
            )
        signed = gateway_pb2.SignedCommitStatusRequest(request=self._request, signature=self.signature)
        try:
            response = gw._commit_status(signed, timeout=timeout or gw.options.commit_status)
        except grpc.RpcError as exc:
            raise CommitStatusError.from_rpc(exc, transaction_id=self.transaction_id) from exc
        return Status(self.transaction_id, response.result, response.block_number)


class SubmittedTransaction(Commit):
    """A transaction sent to ordering, with the chaincode's result from endorsement."""

    def __init__(self, gateway, channel_id, transaction_id, request, signature, result: bytes):
        super().__init__(gateway, channel_id, transaction_id, request, signature)
        self.result = result


class _Stream:
    def __init__(self, call):
        self._call = call

    def close(self) -> None:
        self._call.cancel()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ChaincodeEvents(_Stream):
    """An iterator of ChaincodeEvent; close() (or a with block) ends the stream."""

    def __iter__(self) -> Iterator[ChaincodeEvent]:
        try:
            for response in self._call:
                for ev in response.events:
                    yield ChaincodeEvent(
                        response.block_number, ev.tx_id, ev.chaincode_id, ev.event_name, ev.payload
                    )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:
                return
            raise GatewayError.from_rpc(exc) from exc


class BlockEvents(_Stream):
    """An iterator of blocks from protos.Deliver; close() ends the stream."""

    def __init__(self, call, filtered: bool):
        super().__init__(call)
        self.filtered = filtered

    def __iter__(self) -> Iterator:
        try:
            for response in self._call:
                kind = response.WhichOneof("Type")
                if kind == "block":
                    yield response.block
                elif kind == "filtered_block":
                    yield response.filtered_block
                elif kind == "status":
                    if response.status == common_pb2.SUCCESS:
                        return
                    raise GatewayError(
                        f"block delivery ended with status {common_pb2.Status.Name(response.status)}",
                        grpc.StatusCode.UNAVAILABLE,
                    )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:
                return
            raise GatewayError.from_rpc(exc) from exc
