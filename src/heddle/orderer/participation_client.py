"""Client for an orderer's channel participation API (what osnadmin speaks)."""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp

BASE = "/participation/v1/channels"


class ParticipationError(Exception):
    """The admin endpoint could not be reached."""


@dataclass
class AdminEndpoint:
    address: str  # host:port
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.ca_file:
            return False
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if self.client_cert:
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key) if self.client_key else None)
        return ctx

    def url(self, path: str = "") -> str:
        return f"{'https' if self.ca_file else 'http'}://{self.address}{BASE}{path}"


async def _request(endpoint: AdminEndpoint, method: str, path: str, data=None) -> tuple[int, str]:
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, endpoint.url(path), data=data, ssl=endpoint.ssl_context()) as resp,
        ):
            return resp.status, await resp.text()
    except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
        raise ParticipationError(f"cannot reach {endpoint.address}: {exc}") from exc


def request(
    endpoint: AdminEndpoint, method: str, path: str = "", block: bytes | None = None
) -> tuple[int, dict | None]:
    """One participation API call; returns (HTTP status, JSON body or None)."""
    form = None
    if block is not None:
        form = aiohttp.FormData()
        form.add_field(
            "config-block", block, filename="config.block", content_type="application/octet-stream"
        )
    status, body = asyncio.run(_request(endpoint, method, path, form))
    try:
        return status, (json.loads(body) if body else None)
    except ValueError:
        return status, {"error": body}


def join(endpoint: AdminEndpoint, block: bytes) -> tuple[int, dict | None]:
    return request(endpoint, "POST", "", block)
