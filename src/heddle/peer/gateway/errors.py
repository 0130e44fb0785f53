"""Gateway errors as gRPC statuses with google.rpc.Status details, as Fabric's gateway sends them.

Each failing endorser or orderer becomes one ``gateway.ErrorDetail{address, msp_id, message}``
packed into the Status details (trailer ``grpc-status-details-bin``), so clients such as
fabric-gateway show which node said what.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from fabric_protos.gateway import gateway_pb2
from google.protobuf import any_pb2
from google.rpc import status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class NodeFailure:
    """What one endorser or orderer answered."""

    address: str
    msp_id: str
    message: str
    grpc_code: grpc.StatusCode | None = None  # how the call failed, when it did not answer

    def detail(self) -> gateway_pb2.ErrorDetail:
        return gateway_pb2.ErrorDetail(address=self.address, msp_id=self.msp_id, message=self.message)


@dataclass
class GatewayError(Exception):
    """A request the gateway fails; carried to the client as a gRPC status."""

    code: grpc.StatusCode
    message: str
    details: list[NodeFailure] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message

    def rpc_status(self) -> status_pb2.Status:
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        for failure in self.details:
            packed = any_pb2.Any()
            packed.Pack(failure.detail())
            status.details.append(packed)
        return status

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return ((STATUS_DETAILS_KEY, self.rpc_status().SerializeToString()),)

    async def abort(self, context: grpc.aio.ServicerContext) -> None:
        """End the RPC with this error (raises, as ServicerContext.abort does)."""
        await context.abort(self.code, self.message, trailing_metadata=self.trailing_metadata())


def failure_code(failures: list[NodeFailure], answered: bool) -> grpc.StatusCode:
    """The status for nodes that did not all answer: DEADLINE_EXCEEDED if every one timed out,
    UNAVAILABLE if none could be reached, else ABORTED."""
    codes = {f.grpc_code for f in failures}
    if not answered and failures and codes == {grpc.StatusCode.DEADLINE_EXCEEDED}:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if (
        not answered
        and failures
        and codes <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
    ):
        return grpc.StatusCode.UNAVAILABLE
    return grpc.StatusCode.ABORTED


def invalid_argument(message: str) -> GatewayError:
    return GatewayError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> GatewayError:
    return GatewayError(grpc.StatusCode.NOT_FOUND, message)
