"""Signed proposals: building them (clients, CLI) and decoding them (endorser)."""

from __future__ import annotations

from dataclasses import dataclass

from fabric_protos.common import common_pb2
from fabric_protos.peer import chaincode_pb2, proposal_pb2, proposal_response_pb2

from heddle.crypto.hashing import sha256
from heddle.protocol.envelopes import (
    HeaderFields,
    ProtocolError,
    compute_txid,
    decode,
    make_channel_header,
    make_signature_header,
    new_nonce,
)


def create_proposal(
    creator: bytes,
    channel_id: str,
    chaincode: str,
    args: list[bytes],
    transient: dict[str, bytes] | None = None,
    nonce: bytes | None = None,
) -> tuple[proposal_pb2.Proposal, str]:
    """An ENDORSER_TRANSACTION proposal invoking ``chaincode`` with ``args``; returns (proposal, txid)."""
    nonce = new_nonce() if nonce is None else nonce
    txid = compute_txid(nonce, creator)
    ext = proposal_pb2.ChaincodeHeaderExtension(chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode))
    chdr = make_channel_header(
        common_pb2.ENDORSER_TRANSACTION, channel_id, txid, extension=ext.SerializeToString()
    )
    shdr = make_signature_header(creator, nonce)
    spec = chaincode_pb2.ChaincodeInvocationSpec(
        chaincode_spec=chaincode_pb2.ChaincodeSpec(
            type=chaincode_pb2.ChaincodeSpec.GOLANG,
            chaincode_id=chaincode_pb2.ChaincodeID(name=chaincode),
            input=chaincode_pb2.ChaincodeInput(args=args),
        )
    )
    ccpp = proposal_pb2.ChaincodeProposalPayload(input=spec.SerializeToString(), TransientMap=transient or {})
    header = common_pb2.Header(
        channel_header=chdr.SerializeToString(), signature_header=shdr.SerializeToString()
    )
    prop = proposal_pb2.Proposal(header=header.SerializeToString(), payload=ccpp.SerializeToString())
    return prop, txid


def sign_proposal(proposal: proposal_pb2.Proposal, sign) -> proposal_pb2.SignedProposal:
    data = proposal.SerializeToString()
    return proposal_pb2.SignedProposal(proposal_bytes=data, signature=sign(data))


@dataclass(frozen=True)
class ParsedProposal(HeaderFields):
    signed: proposal_pb2.SignedProposal
    proposal: proposal_pb2.Proposal
    header: common_pb2.Header
    channel_header: common_pb2.ChannelHeader
    signature_header: common_pb2.SignatureHeader
    chaincode_name: str
    payload: proposal_pb2.ChaincodeProposalPayload
    invocation: chaincode_pb2.ChaincodeInvocationSpec

    @property
    def args(self) -> list[bytes]:
        return list(self.invocation.chaincode_spec.input.args)


def parse_signed_proposal(data: bytes | proposal_pb2.SignedProposal) -> ParsedProposal:
    """Decode a SignedProposal; ProtocolError names the layer that is malformed."""
    signed = (
        data
        if isinstance(data, proposal_pb2.SignedProposal)
        else decode(proposal_pb2.SignedProposal(), data, "SignedProposal")
    )
    if not signed.proposal_bytes:
        raise ProtocolError("signed proposal has no proposal bytes")
    prop = decode(proposal_pb2.Proposal(), signed.proposal_bytes, "Proposal")
    header = decode(common_pb2.Header(), prop.header, "proposal Header")
    chdr = decode(common_pb2.ChannelHeader(), header.channel_header, "ChannelHeader")
    shdr = decode(common_pb2.SignatureHeader(), header.signature_header, "SignatureHeader")
    if chdr.type != common_pb2.ENDORSER_TRANSACTION:
        raise ProtocolError(f"invalid header type {chdr.type}: proposals must be ENDORSER_TRANSACTION")
    ext = decode(proposal_pb2.ChaincodeHeaderExtension(), chdr.extension, "ChaincodeHeaderExtension")
    if not ext.HasField("chaincode_id") or not ext.chaincode_id.name:
        raise ProtocolError("proposal header does not name a chaincode")
    ccpp = decode(proposal_pb2.ChaincodeProposalPayload(), prop.payload, "ChaincodeProposalPayload")
    cis = decode(chaincode_pb2.ChaincodeInvocationSpec(), ccpp.input, "ChaincodeInvocationSpec")
    return ParsedProposal(signed, prop, header, chdr, shdr, ext.chaincode_id.name, ccpp, cis)


