"""Errors of the client SDK: gRPC failures with the gateway's per-node details, and commit failures."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from fabric_protos.gateway import gateway_pb2
from fabric_protos.peer import transaction_pb2
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class ErrorDetail:
    """What one endorser or orderer said (gateway.ErrorDetail)."""

    address: str
    msp_id: str
    message: str


def error_details(exc: grpc.RpcError) -> list[ErrorDetail]:
    """The gateway.ErrorDetail entries of a failed call's google.rpc.Status trailer."""
    trailers = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailers or ():
        if key != STATUS_DETAILS_KEY:
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return []
        out = []
        for any_ in status.details:
            detail = gateway_pb2.ErrorDetail()
            if any_.Is(detail.DESCRIPTOR) and any_.Unpack(detail):
                out.append(ErrorDetail(detail.address, detail.msp_id, detail.message))
        return out
    return []


class GatewayError(Exception):
    """A gateway call failed: gRPC ``code``, the gateway's message and per-node ``details``."""

    def __init__(self, message: str, code: grpc.StatusCode, details: list[ErrorDetail] | None = None):
        self.code = code
        self.message = message
        self.details = details or []
        text = f"{code.name}: {message}"
        if self.details:
            text += "; " + "; ".join(f"{d.address} ({d.msp_id}): {d.message}" for d in self.details)
        super().__init__(text)

    @classmethod
    def from_rpc(cls, exc: grpc.RpcError, **extra):
        err = cls(exc.details() or "", exc.code(), error_details(exc), **extra)
        err.__cause__ = exc
        return err


class _TransactionError(GatewayError):
    def __init__(self, message, code, details=None, transaction_id: str = ""):
        super().__init__(message, code, details)
        self.transaction_id = transaction_id


class EndorseError(_TransactionError):
    """Endorsement failed (e.g. the chaincode returned an error; see ``details``)."""


class SubmitError(_TransactionError):
    """The endorsed transaction could not be sent to the ordering service."""


class CommitStatusError(_TransactionError):
    """The commit status of a transaction could not be obtained."""


class CommitError(Exception):
    """The transaction was ordered but committed invalid (``code_name`` says why)."""

    def __init__(self, transaction_id: str, code: int, block_number: int):
        self.transaction_id = transaction_id
        self.code = code
        self.block_number = block_number
        self.code_name = _code_name(code)
        super().__init__(
            f"transaction {transaction_id} failed to commit with status code {code} ({self.code_name})"
        )


def _code_name(code: int) -> str:
    try:
        return transaction_pb2.TxValidationCode.Name(code)
    except ValueError:
        return str(code)
