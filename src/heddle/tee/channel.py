"""Attested secure channels: TLS 1.3 from the client to inside the enclave.

The client asks the host for evidence bound to a fresh nonce, verifies it under its
policy, and only then runs a TLS 1.3 handshake whose server end is inside the
enclave. The handshake's server key must equal the ``tls`` key the evidence binds;
the client checks this before it sends any application data. The host relays
ciphertext only. :class:`TlsClientChannel` is the sans-I/O core;
:class:`AttestedSession` drives it over any :class:`Relay` (an :class:`Enclave`, or
a network link to a host).
"""

from __future__ import annotations

import asyncio
import hmac
import os
import ssl
from collections.abc import Iterable, Mapping
from typing import Protocol

from cryptography import x509

from heddle.tee.attestation import AttestationResult, EvidenceVerifier, verify_evidence
from heddle.tee.enclave import wire
from heddle.tee.enclave.evidence import Evidence
from heddle.tee.enclave.tls import spki
from heddle.tee.errors import AttestationError, ChannelClosed, EnclaveDied, EnclaveError
from heddle.tee.policy import VerificationPolicy


class Relay(Protocol):
    """What a client needs from the (untrusted) host to reach an enclave."""

    async def evidence(self, nonce: bytes) -> Evidence: ...

    async def open_session(self) -> int: ...

    async def relay(self, session: int, data: bytes) -> bytes: ...

    async def close_session(self, session: int) -> None: ...


def _client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    # The server certificate is self-signed inside the enclave: no CA vouches for it.
    # OpenSSL still checks the handshake signature against it, and we pin its key to
    # the attested one before any application data is written.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class TlsClientChannel:
    """Client end of an attested TLS 1.3 session, over memory buffers (sans-I/O)."""

    def __init__(self, attested_key: bytes, context: ssl.SSLContext | None = None) -> None:
        self._attested_key = attested_key
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._tls = (context or _client_context()).wrap_bio(self._in, self._out)
        self._frames = wire.FrameDecoder()
        self._results: list[tuple[int, bytes]] = []
        self.handshake_done = False
        self.closed: str | None = None

    def initiate(self) -> bytes:
        """Start the handshake; return the ClientHello ciphertext."""
        self._step()
        return self.outgoing()

    def receive(self, data: bytes) -> None:
        """Feed ciphertext from the enclave."""
        self._check_open()
        self._in.write(data)
        self._step()
        if not self.handshake_done:
            return
        chunks = []
        try:
            while True:
                try:
                    chunk = self._tls.read(65536)
                except ssl.SSLWantReadError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        except ssl.SSLError as exc:
            self._fail(f"TLS failure, session closed: {exc.reason or exc}")
        try:
            for payload in self._frames.feed(b"".join(chunks)):
                self._results.append(wire.decode_result(payload))
        except wire.FrameError as exc:
            self._fail(f"bad reply framing, session closed: {exc}")

    def send_call(self, method: str, body: bytes) -> bytes:
        """Encrypt one request; return all ciphertext due to the enclave."""
        self._check_open()
        if not self.handshake_done:
            raise ChannelClosed("TLS handshake has not completed")
        self._tls.write(wire.encode_call(method, body))
        return self.outgoing()

    def results(self) -> list[tuple[int, bytes]]:
        """Replies decrypted so far, as (status, body); clears them."""
        out, self._results = self._results, []
        return out

    def outgoing(self) -> bytes:
        return self._out.read()

    def close(self) -> bytes:
        """Send close_notify; return its ciphertext."""
        if self.closed is None:
            self.closed = "closed by the client"
            if self.handshake_done:
                try:
                    self._tls.unwrap()
                except ssl.SSLError:
                    pass
        return self.outgoing()

    def _step(self) -> None:
        if self.handshake_done:
            return
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLError as exc:
            self._fail(f"TLS handshake failed: {exc.reason or exc}")
        der = self._tls.getpeercert(binary_form=True)
        if der is None:
            self._fail("enclave presented no certificate", AttestationError)
        peer = spki(x509.load_der_x509_certificate(der).public_key())
        if not hmac.compare_digest(peer, self._attested_key):
            self._fail(
                "the TLS server key is not the attested enclave key; refusing to send data",
                AttestationError,
            )
        self.handshake_done = True

    def _check_open(self) -> None:
        if self.closed is not None:
            raise ChannelClosed(self.closed)

    def _fail(self, reason: str, kind: type[Exception] = ChannelClosed) -> None:
        self.closed = reason
        raise kind(reason)


