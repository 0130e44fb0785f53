"""What a system chaincode looks like to the endorser."""

from __future__ import annotations

from typing import Protocol


class SccError(Exception):
    """A system chaincode refused the call; ``status`` is the response status (>= 400)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class SystemChaincode(Protocol):
    name: str

    def authorize(self, function: str, channel, proposal) -> None:
        """Raise SccError(403) if the proposal's creator may not call ``function``."""

    def invoke(self, function: str, args: list[bytes], channel) -> bytes:
        """Run ``function`` and return the response payload; raise SccError on failure."""
