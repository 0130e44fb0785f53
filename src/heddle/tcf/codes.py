"""Status and error codes of the EEA Off-Chain Trusted Compute API, and the typed error.

The numbers are the specification's (as Hyperledger Avalon used them): a client written
for Avalon reads heddle's errors the same way. JSON-RPC 2.0 transport errors (a body
that is not JSON, not a request object, or an unknown method) use JSON-RPC's own codes.

This module is bundled into the worker enclave: it imports only the standard library.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Codes a JSON-RPC ``error.code`` carries (TCF API, work order and registry calls)."""

    SUCCESS = 0
    UNKNOWN_ERROR = 1
    INVALID_PARAMETER = 2  # invalid parameter format or value
    ACCESS_DENIED = 3
    INVALID_SIGNATURE = 4
    PENDING = 5  # work order queued, not started (also: no more lookup results)
    SCHEDULED = 6
    PROCESSING = 7
    BUSY = 8
    INVALID_WORKLOAD = 9
    # JSON-RPC 2.0 transport errors
    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601


NO_MORE_LOOKUP_RESULTS = 5
UNSUPPORTED_MODE = 6


class WorkerStatus(IntEnum):
    ACTIVE = 1
    OFF_LINE = 2
    DECOMMISSIONED = 3
    COMPROMISED = 4


class WorkerType(IntEnum):
    TEE_SGX = 1
    MPC = 2
    ZK = 3


class ReceiptStatus(IntEnum):
    """``receiptCreateStatus`` and status ``updateType`` values."""

    PENDING = 0
    COMPLETED = 1
    PROCESSED = 2
    FAILED = 3
    REJECTED = 4


class TcfError(Exception):
    """A request the TCF API refuses, with the code the JSON-RPC error carries."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = int(code)
        self.message = message

    def __repr__(self) -> str:
        return f"TcfError({self.code}, {self.message!r})"

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message}


def invalid(message: str) -> TcfError:
    return TcfError(ErrorCode.INVALID_PARAMETER, message)


__all__ = [
    "NO_MORE_LOOKUP_RESULTS",
    "UNSUPPORTED_MODE",
    "ErrorCode",
    "ReceiptStatus",
    "TcfError",
    "WorkerStatus",
    "WorkerType",
    "invalid",
]