def proposal_hash(parsed: ParsedProposal) -> bytes:
    """Hash binding a response to its proposal: channel header, signature header and the
    chaincode proposal payload without its transient map (which never reaches the ledger)."""
    visible = proposal_pb2.ChaincodeProposalPayload(input=parsed.payload.input).SerializeToString()
    return sha256(parsed.header.channel_header, parsed.header.signature_header, visible)


def endorsement_message(proposal_response_payload: bytes, endorser: bytes) -> bytes:
    """What an endorser signs: the response payload followed by its serialized identity."""
    return proposal_response_payload + endorser


def build_response(
    parsed: ParsedProposal,
    status: int,
    message: str = "",
    payload: bytes = b"",
    results: bytes = b"",
    events: bytes = b"",
    endorser: bytes | None = None,
    sign=None,
) -> proposal_response_pb2.ProposalResponse:
    """A ProposalResponse; with ``endorser`` and ``sign`` the payload is endorsed."""
    response = proposal_response_pb2.Response(status=status, message=message, payload=payload)
    resp = proposal_response_pb2.ProposalResponse(version=1, response=response)
    if status >= 400:
        return resp
    action = proposal_pb2.ChaincodeAction(
        results=results,
        events=events,
        response=response,
        chaincode_id=chaincode_pb2.ChaincodeID(name=parsed.chaincode_name),
    )
    prp = proposal_response_pb2.ProposalResponsePayload(
        proposal_hash=proposal_hash(parsed), extension=action.SerializeToString()
    ).SerializeToString()
    resp.payload = prp
    if endorser is not None and sign is not None:
        resp.endorsement.endorser = endorser
        resp.endorsement.signature = sign(endorsement_message(prp, endorser))
    return resp


def error_response(status: int, message: str) -> proposal_response_pb2.ProposalResponse:
    return proposal_response_pb2.ProposalResponse(
        version=1, response=proposal_response_pb2.Response(status=status, message=message)
    )


class EndorsementMismatch(ProtocolError):
    """Endorsers returned different results for the same proposal."""


def create_signed_transaction(
    parsed: ParsedProposal,
    responses: list[proposal_response_pb2.ProposalResponse],
    sign,
) -> common_pb2.Envelope:
    """The transaction envelope a client submits to ordering: the proposal's header, one action
    carrying the (identical) response payload and every endorsement, signed by the creator."""
    from fabric_protos.peer import transaction_pb2

    if not responses:
        raise ProtocolError("at least one endorsement is needed")
    payload = responses[0].payload
    for r in responses:
        if r.response.status < 200 or r.response.status >= 400:
            raise ProtocolError(
                f"proposal response was not successful: {r.response.status} {r.response.message}"
            )
        if r.payload != payload:
            raise EndorsementMismatch("endorsers returned different proposal response payloads")
        if not r.endorsement.signature:
            raise ProtocolError("a proposal response carries no endorsement")
    visible = proposal_pb2.ChaincodeProposalPayload(input=parsed.payload.input).SerializeToString()
    action_payload = transaction_pb2.ChaincodeActionPayload(
        chaincode_proposal_payload=visible,
        action=transaction_pb2.ChaincodeEndorsedAction(
            proposal_response_payload=payload, endorsements=[r.endorsement for r in responses]
        ),
    )
    tx = transaction_pb2.Transaction(
        actions=[
            transaction_pb2.TransactionAction(
                header=parsed.header.signature_header, payload=action_payload.SerializeToString()
            )
        ]
    )
    body = common_pb2.Payload(header=parsed.header, data=tx.SerializeToString()).SerializeToString()
    return common_pb2.Envelope(payload=body, signature=sign(body))
