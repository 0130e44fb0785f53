"""cscc: JoinChain (local MSP admins only) and GetChannels (local MSP members)."""

from __future__ import annotations

from fabric_protos.common import common_pb2
from fabric_protos.msp import msp_principal_pb2
from fabric_protos.peer import query_pb2
from google.protobuf.message import DecodeError

from heddle.chaincode.system.base import SccError
from heddle.crypto import SignatureError


class Cscc:
    name = "cscc"

    def __init__(self, local_msp, join, channels):
        self.local_msp = local_msp  # heddle.msp.Msp of this peer's org
        self.join = join  # join(block) -> channel id; raises ValueError with the reason
        self.channels = channels

    def _local_identity(self, proposal):
        try:
            ident = self.local_msp.deserialize_identity(proposal.creator)
            ident.verify(proposal.signed.proposal_bytes, proposal.signed.signature)
        except (ValueError, SignatureError) as exc:
            raise SccError(
                403, f"access denied: creator is not a valid identity of {self.local_msp.mspid}: {exc}"
            ) from exc
        return ident

    def authorize(self, function: str, channel, proposal) -> None:
        ident = self._local_identity(proposal)
        if function == "JoinChain":
            admin = msp_principal_pb2.MSPPrincipal(
                principal_classification=msp_principal_pb2.MSPPrincipal.ROLE,
                principal=msp_principal_pb2.MSPRole(
                    msp_identifier=self.local_msp.mspid, role=msp_principal_pb2.MSPRole.ADMIN
                ).SerializeToString(),
            )
            if not ident.satisfies_principal(admin):
                raise SccError(
                    403,
                    f"access denied for [JoinChain]: creator is not an admin of "
                    f"the local MSP {self.local_msp.mspid}",
                )

    def invoke(self, function: str, args: list[bytes], channel) -> bytes:
        if function == "GetChannels":
            resp = query_pb2.ChannelQueryResponse(
                channels=[query_pb2.ChannelInfo(channel_id=c) for c in sorted(self.channels)]
            )
            return resp.SerializeToString()
        if function == "JoinChain":
            if not args:
                raise SccError(400, "JoinChain needs the genesis block as its argument")
            block = common_pb2.Block()
            try:
                block.ParseFromString(args[0])
            except DecodeError as exc:
                raise SccError(400, f"JoinChain: argument is not a block: {exc}") from exc
            try:
                self.join(block)
            except ValueError as exc:
                raise SccError(500, f"cannot join channel: {exc}") from exc
            return b""
        raise SccError(400, f"cscc: unknown function {function!r}; known: JoinChain, GetChannels")
