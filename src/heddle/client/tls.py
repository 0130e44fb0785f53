"""Opening the gRPC channel to a gateway peer."""

from __future__ import annotations

from pathlib import Path

import grpc

_OPTIONS = [
    ("grpc.max_send_message_length", 100 * 1024 * 1024),
    ("grpc.max_receive_message_length", 100 * 1024 * 1024),
]


def tls_channel(
    endpoint: str,
    tls_root_cert: bytes | str | Path,
    *,
    server_name_override: str | None = None,
    client_key: bytes | None = None,
    client_cert: bytes | None = None,
) -> grpc.Channel:
    """A TLS gRPC channel to ``endpoint`` trusting ``tls_root_cert`` (PEM bytes or a file path);
    ``server_name_override`` is the host name to expect in the server certificate."""
    root = tls_root_cert if isinstance(tls_root_cert, bytes) else Path(tls_root_cert).read_bytes()
    creds = grpc.ssl_channel_credentials(
        root_certificates=root, private_key=client_key, certificate_chain=client_cert
    )
    options = list(_OPTIONS)
    if server_name_override:
        options.append(("grpc.ssl_target_name_override", server_name_override))
    return grpc.secure_channel(endpoint, creds, options=options)