class AttestedSession:
    """A client's attested session with one enclave, relayed by an untrusted host."""

    def __init__(
        self, relay: Relay, session: int, channel: TlsClientChannel, result: AttestationResult
    ) -> None:
        self._relay = relay
        self._session = session
        self._channel = channel
        self._lock = asyncio.Lock()
        self._pending_out = b""
        self.attestation = result

    def __repr__(self) -> str:
        return f"AttestedSession(session={self._session}, closed={self._channel.closed!r})"

    @property
    def closed(self) -> bool:
        return self._channel.closed is not None

    @classmethod
    async def connect(
        cls,
        relay: Relay,
        *,
        policy: VerificationPolicy,
        verifiers: Iterable[EvidenceVerifier] | Mapping[str, EvidenceVerifier],
    ) -> AttestedSession:
        """Verify the enclave's evidence, then complete a TLS 1.3 handshake with it."""
        nonce = os.urandom(32)
        evidence = await relay.evidence(nonce)
        result = verify_evidence(evidence, nonce=nonce, policy=policy, verifiers=verifiers)
        tls_key = result.public_keys.get("tls")
        if tls_key is None:
            raise AttestationError("evidence binds no 'tls' key; cannot open a channel")
        session = await relay.open_session()
        channel = TlsClientChannel(tls_key)
        self = cls(relay, session, channel, result)
        out = channel.initiate()
        try:
            while not channel.handshake_done:
                channel.receive(await self._exchange(out))
                out = channel.outgoing()
                if not channel.handshake_done and not out:
                    channel.close()
                    raise ChannelClosed("TLS handshake stalled")
        except (ChannelClosed, AttestationError):
            await self._abandon()
            raise
        self._pending_out = out  # the client's Finished goes out with the first request
        return self

    async def call(self, method: str, body: bytes = b"") -> bytes:
        """Send one confidential request; return the application's reply.

        An application error raises ``EnclaveError`` and the session stays usable; a
        tampered, replayed or dropped record closes it with ``ChannelClosed``.
        """
        async with self._lock:
            data = self._pending_out + self._channel.send_call(method, body)
            self._pending_out = b""
            try:
                self._channel.receive(await self._exchange(data))
            except ChannelClosed:
                await self._abandon()
                raise
            results = self._channel.results()
            if len(results) != 1:
                self._channel.closed = "enclave reply missing or duplicated; session closed"
                await self._abandon()
                raise ChannelClosed(self._channel.closed)
            status, reply = results[0]
            if status != wire.OK:
                raise EnclaveError(reply.decode(errors="replace"))
            return reply

    async def close(self) -> None:
        """Close the session at both ends."""
        async with self._lock:
            if self._channel.closed is not None:
                return
            data = self._pending_out + self._channel.close()
            try:
                if data:
                    await self._relay.relay(self._session, data)
            except (EnclaveError, EnclaveDied):
                pass
            await self._abandon()

    async def _exchange(self, data: bytes) -> bytes:
        try:
            return await self._relay.relay(self._session, data)
        except EnclaveError as exc:
            self._channel.closed = f"enclave closed the session: {exc}"
            raise ChannelClosed(self._channel.closed) from None
        except EnclaveDied:
            self._channel.closed = "enclave died"
            raise

    async def _abandon(self) -> None:
        try:
            await self._relay.close_session(self._session)
        except (EnclaveError, EnclaveDied):
            pass
