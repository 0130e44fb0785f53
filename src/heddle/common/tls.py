"""TLS credentials for gRPC servers and clients from PEM files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import grpc


@dataclass
class TlsFiles:
    enabled: bool = False
    cert: Path | None = None
    key: Path | None = None
    root_cas: list[Path] = field(default_factory=list)
    client_auth_required: bool = False
    client_root_cas: list[Path] = field(default_factory=list)

    def server_credentials(self) -> grpc.ServerCredentials:
        if not (self.cert and self.key):
            raise ValueError("TLS is enabled but no certificate or private key is configured")
        roots = b"".join(p.read_bytes() for p in self.client_root_cas) or None
        return grpc.ssl_server_credentials(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=roots,
            require_client_auth=self.client_auth_required,
        )


def client_credentials(
    root_pems: list[bytes], client_key: bytes | None = None, client_cert: bytes | None = None
) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=b"".join(root_pems) or None,
        private_key=client_key,
        certificate_chain=client_cert,
    )


# Fabric's default maximum gRPC message size (100 MB) for both directions.
GRPC_MAX_MESSAGE = 100 * 1024 * 1024
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", GRPC_MAX_MESSAGE),
    ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.http2.max_pings_without_data", 0),
    # no transparent retries on client channels: the callers decide (the gateway tries the
    # next endorser or orderer), and retry support buffers every message it sends
    ("grpc.enable_retries", 0),
]
# Servers also refuse to share their port: gRPC sets SO_REUSEPORT by default, so a second
# node started on a busy port would bind it too and the kernel would split connections
# between the two (clients then see the other node's TLS certificate). Like Fabric's Go
# servers, a heddle node fails with "address already in use" instead.
GRPC_SERVER_OPTIONS = [*GRPC_OPTIONS, ("grpc.so_reuseport", 0)]


class ListenError(RuntimeError):
    """A node cannot listen on its configured address."""


def listen(server, address: str, credentials: grpc.ServerCredentials | None) -> None:
    """Add ``address`` to a gRPC server (TLS when ``credentials`` is given), or raise
    ListenError saying which address could not be bound."""
    try:
        if credentials is None:
            server.add_insecure_port(address)
        else:
            server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise ListenError(
            f"listen tcp {address}: bind failed (address already in use, or not an address of this machine)"
        ) from exc
