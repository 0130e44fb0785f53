"""Field checks for TCF messages: one place that says what a well-formed request is.

Every function raises ``TcfError(INVALID_PARAMETER, message)`` naming the bad field, so
the listener, the enclave and (later) the chaincode refuse the same inputs the same way.

This module is bundled into the worker enclave: it imports only the standard library
and heddle.tcf.codes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from heddle.tcf.codes import ErrorCode, TcfError, invalid

_HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
_B64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
MAX_ITEMS = 64


def params_object(params: object) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise invalid("params must be a JSON object")
    return params


def text(params: Mapping[str, Any], name: str, *, optional: bool = False, max_len: int = 1 << 16) -> str:
    value = params.get(name)
    if value is None:
        if optional:
            return ""
        raise invalid(f"missing field {name!r}")
    if not isinstance(value, str):
        raise invalid(f"field {name!r} must be a string")
    if len(value) > max_len:
        raise invalid(f"field {name!r} is longer than {max_len} characters")
    return value


def hex_field(
    params: Mapping[str, Any], name: str, *, optional: bool = False, size: int | None = None
) -> str:
    value = text(params, name, optional=optional, max_len=1 << 20)
    if value == "" and optional:
        return value
    if not _HEX.match(value):
        raise invalid(f"field {name!r} must be a non-empty, even-length hex string")
    if size is not None and len(value) != 2 * size:
        raise invalid(f"field {name!r} must be {size} bytes ({2 * size} hex digits)")
    return value


def b64_field(params: Mapping[str, Any], name: str, *, optional: bool = False) -> str:
    value = text(params, name, optional=optional, max_len=1 << 26)
    if value and (len(value) % 4 or not _B64.match(value)):
        raise invalid(f"field {name!r} must be base64")
    return value


def integer(params: Mapping[str, Any], name: str, *, optional: bool = False, default: int = 0) -> int:
    value = params.get(name)
    if value is None:
        if optional:
            return default
        raise invalid(f"missing field {name!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"field {name!r} must be an integer")
    return value


def data_items(params: Mapping[str, Any], name: str, *, optional: bool = False) -> list[dict[str, Any]]:
    items = params.get(name)
    if items is None and optional:
        return []
    if not isinstance(items, list) or (not items and not optional):
        raise invalid(f"field {name!r} must be a non-empty array of data items")
    if len(items) > MAX_ITEMS:
        raise invalid(f"field {name!r} has more than {MAX_ITEMS} items")
    seen: set[int] = set()
    for pos, item in enumerate(items):
        where = f"{name}[{pos}]"
        if not isinstance(item, dict):
            raise invalid(f"{where} must be an object")
        index = item.get("index")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise invalid(f"{where}.index must be a non-negative integer")
        if index in seen:
            raise invalid(f"{where}.index {index} is used twice")
        seen.add(index)
        b64_field(item, "data", optional=name == "outData")
        hex_field(item, "dataHash", optional=True, size=32)
        hex_field(item, "iv", optional=True, size=12)
        key = text(item, "encryptedDataEncryptionKey", optional=True)
        if key not in ("", "null", "-") and not _HEX.match(key):
            raise invalid(f"{where}.encryptedDataEncryptionKey must be hex, 'null' or '-'")
    return items


def work_order_submit(params: object) -> dict[str, Any]:
    """Check a WorkOrderSubmit ``params`` object (TCF 6.1.1)."""
    p = params_object(params)
    for name in ("workOrderId", "workerId", "workloadId", "requesterId", "requesterNonce"):
        hex_field(p, name)
    hex_field(p, "encryptedSessionKey")
    hex_field(p, "sessionKeyIv", size=12)
    hex_field(p, "encryptedRequestHash")
    b64_field(p, "requesterSignature")
    text(p, "verifyingKey")
    payload = text(p, "payloadFormat", optional=True)
    if payload not in ("", "JSON-RPC"):
        raise invalid("payloadFormat must be 'JSON-RPC'")
    integer(p, "responseTimeoutMSecs", optional=True)
    data_items(p, "inData")
    data_items(p, "outData", optional=True)
    return p


def work_order_id(params: object) -> str:
    return hex_field(params_object(params), "workOrderId")


def signature_failure(what: str) -> TcfError:
    return TcfError(ErrorCode.INVALID_SIGNATURE, what)


__all__ = [
    "b64_field",
    "data_items",
    "hex_field",
    "integer",
    "params_object",
    "signature_failure",
    "text",
    "work_order_id",
    "work_order_submit",
]
