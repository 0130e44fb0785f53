"""Envelopes, headers and txids.

An envelope's signature covers its ``payload`` bytes exactly as received; we parse
those bytes once and never re-serialize them before checking a signature.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from fabric_protos.common import common_pb2
from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from heddle.crypto.ecdsa import EcdsaSigner
from heddle.crypto.hashing import sha256

NONCE_SIZE = 24  # bytes, as Fabric's clients use


class ProtocolError(ValueError):
    """A message does not have the structure the protocol requires."""


def new_nonce() -> bytes:
    return os.urandom(NONCE_SIZE)


def compute_txid(nonce: bytes, creator: bytes) -> str:
    """txid = hex(SHA-256(nonce || creator)), Fabric's recipe."""
    return sha256(nonce, creator).hex()


def make_channel_header(
    header_type: int,
    channel_id: str,
    tx_id: str = "",
    epoch: int = 0,
    extension: bytes = b"",
    tls_cert_hash: bytes = b"",
    timestamp: float | None = None,
) -> common_pb2.ChannelHeader:
    ts = timestamp_pb2.Timestamp()
    now = time.time() if timestamp is None else timestamp
    ts.seconds = int(now)
    ts.nanos = int((now - int(now)) * 1e9)
    return common_pb2.ChannelHeader(
        type=header_type,
        version=0,
        timestamp=ts,
        channel_id=channel_id,
        tx_id=tx_id,
        epoch=epoch,
        extension=extension,
        tls_cert_hash=tls_cert_hash,
    )


def make_signature_header(creator: bytes, nonce: bytes | None = None) -> common_pb2.SignatureHeader:
    return common_pb2.SignatureHeader(creator=creator, nonce=new_nonce() if nonce is None else nonce)


def sign_envelope(
    signer: EcdsaSigner,
    channel_header: common_pb2.ChannelHeader,
    signature_header: common_pb2.SignatureHeader,
    data: bytes,
) -> common_pb2.Envelope:
    """Build and sign an envelope; the signature covers the serialized payload."""
    payload = payload_bytes(channel_header, signature_header, data)
    return common_pb2.Envelope(payload=payload, signature=signer.sign(payload))


def payload_bytes(
    channel_header: common_pb2.ChannelHeader, signature_header: common_pb2.SignatureHeader, data: bytes
) -> bytes:
    """A serialized common.Payload: what an envelope's signature covers."""
    return common_pb2.Payload(
        header=common_pb2.Header(
            channel_header=channel_header.SerializeToString(),
            signature_header=signature_header.SerializeToString(),
        ),
        data=data,
    ).SerializeToString()


def decode(message, data: bytes, what: str):
    """Parse ``data`` into ``message``; a ProtocolError names the layer that is malformed."""
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise ProtocolError(f"malformed {what}: {exc}") from exc
    return message


class HeaderFields:
    """Accessors shared by decoded envelopes and proposals (both carry the two headers)."""

    channel_header: common_pb2.ChannelHeader
    signature_header: common_pb2.SignatureHeader

    @property
    def creator(self) -> bytes:
        return self.signature_header.creator

    @property
    def tx_id(self) -> str:
        return self.channel_header.tx_id

    @property
    def channel_id(self) -> str:
        return self.channel_header.channel_id


@dataclass(frozen=True)
class ParsedEnvelope(HeaderFields):
    """An envelope's layers, decoded once; raw bytes kept for signature checks."""

    envelope: common_pb2.Envelope
    payload: common_pb2.Payload
    channel_header: common_pb2.ChannelHeader
    signature_header: common_pb2.SignatureHeader

    @property
    def header_type(self) -> int:
        return self.channel_header.type


def parse_envelope(raw: bytes | common_pb2.Envelope) -> ParsedEnvelope:
    """Decode an envelope down to its headers; ProtocolError names the layer that is bad."""
    env = raw
    if isinstance(raw, bytes | bytearray | memoryview):
        env = common_pb2.Envelope()
        try:
            env.ParseFromString(bytes(raw))
        except DecodeError as exc:
            raise ProtocolError(f"malformed envelope: {exc}") from exc
    if not env.payload:
        raise ProtocolError("envelope has no payload")
    payload = common_pb2.Payload()
    try:
        payload.ParseFromString(env.payload)
    except DecodeError as exc:
        raise ProtocolError(f"malformed payload: {exc}") from exc
    if not payload.HasField("header"):
        raise ProtocolError("payload has no header")
    chdr = common_pb2.ChannelHeader()
    try:
        chdr.ParseFromString(payload.header.channel_header)
    except DecodeError as exc:
        raise ProtocolError(f"malformed channel header: {exc}") from exc
    shdr = common_pb2.SignatureHeader()
    try:
        shdr.ParseFromString(payload.header.signature_header)
    except DecodeError as exc:
        raise ProtocolError(f"malformed signature header: {exc}") from exc
    return ParsedEnvelope(env, payload, chdr, shdr)
