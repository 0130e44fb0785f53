"""protos.Endorser/ProcessProposal.

Checks run in Fabric's order: proposal format, creator signature and MSP, txid, duplicate
txid, whether the chaincode may be called from outside, the channel's Writers ACL
(peer/Propose); then simulation (system chaincode in-process, or user chaincode through
the chaincode runtime) and a response whose payload is endorsed with the peer's key.
Every failure is a ProposalResponse with status >= 400 and a message saying what failed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc
from fabric_protos.peer import proposal_response_pb2

from heddle.chaincode.system.base import SccError
from heddle.crypto import SignatureError
from heddle.peer.validator import evaluate_channel_policy
from heddle.policy import PolicyError, SignedData, SignerSet
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
WRITERS = "/Channel/Application/Writers"
DEFAULT_MAX_ARGS_BYTES = 4 * 1024 * 1024


@dataclass
class Checked:
    """A proposal that passed the checks every chaincode shares."""

    prop: ParsedProposal
    channel: object | None
    creator: object | None


class Endorser:
    # process_async also takes a ParsedProposal (the gateway has decoded it already)
    accepts_parsed = True

    def __init__(self, node, max_args_bytes: int = DEFAULT_MAX_ARGS_BYTES):
        self.node = node
        self.max_args_bytes = max_args_bytes

    # ----- the checks every proposal goes through -----
    def _check(self, raw: bytes | ParsedProposal) -> Checked | proposal_response_pb2.ProposalResponse:
        try:
            prop = raw if isinstance(raw, ParsedProposal) else parse_signed_proposal(raw)
        except ProtocolError as exc:
            return error_response(400, f"invalid proposal: {exc}")
        channel = creator = None
        if prop.channel_id:
            channel = self.node.channels.get(prop.channel_id)
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
        if prop.chaincode_name in NOT_INVOKABLE:
            return error_response(
                400, f"chaincode {prop.chaincode_name} cannot be invoked through a proposal"
            )
        size = sum(len(a) for a in prop.args)
        if size > self.max_args_bytes:
            return error_response(
                413, f"proposal arguments are {size} bytes, over the maximum of {self.max_args_bytes} bytes"
            )
        return Checked(prop, channel, creator)

    def _writers_acl(self, checked: Checked) -> proposal_response_pb2.ProposalResponse | None:
        prop = checked.prop
        try:
            if checked.creator is not None:
                # _check verified the creator's signature: evaluate over that signer, not again
                evaluate_channel_policy(
                    checked.channel.config.policies, WRITERS, SignerSet([checked.creator], [])
                )
            else:
                signed = [SignedData(prop.signed.proposal_bytes, prop.creator, prop.signed.signature)]
                checked.channel.config.policies.evaluate(WRITERS, signed)
        except PolicyError as exc:
            return error_response(
                403, f"access denied for [peer/Propose] on channel {prop.channel_id}: {exc}"
            )
        return None

    def _respond(
        self, prop: ParsedProposal, status: int, message: str, payload: bytes, results=b"", events=b""
    ):
        identity = self.node.identity
        return build_response(
            prop, status, message, payload, results, events, endorser=identity.serialized, sign=identity.sign
        )

    # ----- system chaincodes that do not simulate (qscc, cscc) -----
    def _call_scc(self, scc, checked: Checked) -> proposal_response_pb2.ProposalResponse:
        prop = checked.prop
        if not prop.args:
            return error_response(400, f"{scc.name}: no function given")
        function = prop.args[0].decode(errors="replace")
        try:
            scc.authorize(function, checked.channel, prop)
            payload = scc.invoke(function, prop.args[1:], checked.channel)
        except SccError as exc:
            return error_response(exc.status, exc.message)
        return self._respond(prop, 200, "", payload)

    # ----- _lifecycle and user chaincode: simulate, then endorse -----
    def _lifecycle(self, checked: Checked) -> proposal_response_pb2.ProposalResponse:
        from heddle.chaincode.lifecycle import SccContext
        from heddle.ledger.simulator import TxSimulator

        prop = checked.prop
        if not prop.args:
            return error_response(400, "_lifecycle: no function given")
        function = prop.args[0].decode(errors="replace")
        channel = checked.channel
        creator = checked.creator
        if channel is None:  # channel-less calls (install, query installed): local MSP identities
            try:
                creator = self.node.local_msp.deserialize_identity(prop.creator)
                creator.verify(prop.signed.proposal_bytes, prop.signed.signature)
            except (ValueError, SignatureError) as exc:
                return error_response(
                    403,
                    f"access denied: creator is not a valid identity of {self.node.local_msp.mspid}: {exc}",
                )
        simulator = None
        if channel is not None:
            simulator = TxSimulator(channel.ledger.state, prop.tx_id, channel.ledger.blocks)
        ctx = SccContext(
            simulator=simulator,
            channel=channel,
            creator=creator,
            local_mspid=self.node.config.mspid,
            package_store=self.node.package_store,
            signed_data=[SignedData(prop.signed.proposal_bytes, prop.creator, prop.signed.signature)],
            channels=self.node.channels,
        )
        try:
            payload = self.node.lifecycle.invoke(function, prop.args[1:], ctx)
        except SccError as exc:
            return error_response(exc.status, exc.message)
        results = simulator.results().SerializeToString() if simulator is not None else b""
        return self._respond(prop, 200, "", payload, results)

    async def _user_chaincode(self, checked: Checked) -> proposal_response_pb2.ProposalResponse:
        from heddle.chaincode.runtime import ChaincodeError
        from heddle.ledger.simulator import TxSimulator

        prop, channel = checked.prop, checked.channel
        try:
            target = self.node.chaincode_target(channel, prop.chaincode_name)
        except LookupError as exc:
            return error_response(
                500,
                f"make sure the chaincode {prop.chaincode_name} has been successfully defined on channel "
                f"{prop.channel_id} and try again: {exc}",
            )
        simulator = TxSimulator(channel.ledger.state, prop.tx_id, channel.ledger.blocks)
        spec_input = prop.invocation.chaincode_spec.input
        try:
            result = await self.node.chaincode_support.execute(
                prop.channel_id,
                prop.tx_id,
                target,
                spec_input,
                simulator,
                prop.signed,
                is_init=spec_input.is_init,
            )
        except ChaincodeError as exc:
            return error_response(500, f"error in simulation: {exc}")
        response = result.response
        if response.status >= 400:
            # the chaincode's own error, returned to the client as Fabric does (no endorsement)
            return error_response(response.status, response.message)
        events = result.event.SerializeToString() if result.event is not None else b""
        results = simulator.results().SerializeToString()
        return self._respond(prop, response.status, response.message, response.payload, results, events)

    # ----- entry points -----
    async def process_async(self, raw: bytes | ParsedProposal) -> proposal_response_pb2.ProposalResponse:
        """Process one serialized SignedProposal (what the gRPC service and the Gateway call),
        or one the Gateway has already decoded."""
        loop = asyncio.get_running_loop()
        # on the event loop: one signature check and a txid lookup cost less than the trip to
        # the thread pool and back (about 100 us of CPU under load, more than the check)
        checked = self._check(raw)
        if isinstance(checked, proposal_response_pb2.ProposalResponse):
            return checked
        name = checked.prop.chaincode_name
        scc = self.node.system_chaincodes.get(name)
        if scc is not None:
            return await loop.run_in_executor(self.node.pool, self._call_scc, scc, checked)
        if checked.channel is not None:
            # the creator is verified already, so this is a short policy walk: no pool hop
            denied = (
                self._writers_acl(checked)
                if checked.creator is not None
                else await loop.run_in_executor(self.node.pool, self._writers_acl, checked)
            )
            if denied is not None:
                return denied
        if name == "_lifecycle":
            return await loop.run_in_executor(self.node.pool, self._lifecycle, checked)
        if checked.channel is None:
            return error_response(400, f"chaincode {name} must be invoked on a channel")
        try:
            return await self._user_chaincode(checked)
        except Exception as exc:  # the endorser must answer, whatever broke
            log.exception("endorsement of %s failed", checked.prop.tx_id)
            return error_response(500, f"endorsement failed: {exc}")

    async def process_proposal(self, raw: bytes, context) -> proposal_response_pb2.ProposalResponse:
        return await self.process_async(raw)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "protos.Endorser",
            {
                "ProcessProposal": grpc.unary_unary_rpc_method_handler(
                    self.process_proposal, None, proposal_response_pb2.ProposalResponse.SerializeToString
                )
            },
        )
