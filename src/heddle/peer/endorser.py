"""protos.Endorser/ProcessProposal.

Checks run in Fabric's order: proposal format, creator signature and MSP, txid, duplicate
txid, whether the chaincode may be called from outside, the ACL; then the call and a
signed response. Only system chaincodes (qscc, cscc) run here so far: user chaincode,
_lifecycle and simulation arrive with the endorsement work and are refused with a clear
message until then.
"""

from __future__ import annotations

import asyncio
import logging

import grpc
from fabric_protos.peer import proposal_response_pb2

from heddle.chaincode.system.base import SccError
from heddle.crypto import SignatureError
from heddle.protocol import (
    ParsedProposal,
    ProtocolError,
    build_response,
    compute_txid,
    error_response,
    parse_signed_proposal,
)

log = logging.getLogger(__name__)

# chaincodes that exist inside the peer but may never be invoked by a proposal
NOT_INVOKABLE = {"escc", "vscc", "lscc"}


class Endorser:
    def __init__(self, channels: dict, system_chaincodes: dict, identity, pool):
        self.channels = channels
        self.system_chaincodes = system_chaincodes
        self.identity = identity
        self.pool = pool

    def _process(self, raw: bytes) -> proposal_response_pb2.ProposalResponse:
        try:
            prop = parse_signed_proposal(raw)
        except ProtocolError as exc:
            return error_response(400, f"invalid proposal: {exc}")
        channel = None
        if prop.channel_id:
            channel = self.channels.get(prop.channel_id)
            if channel is None:
                return error_response(404, f"channel '{prop.channel_id}' not found on this peer")
            try:
                creator = channel.config.msp_manager.deserialize_identity(prop.creator)
                creator.verify(prop.signed.proposal_bytes, prop.signed.signature)
            except (ValueError, SignatureError) as exc:
                return error_response(403, f"access denied: creator signature or identity invalid: {exc}")
        if prop.tx_id != compute_txid(prop.signature_header.nonce, prop.creator):
            return error_response(
                400, f"invalid txid {prop.tx_id!r}: it must be hex(sha256(nonce || creator))"
            )
        if channel is not None and channel.ledger.blocks.contains_txid(prop.tx_id):
            return error_response(409, f"duplicate transaction found [{prop.tx_id}]")
        name = prop.chaincode_name
        if name in NOT_INVOKABLE:
            return error_response(400, f"chaincode {name} cannot be invoked through a proposal")
        scc = self.system_chaincodes.get(name)
        if scc is None:
            return error_response(
                501,
                f"chaincode '{name}' cannot run: this peer runs only the system chaincodes "
                f"({', '.join(sorted(self.system_chaincodes))}) so far",
            )
        return self._call_scc(scc, prop, channel)

    def _call_scc(self, scc, prop: ParsedProposal, channel) -> proposal_response_pb2.ProposalResponse:
        args = prop.args
        if not args:
            return error_response(400, f"{scc.name}: no function given")
        function = args[0].decode(errors="replace")
        try:
            scc.authorize(function, channel, prop)
            payload = scc.invoke(function, args[1:], channel)
        except SccError as exc:
            return error_response(exc.status, exc.message)
        return build_response(
            prop, 200, "", payload, endorser=self.identity.serialized, sign=self.identity.sign
        )

    async def process_proposal(self, raw: bytes, context) -> proposal_response_pb2.ProposalResponse:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._process, raw)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "protos.Endorser",
            {
                "ProcessProposal": grpc.unary_unary_rpc_method_handler(
                    self.process_proposal, None, proposal_response_pb2.ProposalResponse.SerializeToString
                )
            },
        )
