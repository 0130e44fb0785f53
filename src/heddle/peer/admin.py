"""Client-side calls an administrator makes to a peer: system-chaincode proposals
(cscc JoinChain/GetChannels, qscc queries). Used by the CLI and by local networks."""

from __future__ import annotations

from pathlib import Path

import grpc
from fabric_protos.peer import proposal_response_pb2

from heddle.common.tls import GRPC_OPTIONS, client_credentials
from heddle.protocol import create_proposal, sign_proposal


class PeerCallError(Exception):
    """The peer could not be reached, or answered with a status >= 400."""


def open_channel(address: str, tls_root: Path | bytes | None) -> grpc.Channel:
    if tls_root is None:
        return grpc.insecure_channel(address, options=GRPC_OPTIONS)
    pem = tls_root if isinstance(tls_root, bytes) else Path(tls_root).read_bytes()
    return grpc.secure_channel(address, client_credentials([pem]), options=GRPC_OPTIONS)


def process_proposal(
    address: str, tls_root, signed, timeout: float = 60.0
) -> proposal_response_pb2.ProposalResponse:
    with open_channel(address, tls_root) as chan:
        call = chan.unary_unary(
            "/protos.Endorser/ProcessProposal",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=proposal_response_pb2.ProposalResponse.FromString,
        )
        try:
            return call(signed, timeout=timeout)
        except grpc.RpcError as exc:
            raise PeerCallError(f"cannot reach peer {address}: {exc.details()}") from exc


def invoke_system_chaincode(
    address: str, tls_root, identity, channel: str, chaincode: str, args: list[bytes], timeout: float = 60.0
) -> bytes:
    """Send a signed proposal to a system chaincode and return the response payload."""
    proposal, _ = create_proposal(identity.serialized, channel, chaincode, args)
    resp = process_proposal(address, tls_root, sign_proposal(proposal, identity.sign), timeout)
    if resp.response.status >= 400:
        raise PeerCallError(f"proposal failed (status {resp.response.status}): {resp.response.message}")
    return resp.response.payload


def join_channel(address: str, tls_root, admin, block_bytes: bytes) -> None:
    invoke_system_chaincode(address, tls_root, admin, "", "cscc", [b"JoinChain", block_bytes])
