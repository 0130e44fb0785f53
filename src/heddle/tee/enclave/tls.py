"""TLS 1.3 terminated inside the enclave, over memory buffers (no sockets).

The enclave's TLS key is generated here and stays in the enclave process; OpenSSL
(through the standard library's ``ssl`` module) runs the handshake and the record
layer over ``ssl.MemoryBIO`` pairs, so the host only ever moves ciphertext. Inside
the TLS stream, requests and replies are length-prefixed frames (see ``wire``).
"""

from __future__ import annotations

import datetime
import os
import ssl
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from . import wire


class ChannelError(Exception):
    """The TLS session failed (bad record, bad handshake, peer closed) and is unusable."""


def spki(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """DER SubjectPublicKeyInfo of ``public_key``."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class TlsIdentity:
    """The enclave's TLS key pair and a self-signed certificate carrying it.

    The certificate is not trusted for its signature or names: clients pin its
    public key to the one bound in the enclave's evidence.
    """

    __slots__ = ("_key", "context", "public_key_der")

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_key_der = spki(self._key.public_key())
        self.context = self._server_context()

    def __repr__(self) -> str:
        return "TlsIdentity(private_key=<hidden>)"

    def _server_context(self) -> ssl.SSLContext:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "heddle enclave")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .sign(self._key, hashes.SHA256())
        )
        pem = cert.public_bytes(serialization.Encoding.PEM) + self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        ctx.num_tickets = 0  # no resumption: every session starts from fresh evidence
        _load_chain_from_memory(ctx, pem)
        return ctx


def _load_chain_from_memory(ctx: ssl.SSLContext, pem: bytes) -> None:
    # ssl only loads keys from a path; use an anonymous in-memory file where Linux has one.
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("heddle-tls", os.MFD_CLOEXEC)
        try:
            os.write(fd, pem)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory() as d:  # pragma: no cover - non-Linux fallback
        path = os.path.join(d, "k.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, pem)
        finally:
            os.close(fd)
        ctx.load_cert_chain(path)
        os.unlink(path)


class TlsServerSession:
    """One client's TLS 1.3 session inside the enclave (sans-I/O)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_side=True)
        self._frames = wire.FrameDecoder()
        self.handshake_done = False
        self.closed = False

    def receive(self, data: bytes) -> list[bytes]:
        """Feed ciphertext from the client; return complete request payloads."""
        if self.closed:
            raise ChannelError("session is closed")
        self._in.write(data)
        try:
            if not self.handshake_done:
                try:
                    self._tls.do_handshake()
                except ssl.SSLWantReadError:
                    return []
                self.handshake_done = True
            chunks = []
            while True:
                try:
                    chunk = self._tls.read(65536)
                except ssl.SSLWantReadError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return self._frames.feed(b"".join(chunks))
        except ssl.SSLZeroReturnError:
            self.closed = True
            raise ChannelError("client closed the TLS session") from None
        except ssl.SSLError as exc:
            self.closed = True
            raise ChannelError(f"TLS failure, session closed: {exc.reason or exc}") from None
        except wire.FrameError as exc:
            self.closed = True
            raise ChannelError(f"bad request framing, session closed: {exc}") from None

    def send(self, framed: bytes) -> None:
        """Encrypt an already framed reply."""
        self._tls.write(framed)

    def outgoing(self) -> bytes:
        """Ciphertext to hand to the host for the client."""
        return self._out.read()
