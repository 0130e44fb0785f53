"""JSON-RPC 2.0 framing for the TCF API, without I/O.

``TcfService.handle_bytes(body)`` takes one HTTP request body and returns the response
body: parse errors, non-request objects and unknown methods get JSON-RPC's codes
(-32700, -32600, -32601); refusals get the TCF code (2 invalid parameter, 3 access
denied, 4 invalid signature, 5 pending, ...). A submitted work order is answered with
code 5 and ``data.workOrderId``, as Avalon's listener answers an asynchronous submit.
Any other exception is logged and answered with code 1: the listener keeps serving.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from heddle.tcf.codes import ErrorCode, TcfError
from heddle.tcf.registry import METHODS, PENDING_MESSAGE, TcfRegistry

log = logging.getLogger("heddle.tcf.jsonrpc")

MAX_BODY = 32 << 20


def error_response(request_id: object, code: int, message: str, data: dict[str, Any] | None = None) -> dict:
    error: dict[str, Any] = {"code": int(code), "message": message}
    if data:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


class TcfService:
    """The TCF API over a registry; ``transaction`` wraps each call (e.g. a SQLite tx)."""

    def __init__(self, registry: TcfRegistry, transaction: Callable[[], AbstractContextManager[Any]]) -> None:
        self.registry = registry
        self._transaction = transaction

    def handle_bytes(self, body: bytes) -> bytes:
        if len(body) > MAX_BODY:
            reply = error_response(None, ErrorCode.INVALID_REQUEST, "request body is too large")
        else:
            try:
                request = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                reply = error_response(None, ErrorCode.PARSE_ERROR, "Parse error: the body is not valid JSON")
            else:
                reply = self.handle(request)
        return json.dumps(reply).encode()

    def handle(self, request: object) -> dict[str, Any]:
        if not isinstance(request, dict):
            return error_response(
                None, ErrorCode.INVALID_REQUEST, "Invalid Request: expected one JSON-RPC object"
            )
        request_id = request.get("id")
        if isinstance(request_id, dict | list):
            request_id = None
        method = request.get("method")
        if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return error_response(
                request_id,
                ErrorCode.INVALID_REQUEST,
                "Invalid Request: needs jsonrpc '2.0' and a method name",
            )
        name = METHODS.get(method)
        if name is None:
            return error_response(
                request_id, ErrorCode.METHOD_NOT_FOUND, f"Method not found: {method[:64]!r}"
            )
        params = request.get("params", {})
        wo_id = params.get("workOrderId") if isinstance(params, dict) else None
        data = {"workOrderId": wo_id} if isinstance(wo_id, str) else None
        try:
            with self._transaction():
                result = getattr(self.registry, name)(params)
        except TcfError as exc:
            return error_response(request_id, exc.code, exc.message, data)
        except Exception as exc:  # a bug must not stop the listener
            log.exception("TCF method %s failed", method)
            return error_response(
                request_id, ErrorCode.UNKNOWN_ERROR, f"internal error: {type(exc).__name__}", data
            )
        if method == "WorkOrderSubmit":
            return error_response(request_id, ErrorCode.PENDING, PENDING_MESSAGE, {"workOrderId": result})
        return {"jsonrpc": "2.0", "id": request_id, "result": result}


__all__ = ["MAX_BODY", "TcfService", "error_response"]
